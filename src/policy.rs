//! App policies: what the host wants licensed, per account.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::vocab::{LicenseType, PricingParam};

/// One app (or book) the host wants licensed from one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppPolicy {
    pub policy_id: String,
    /// Shown to administrators, e.g. when deleting an account that this policy uses.
    pub name: String,
    pub account_id: String,
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub license_type: LicenseType,
    /// Targets in scope: serial numbers for device licenses, client user ids for user licenses.
    #[serde(default)]
    pub targets: BTreeSet<String>,
}

/// A policy as the engine keeps it: the host's [`AppPolicy`] with its targets interned in its
/// account's mirror (a serial number or user id is stored once, whatever uses it).
#[derive(Debug, Clone)]
pub struct Policy {
    pub policy_id: String,
    pub name: String,
    pub account_id: String,
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub license_type: LicenseType,
    pub scope: Scope,
}

impl Policy {
    /// `policy` without its targets (put them in [`Policy::scope`]).
    pub fn terms_of(policy: &AppPolicy) -> Self {
        Self {
            policy_id: policy.policy_id.clone(),
            name: policy.name.clone(),
            account_id: policy.account_id.clone(),
            adam_id: policy.adam_id.clone(),
            pricing_param: policy.pricing_param,
            license_type: policy.license_type,
            scope: Scope::default(),
        }
    }

    /// Whether `other` means the same licenses: the same account, app, pricing and license type.
    pub fn same_license(&self, other: &Policy) -> bool {
        self.account_id == other.account_id
            && self.adam_id == other.adam_id
            && self.pricing_param == other.pricing_param
            && self.license_type == other.license_type
    }
}

/// Most targets one stored scope record holds, on average, before a policy's targets are spread
/// over twice as many records (and a quarter of it before they are gathered into half as many).
pub const SCOPE_RECORD_TARGETS: usize = 128;

/// A policy's targets, as names interned in its account's mirror, and how they are stored: in
/// `buckets` records (a power of two), a target in the record its name's hash gives (the hash's
/// highest bits). A one-target change rewrites one record of about [`SCOPE_RECORD_TARGETS`]
/// targets at most; a policy of 200,000 targets is a few hundred records, not 200,000.
#[derive(Debug, Clone)]
pub struct Scope {
    /// (hash of the name, interned name): in record order.
    targets: BTreeSet<(u32, u32)>,
    buckets: u32,
}

impl Default for Scope {
    fn default() -> Self {
        Self { targets: BTreeSet::new(), buckets: 1 }
    }
}

impl Scope {
    /// A scope stored in `buckets` records (as a restored policy record says; corrected to a power of two).
    pub fn stored_in(buckets: u32) -> Self {
        Self { targets: BTreeSet::new(), buckets: buckets.max(1).next_power_of_two() }
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// How many records store the targets.
    pub fn buckets(&self) -> u32 {
        self.buckets
    }

    /// The record that stores target `name`.
    pub fn bucket_of(&self, name: &str) -> u32 {
        self.bucket_of_hash(name_hash(name))
    }

    fn bucket_of_hash(&self, hash: u32) -> u32 {
        if self.buckets == 1 {
            0
        } else {
            hash >> (32 - self.buckets.trailing_zeros())
        }
    }

    /// Whether `id` (the interned `name`) is in scope.
    pub fn contains(&self, id: u32, name: &str) -> bool {
        self.targets.contains(&(name_hash(name), id))
    }

    /// Puts `id` (the interned `name`) in scope; whether it was not.
    pub fn insert(&mut self, id: u32, name: &str) -> bool {
        self.targets.insert((name_hash(name), id))
    }

    /// Takes `id` (the interned `name`) out of scope; whether it was in.
    pub fn remove(&mut self, id: u32, name: &str) -> bool {
        self.targets.remove(&(name_hash(name), id))
    }

    /// The targets in this scope and not in `other` (a scope of the same account).
    pub fn minus<'a>(&'a self, other: &'a Scope) -> impl Iterator<Item = u32> + 'a {
        self.targets.difference(&other.targets).map(|&(_, id)| id)
    }

    /// The records that hold a target in one of this scope and `other` (of the same account,
    /// stored in as many records) but not in both.
    pub fn records_differing(&self, other: &Scope) -> BTreeSet<u32> {
        self.targets.symmetric_difference(&other.targets).map(|&(hash, _)| self.bucket_of_hash(hash)).collect()
    }

    /// Every target (interned), in record order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.targets.iter().map(|&(_, id)| id)
    }

