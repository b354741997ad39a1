//! Associations that may be spending an account's licenses at Apple: the pairs being associated
//! (with the operation that carries each) and the *awaited* pairs, whose association has an
//! unknown outcome (unanswered and not seen when settled, or resubmitted after 10 minutes
//! pending), so Apple may still make them. Counted per asset as they change, so that planning
//! checks the pool without walking them.

use std::collections::{BTreeMap, BTreeSet};

use crate::effects::AccountEffects;
use crate::mirror::Mirror;
use crate::vocab::{AssetKey, AssignmentKey, Target};

#[derive(Debug, Clone, Default)]
pub struct InFlight {
    /// Pair → the operation associating it (a pair can be planned again while an older
    /// operation that failed it is still open; the newer one owns it).
    associating: BTreeMap<AssignmentKey, u64>,
    awaited: BTreeSet<AssignmentKey>,
    /// Per asset: how many pairs are associating or awaited (or both).
    per_asset: BTreeMap<AssetKey, i64>,
}

impl InFlight {
    /// Licenses of `asset` that associations in flight may take.
    pub fn count(&self, asset: &AssetKey) -> i64 {
        self.per_asset.get(asset).copied().unwrap_or(0)
    }

    pub fn is_associating(&self, key: &AssignmentKey) -> bool {
        self.associating.contains_key(key)
    }

    /// Whether an association in flight gives `target` anything.
    pub fn is_receiving(&self, target: Target) -> bool {
        self.associating.range(AssignmentKey::range_of(target)).next().is_some()
    }

    pub fn is_awaited(&self, key: &AssignmentKey) -> bool {
        self.awaited.contains(key)
    }

    /// Operation `op_id` associates `key` from now on.
    pub fn associating(&mut self, key: AssignmentKey, op_id: u64) {
        let counted = self.counted(&key);
        self.associating.insert(key, op_id);
        self.recount(key.asset, counted, true);
    }

    /// Operation `op_id` no longer associates `key` (a newer operation for it stays in flight).
    pub fn association_ended(&mut self, key: AssignmentKey, op_id: u64) {
        if self.associating.get(&key) == Some(&op_id) {
            self.forget_association(key);
        }
    }

    /// Apple made the assignment: no operation is associating it any more.
    pub fn associated(&mut self, key: AssignmentKey) {
        if self.associating.contains_key(&key) {
            self.forget_association(key);
        }
    }

    fn forget_association(&mut self, key: AssignmentKey) {
        self.associating.remove(&key);
        let counted = self.counted(&key);
        self.recount(key.asset, true, counted);
    }

    /// Apple may still make `key` (durable: an `await/` record).
    pub fn await_pair(&mut self, key: AssignmentKey, fx: &mut AccountEffects<'_>) {
        if self.restore_awaited(key) {
            fx.changes().awaited.insert(key, true);
        }
    }

    /// An awaited pair read back from the store; whether it was new.
    pub fn restore_awaited(&mut self, key: AssignmentKey) -> bool {
        let counted = self.counted(&key);
        let new = self.awaited.insert(key);
        self.recount(key.asset, counted, true);
        new
    }

    /// `key` is no longer awaited (it appeared); whether it was.
    pub fn stop_awaiting(&mut self, key: &AssignmentKey, fx: &mut AccountEffects<'_>) -> bool {
        if !self.awaited.remove(key) {
            return false;
        }
        fx.changes().awaited.insert(*key, false);
        let counted = self.counted(key);
        self.recount(key.asset, true, counted);
        true
    }

    /// Nothing is awaited any more (a trustworthy full refresh showed what Apple holds).
    pub fn stop_awaiting_all(&mut self, fx: &mut AccountEffects<'_>) {
        for key in std::mem::take(&mut self.awaited) {
            fx.changes().awaited.insert(key, false);
            let counted = self.counted(&key);
            self.recount(key.asset, true, counted);
        }
    }

    /// The awaited pairs the mirror now shows.
    pub fn awaited_held(&self, mirror: &Mirror) -> Vec<AssignmentKey> {
        self.awaited.iter().filter(|k| mirror.has_assignment(k)).copied().collect()
    }

    fn counted(&self, key: &AssignmentKey) -> bool {
        self.associating.contains_key(key) || self.awaited.contains(key)
    }

    fn recount(&mut self, asset: AssetKey, before: bool, after: bool) {
        let delta = i64::from(after) - i64::from(before);
        if delta != 0 {
            let count = self.per_asset.entry(asset).or_default();
            *count += delta;
            if *count == 0 {
                self.per_asset.remove(&asset);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::effects::Effects;
    use crate::vocab::PricingParam;

    fn key(target: u32) -> AssignmentKey {
        AssignmentKey { target: Target::Device(target), asset: AssetKey { adam_id: 7, pricing: PricingParam::Stdq } }
    }

    #[test]
    fn a_pair_both_associating_and_awaited_counts_once_and_until_both_end() {
        let mut in_flight = InFlight::default();
        let mut effects = Effects::default();
        let mut fx = effects.account("a");
        let asset = key(1).asset;
        in_flight.await_pair(key(1), &mut fx);
        in_flight.associating(key(1), 3);
        in_flight.associating(key(2), 3);
        assert_eq!(in_flight.count(&asset), 2);
        in_flight.associated(key(1));
        assert_eq!(in_flight.count(&asset), 2, "still awaited");
        assert!(in_flight.stop_awaiting(&key(1), &mut fx));
        assert_eq!(fx.changes().awaited.get(&key(1)), Some(&false), "written as no longer awaited");
        assert_eq!(in_flight.count(&asset), 1);
        in_flight.association_ended(key(2), 3);
        assert_eq!(in_flight.count(&asset), 0);
    }

    #[test]
    fn only_the_operation_that_owns_a_pair_ends_its_association() {
        let mut in_flight = InFlight::default();
        in_flight.associating(key(1), 3);
        in_flight.associating(key(1), 4); // planned again by a newer operation
        in_flight.association_ended(key(1), 3);
        assert!(in_flight.is_associating(&key(1)));
        assert!(in_flight.is_receiving(Target::Device(1)));
        in_flight.association_ended(key(1), 4);
        assert!(!in_flight.is_receiving(Target::Device(1)));
        assert_eq!(in_flight.count(&key(1).asset), 0);
    }
}
