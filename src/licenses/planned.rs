//! What planning added to a copy of the license machine, compared with the original: the
//! requests it queued, the pairs they assign and release, and the shortfalls it found. Read by
//! the engine's preview (`engine/preview.rs`), which plans on copies of the accounts.

use std::collections::BTreeSet;

use crate::licenses::Licenses;
use crate::vocab::{AssetKey, AssignmentKey, OperationKind};

/// One release planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedRelease<'a> {
    pub key: AssignmentKey,
    /// What triggered it.
    pub reason: &'a str,
    /// The pair was not ours: another MDM assigned it (Clean Up).
    pub other_mdm: bool,
}

/// The work planned since the original.
#[derive(Debug, Default)]
pub struct Planned<'a> {
    /// One per request: the apps (assets) it concerns (none for user creation).
    pub requests: Vec<BTreeSet<AssetKey>>,
    pub assigned: Vec<AssignmentKey>,
    pub released: Vec<PlannedRelease<'a>>,
    /// Assets whose shortfall changed, with the licenses now missing.
    pub short: Vec<(AssetKey, usize)>,
}

impl Licenses {
    /// What this machine (a copy that planned) queued beyond `original`. Call on a preview's copy.
    pub fn planned_since(&self, original: &Licenses) -> Planned<'_> {
        let mut planned = Planned::default();
        for (key, reason) in self.ops.releasing.iter().filter(|(k, _)| !original.ops.releasing.contains_key(k)) {
            planned.released.push(PlannedRelease { key: *key, reason, other_mdm: !original.ours.contains(key) });
        }
        for op in self.ops.values().filter(|op| original.ops.get(op.id).is_none()) {
            let mut assets = BTreeSet::new();
            match op.kind {
                OperationKind::Associate => {
                    planned.assigned.extend(op.tasks().map(|(asset, target)| AssignmentKey { asset, target }));
                    assets.extend(op.assets.iter().copied());
                }
                OperationKind::Disassociate => assets.extend(op.assets.iter().copied()),
                OperationKind::Revoke => {
                    for &target in &op.targets {
                        assets.extend(self.ops.releasing.range(AssignmentKey::range_of(target)).map(|(k, _)| k.asset));
                    }
                }
                OperationKind::CreateUsers => {}
            }
            planned.requests.push(assets);
        }
        let mut assets = BTreeSet::new();
        assets.extend(self.pool.short_assets().chain(original.pool.short_assets()));
        planned.short.extend(assets.into_iter().map(|a| (a, self.short_by(&a))).filter(|(a, n)| original.short_by(a) != *n));
        planned
    }
}