    /// The targets record `bucket` stores.
    pub fn ids_in(&self, bucket: u32) -> impl Iterator<Item = u32> + '_ {
        let shift = 32 - self.buckets.trailing_zeros();
        let (first, last) = if self.buckets == 1 { (0, u32::MAX) } else { (bucket << shift, ((bucket + 1) << shift).wrapping_sub(1)) };
        self.targets.range((first, 0)..=(last, u32::MAX)).map(|&(_, id)| id)
    }

    /// Spreads the targets over more records, or gathers them into fewer, when their number
    /// calls for it (twice as many records once they average more than [`SCOPE_RECORD_TARGETS`],
    /// half as many below a quarter of it). Returns the number of records before, if it changed:
    /// then every record must be written again.
    pub fn rebalance(&mut self) -> Option<u32> {
        let before = self.buckets;
        while self.targets.len() > SCOPE_RECORD_TARGETS * self.buckets as usize && self.buckets < 1 << 16 {
            self.buckets *= 2;
        }
        while self.buckets > 1 && self.targets.len() < SCOPE_RECORD_TARGETS / 4 * self.buckets as usize {
            self.buckets /= 2;
        }
        (self.buckets != before).then_some(before)
    }
}

/// The hash that places a target in its scope record: 32-bit FNV-1a of the name's UTF-8 bytes.
/// Part of the store format (a stored record holds the targets this hash puts in it): never change it.
fn name_hash(name: &str) -> u32 {
    name.bytes().fold(0x811c_9dc5, |hash, byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn the_name_hash_is_fnv_1a_and_never_changes() {
        assert_eq!(name_hash(""), 0x811c_9dc5);
        assert_eq!(name_hash("a"), 0xe40c_292c);
        assert_eq!(name_hash("foobar"), 0xbf9c_f968);
    }

    #[test]
    fn targets_spread_over_more_records_as_the_scope_grows_and_gather_as_it_shrinks() {
        let n = SCOPE_RECORD_TARGETS;
        let mut scope = Scope::default();
        let names: Vec<String> = (0..40 * n).map(|i| format!("SERIAL{i:06}")).collect();
        for (id, name) in names.iter().enumerate() {
            scope.insert(id as u32, name);
        }
        assert_eq!(scope.rebalance(), Some(1));
        assert_eq!(scope.buckets(), 64, "40 records' worth: more than 32");
        let per_bucket: Vec<usize> = (0..64).map(|b| scope.ids_in(b).count()).collect();
        assert_eq!(per_bucket.iter().sum::<usize>(), 40 * n, "every target in exactly one record");
        assert!(per_bucket.iter().all(|k| (n / 4..n).contains(k)), "spread evenly: {per_bucket:?}");
        for (id, name) in names.iter().enumerate() {
            assert!(scope.ids_in(scope.bucket_of(name)).any(|i| i == id as u32), "{name} is in the record its hash names");
        }
        assert_eq!(scope.rebalance(), None, "nothing changed");
        for (id, name) in names.iter().enumerate().skip(5 * n) {
            assert!(scope.remove(id as u32, name));
        }
        assert_eq!(scope.rebalance(), Some(64));
        assert_eq!(scope.buckets(), 16, "5 records' worth: below a quarter of 32 records, not of 16");
        assert!(scope.contains(7, &names[7]) && !scope.contains(6 * n as u32, &names[6 * n]));
    }
}
