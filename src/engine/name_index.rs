//! Which accounts know a name (a device's serial number, a user's client user id): the accounts
//! whose mirror interned it — because a policy scopes it, Apple assigned it a license, a hold, an
//! operation or a question named it. A device or user fact goes to those accounts only, so a fact
//! about a device no account knows costs the same with one account as with ten thousand.
//!
//! Names are kept by hash, not by text (the mirrors hold the text): a name's accounts are
//! candidates, each checked against its own mirror by the caller.

use std::collections::HashMap;
use std::hash::BuildHasher;

/// The accounts (by slot) that interned each name, keyed by the name's hash.
#[derive(Debug, Default)]
pub(super) struct NameIndex {
    /// The one account of a name most names have; [`MANY`] when several do.
    one: HashMap<u64, u32>,
    /// The accounts of the names several accounts know.
    many: HashMap<u64, Vec<u32>>,
    hasher: foldhash::fast::FixedState,
}

/// In [`NameIndex::one`]: see [`NameIndex::many`].
const MANY: u32 = u32::MAX;

impl NameIndex {
    /// Account `slot` interned `name`. Call once per name and account.
    pub(super) fn add(&mut self, name: &str, slot: u32) {
        let hash = self.hasher.hash_one(name);
        match self.one.get(&hash).copied() {
            None => {
                self.one.insert(hash, slot);
            }
            Some(MANY) => self.many.entry(hash).or_default().push(slot),
            Some(other) if other == slot => {}
            Some(other) => {
                self.one.insert(hash, MANY);
                self.many.insert(hash, vec![other, slot]);
            }
        }
    }

    /// Account `slot` is gone: it no longer knows `name`.
    pub(super) fn remove(&mut self, name: &str, slot: u32) {
        let hash = self.hasher.hash_one(name);
        match self.one.get(&hash).copied() {
            Some(MANY) => {
                let Some(slots) = self.many.get_mut(&hash) else {
                    return;
                };
                slots.retain(|&s| s != slot);
                if let [last] = slots[..] {
                    self.many.remove(&hash);
                    self.one.insert(hash, last);
                }
            }
            Some(other) if other == slot => {
                self.one.remove(&hash);
            }
            _ => {}
        }
    }

    /// The accounts that may know `name` (a superset: another name may have the same hash).
    pub(super) fn candidates(&self, name: &str) -> &[u32] {
        let hash = self.hasher.hash_one(name);
        match self.one.get(&hash) {
            None => &[],
            Some(&MANY) => self.many.get(&hash).map_or(&[], Vec::as_slice),
            Some(slot) => std::slice::from_ref(slot),
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn a_name_lists_the_accounts_that_interned_it_until_they_are_gone() {
        let mut index = NameIndex::default();
        assert!(index.candidates("S1").is_empty());
        index.add("S1", 3);
        index.add("S1", 3);
        assert_eq!(index.candidates("S1"), [3]);
        index.add("S1", 7);
        index.add("S2", 7);
        assert_eq!(index.candidates("S1"), [3, 7]);
        index.remove("S1", 3);
        assert_eq!(index.candidates("S1"), [7]);
        index.remove("S1", 7);
        assert!(index.candidates("S1").is_empty());
        assert_eq!(index.candidates("S2"), [7]);
    }
}
