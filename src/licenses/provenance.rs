//! Provenance: the assignments this instance made. Durable (`prov/` records, one per device or
//! user); only these are ever released, except by Clean Up.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::base::sorted::extend_in_bulk;
use crate::effects::AccountEffects;
use crate::vocab::{AssignmentKey, Target};

/// The assignments this instance made; a device's or user's pairs are one range. Shared by a copy
/// (a preview's) until either changes.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    keys: Arc<BTreeSet<AssignmentKey>>,
}

impl Provenance {
    /// Whether this instance made `key`.
    pub fn contains(&self, key: &AssignmentKey) -> bool {
        self.keys.contains(key)
    }

    /// `key` is ours from now on (Apple confirmed our association, or Clean Up adopted it).
    pub fn adopt(&mut self, key: AssignmentKey, fx: &mut AccountEffects<'_>) {
        if !self.keys.contains(&key) && Arc::make_mut(&mut self.keys).insert(key) {
            fx.changes().ours.insert(key.target);
        }
    }

    /// `key` is ours no more (released, or gone at Apple); whether it was.
    pub fn forget(&mut self, key: &AssignmentKey, fx: &mut AccountEffects<'_>) -> bool {
        let was = self.keys.contains(key) && Arc::make_mut(&mut self.keys).remove(key);
        if was {
            fx.changes().ours.insert(key.target);
        }
        was
    }

    /// Pairs read back from the store.
    pub fn restore(&mut self, keys: Vec<AssignmentKey>) {
        extend_in_bulk(Arc::make_mut(&mut self.keys), keys);
    }

    /// Every pair of this instance, in key order.
    pub fn iter(&self) -> impl Iterator<Item = AssignmentKey> + '_ {
        self.keys.iter().copied()
    }

    /// The pairs of this instance not in `keys` (one merge walk of the two ordered sets).
    pub fn not_in<'a>(&'a self, keys: &'a BTreeSet<AssignmentKey>) -> impl Iterator<Item = &'a AssignmentKey> {
        self.keys.difference(keys)
    }

    /// The pairs one device or user holds from this instance.
    pub fn of_target(&self, target: Target) -> impl Iterator<Item = AssignmentKey> + '_ {
        self.keys.range(AssignmentKey::range_of(target)).copied()
    }
}
