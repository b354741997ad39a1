//! What an account's licenses are used for, for the reports: per app, how many assignments are
//! this instance's and how many another MDM's (or Apple Business Manager's), and how many
//! associations are pending; per assignment, whether it is ours and which policy wants it.

use std::collections::BTreeMap;

use crate::base::sorted::merge_join;
use crate::facts::Facts;
use crate::licenses::Licenses;
use crate::mirror::Mirror;
use crate::vocab::{AssetKey, AssignmentKey};

/// The use of one app's licenses in one account.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AppUsage {
    /// Assignments Apple holds that this instance made.
    pub ours: usize,
    /// Assignments Apple holds that someone else made.
    pub others: usize,
    /// Associations sent (or awaited) that Apple has not confirmed: licenses they may take.
    pub pending: i64,
}

impl Licenses {
    /// The use of every asset the mirror holds, by asset: one walk of the mirror's assignments
    /// alongside provenance (both in key order).
    pub fn app_usage(&self, mirror: &Mirror) -> BTreeMap<AssetKey, AppUsage> {
        let mut usage: BTreeMap<AssetKey, AppUsage> = BTreeMap::new();
        for (asset, _) in mirror.assets() {
            usage.insert(*asset, AppUsage { pending: self.in_flight.count(asset), ..AppUsage::default() });
        }
        let held = mirror.assignments_iter().map(|key| (*key, ()));
        for (key, held, ours) in merge_join(held, self.ours.iter().map(|key| (key, ()))) {
            if held.is_none() {
                continue;
            }
            let entry = usage.entry(key.asset).or_default();
            if ours.is_some() {
                entry.ours += 1;
            } else {
                entry.others += 1;
            }
        }
        usage
    }

    /// Whether this instance made `key`, and the policy (interned id) that wants it, if one does.
    pub fn assignment_usage(&self, key: &AssignmentKey, facts: &Facts, mirror: &Mirror) -> (bool, Option<u32>) {
        (self.ours.contains(key), self.desired.wanting_policy(key, facts, mirror, &self.ours))
    }
}
