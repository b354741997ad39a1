//! The engine's accounts, and which of them a pass must visit: the engine drives thousands of
//! accounts, and one input (a timer, an answer, a fact) costs what the accounts it touched cost.
//!
//! Every mutable access marks the account *touched* ([`Roster::get_mut`]); after the change the
//! engine recomputes its deadlines ([`Roster::reschedule_touched`]):
//! - *visit at*: the earliest time a scheduling pass ([`Account::next_visit`]) or its status may
//!   change the account by itself; it may be early, never late;
//! - *wake-up*: [`Account::next_due`], kept as it was computed, which stays right until the visit time;
//! - *status*: when its status changes by itself (a backoff ends).
//!
//! A pass visits the touched accounts and those whose visit time has come, in account id order (the
//! order a walk over every account had). Global changes (clock rewind, Reconcile, new limits)
//! touch every account. Each account's interned names go into the [`NameIndex`] as they appear.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::name_index::NameIndex;
use crate::account::Account;
use crate::apple::Limits;
use crate::base::time::Millis;
use crate::contract::config::EngineConfig;

/// An account's number: its place in [`Roster::entries`] and in the name index. Accounts are found
/// by id through a hash map, and the touched sets and deadline sets hold slots (the wake-ups also a
/// shared copy of the id, for their order), so that an input reaching one account of ten thousand
/// compares integers, not account ids, and allocates no copy of an id.
type Slot = u32;

#[derive(Debug)]
struct Entry {
    account: Account,
    /// The account's id, shared with [`Roster::wakeups`] (which orders equal times by id).
    id: Arc<str>,
    /// The mirror's names already in the name index (ids below this).
    names_indexed: usize,
    visit_at: Millis,
    wakeup: Option<(Millis, &'static str)>,
    /// When the status shown changes by itself (a backoff ends).
    status_at: Option<Millis>,
}

/// The accounts by id, with their deadlines and the touched ones.
#[derive(Debug, Default)]
pub(super) struct Roster {
    /// The accounts by slot (`None`: free).
    entries: Vec<Option<Entry>>,
    /// The slot of each account id.
    slots: HashMap<String, Slot, foldhash::fast::FixedState>,
    /// The free slots.
    free: Vec<Slot>,
    /// Touched since the last scheduling pass visited them.
    unvisited: BTreeSet<Slot>,
    /// Touched since their deadlines were last computed.
    touched: BTreeSet<Slot>,
    visits: BTreeSet<(Millis, Slot)>,
    /// By time, then account id: the next wake-up names the first account in id order.
    wakeups: BTreeSet<(Millis, Arc<str>, Slot)>,
    statuses: BTreeSet<(Millis, Slot)>,
    names: NameIndex,
    /// While a preview runs: the accounts it may change are copies, the originals wait here.
    trial: Option<Trial>,
}

/// The accounts a preview put aside (see `engine/preview.rs`): the first mutable access to an
/// account during a trial swaps in a copy, so that the preview changes copies only and costs what
/// the accounts it touches cost.
#[derive(Debug)]
struct Trial {
    originals: BTreeMap<String, Account>,
    unvisited: BTreeSet<Slot>,
    touched: BTreeSet<Slot>,
}

impl Roster {
    fn slot(&self, id: &str) -> Option<Slot> {
        self.slots.get(id).copied()
    }

    fn entry(&self, slot: Slot) -> Option<&Entry> {
        self.entries.get(slot as usize).and_then(Option::as_ref)
    }

    fn entry_mut(&mut self, slot: Slot) -> Option<&mut Entry> {
        self.entries.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// The ids of `slots`' accounts and `more`, sorted and without repeats: passes visit accounts in id order.
    fn ids_in_order(&self, slots: impl IntoIterator<Item = Slot>, more: impl IntoIterator<Item = String>) -> Vec<String> {
        let mut ids: Vec<String> = slots.into_iter().filter_map(|slot| self.entry(slot)).map(|e| e.account.id.clone()).collect();
        ids.extend(more);
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    /// Every entry, in account id order.
    fn entries_in_order(&self) -> Vec<&Entry> {
        let mut entries: Vec<&Entry> = self.entries.iter().flatten().collect();
        entries.sort_unstable_by(|a, b| a.account.id.cmp(&b.account.id));
        entries
    }

    pub(super) fn get(&self, id: &str) -> Option<&Account> {
        self.slot(id).and_then(|slot| self.entry(slot)).map(|e| &e.account)
    }

    /// The account, to change it: marks it touched.
    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut Account> {
        self.copy_for_trial(id);
        let slot = self.slot(id)?;
        self.unvisited.insert(slot);
        self.touched.insert(slot);
        self.entry_mut(slot).map(|e| &mut e.account)
    }

    /// The account, for the scheduling pass visiting it or to report its status and write its
    /// changes (no work for another pass): only its deadlines are computed again.
    pub(super) fn get_in_pass(&mut self, id: &str) -> Option<&mut Account> {
        self.copy_for_trial(id);
        let slot = self.slot(id)?;
        self.touched.insert(slot);
        self.entry_mut(slot).map(|e| &mut e.account)
    }

    pub(super) fn contains_key(&self, id: &str) -> bool {
        self.slots.contains_key(id)
    }

    /// Every account, in id order.
    pub(super) fn values(&self) -> impl Iterator<Item = &Account> {
        self.entries_in_order().into_iter().map(|e| &e.account)
    }

    /// The accounts whose mirror knows one of `names` (devices' serial numbers, users' client user
    /// ids), in id order: the only accounts a fact about them can change.
    pub(super) fn knowing(&mut self, names: &[&str]) -> Vec<String> {
        for &slot in &self.touched {
            if let Some(entry) = self.entries.get_mut(slot as usize).and_then(Option::as_mut) {
                index_names(&mut self.names, slot, entry);
            }
        }
        let knows = |account: &Account| names.iter().any(|name| account.mirror.lookup(name).is_some());
        let slots = names.iter().flat_map(|name| self.names.candidates(name)).copied();
        self.ids_in_order(slots.filter(|&slot| self.entry(slot).is_some_and(|e| knows(&e.account))), [])
    }

    /// Every account, in id order, to change them all (a global change): marks all touched.
    pub(super) fn iter_mut_all(&mut self) -> impl Iterator<Item = &mut Account> {
        if self.trial.is_some() {
            let ids: Vec<String> = self.slots.keys().cloned().collect();
            ids.iter().for_each(|id| self.copy_for_trial(id));
        }
        self.touch_all();
        let mut accounts: Vec<&mut Account> = self.entries.iter_mut().flatten().map(|e| &mut e.account).collect();
        accounts.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        accounts.into_iter()
    }

    /// Something every account's deadlines depend on changed (the service config's limits).
    pub(super) fn touch_all(&mut self) {
        self.unvisited.extend(self.slots.values().copied());
        self.touched.extend(self.slots.values().copied());
    }

    /// Adds an account (touched: it is new), in place of one with the same id.
    pub(super) fn insert(&mut self, account: Account) {
        self.remove(&account.id.clone());
        let slot = self.free.pop().unwrap_or_else(|| {
            self.entries.push(None);
            (self.entries.len() - 1) as Slot
        });
        self.slots.insert(account.id.clone(), slot);
        let id = Arc::from(account.id.as_str());
        self.entries[slot as usize] = Some(Entry { account, id, names_indexed: 0, visit_at: Millis::MAX, wakeup: None, status_at: None });
        self.unvisited.insert(slot);
        self.touched.insert(slot);
    }

    /// Starts a trial: until [`Roster::end_trial`], changes go to copies of the accounts.
    pub(super) fn begin_trial(&mut self) {
        self.trial = Some(Trial { originals: BTreeMap::new(), unvisited: self.unvisited.clone(), touched: self.touched.clone() });
    }

    /// During a trial, puts a copy of account `id` in its place (once).
    fn copy_for_trial(&mut self, id: &str) {
        let Some(trial) = &mut self.trial else { return };
        if trial.originals.contains_key(id) {
            return;
        }
        let Some(slot) = self.slots.get(id).copied() else {
            return;
        };
        if let Some(entry) = self.entries.get_mut(slot as usize).and_then(Option::as_mut) {
            let copy = entry.account.clone();
            trial.originals.insert(id.to_owned(), std::mem::replace(&mut entry.account, copy));
        }
    }

    /// The accounts the trial changed: each copy, as changed, with its original.
    pub(super) fn trial_accounts(&self) -> impl Iterator<Item = (&Account, &Account)> {
        let originals = self.trial.iter().flat_map(|t| &t.originals);
        originals.filter_map(|(id, original)| self.get(id).map(|copy| (copy, original)))
    }

    /// The ids of the accounts the trial changed.
    pub(super) fn trial_ids(&self) -> Vec<String> {
        self.trial.iter().flat_map(|t| t.originals.keys().cloned()).collect()
    }

    /// Ends a trial: the originals come back, with the marks they had; names only the copies
    /// knew leave the name index.
    pub(super) fn end_trial(&mut self) {
        let Some(trial) = self.trial.take() else {
            return;
        };
        for (id, original) in trial.originals {
            let Some(slot) = self.slot(&id) else { continue };
            let Some(entry) = self.entries.get_mut(slot as usize).and_then(Option::as_mut) else {
                continue;
            };
            let known = original.mirror.name_count();
            for n in known..entry.names_indexed {
                self.names.remove(entry.account.mirror.name(n as u32), slot);
            }
            entry.names_indexed = entry.names_indexed.min(known);
            entry.account = original;
        }
        self.unvisited = trial.unvisited;
        self.touched = trial.touched;
    }

    /// The accounts, taken out in id order (the roster is dropped).
    pub(super) fn into_accounts(self) -> impl Iterator<Item = Account> {
        let mut accounts: Vec<Account> = self.entries.into_iter().flatten().map(|e| e.account).collect();
        accounts.sort_unstable_by(|a, b| a.id.cmp(&b.id));
        accounts.into_iter()
    }

    /// Removes an account and its deadlines and names.
    pub(super) fn remove(&mut self, id: &str) -> Option<Account> {
        let slot = self.slots.remove(id)?;
        let entry = self.entries.get_mut(slot as usize).and_then(Option::take)?;
        self.visits.remove(&(entry.visit_at, slot));
        if let Some((at, _)) = entry.wakeup {
            self.wakeups.remove(&(at, entry.id.clone(), slot));
        }
        if let Some(at) = entry.status_at {
            self.statuses.remove(&(at, slot));
        }
        for name in (0..entry.names_indexed).map(|n| entry.account.mirror.name(n as u32)) {
            self.names.remove(name, slot);
        }
        self.unvisited.remove(&slot);
        self.touched.remove(&slot);
        self.free.push(slot);
        Some(entry.account)
    }

    /// The accounts a scheduling pass at `now` visits, in id order: the touched ones and those
    /// whose visit time has come. They count as touched again (the pass may change them).
    pub(super) fn take_pass(&mut self, now: Millis) -> Vec<String> {
        let mut slots = std::mem::take(&mut self.unvisited);
        slots.extend(self.visits.range(..due_by(now)).map(|&(_, slot)| slot));
        self.touched.extend(slots.iter().copied());
        self.ids_in_order(slots, [])
    }

    /// The accounts whose status may have changed at `now`, in id order: the touched ones and
    /// those whose backoff ended, with `changed` (accounts with changes to write, in id order)
    /// merged in.
    pub(super) fn status_candidates<'a>(&self, now: Millis, changed: impl Iterator<Item = &'a String>) -> Vec<String> {
        let due = self.statuses.range(..due_by(now)).map(|&(_, slot)| slot);
        self.ids_in_order(self.touched.iter().copied().chain(due), changed.cloned())
    }

    /// Recomputes the deadlines of the touched accounts and indexes their new names. Call after
    /// every change (the engine's `settle`), and before reading the name index.
    pub(super) fn reschedule_touched(&mut self, now: Millis, config: &EngineConfig, limits: &Limits) {
        for slot in std::mem::take(&mut self.touched) {
            let Some(entry) = self.entries.get_mut(slot as usize).and_then(Option::as_mut) else {
                continue;
            };
            let account = &entry.account;
            let wakeup = account.next_due(now, config, limits);
            let visit_at = account.next_visit(now, config, limits).min(wakeup.map_or(Millis::MAX, |(at, _)| at));
            if visit_at != entry.visit_at {
                self.visits.remove(&(entry.visit_at, slot));
                if visit_at != Millis::MAX {
                    self.visits.insert((visit_at, slot));
                }
                entry.visit_at = visit_at;
            }
            if wakeup.map(|w| w.0) != entry.wakeup.map(|w| w.0) {
                if let Some((at, _)) = entry.wakeup {
                    self.wakeups.remove(&(at, entry.id.clone(), slot));
                }
                if let Some((at, _)) = wakeup {
                    self.wakeups.insert((at, entry.id.clone(), slot));
                }
            }
            entry.wakeup = wakeup;
            let status_at = account.status_changes_at(now);
            if status_at != entry.status_at {
                if let Some(at) = entry.status_at {
                    self.statuses.remove(&(at, slot));
                }
                if let Some(at) = status_at {
                    self.statuses.insert((at, slot));
                }
                entry.status_at = status_at;
            }
            index_names(&mut self.names, slot, entry);
        }
    }

    /// The earliest wake-up an account asks for at `now`: (time, reason, account id), the
    /// first account in id order among equal times.
    pub(super) fn next_wakeup<'s>(
        &'s self,
        now: Millis,
        config: &EngineConfig,
        limits: &Limits,
    ) -> Option<(Millis, &'static str, &'s str)> {
        let mut best: Option<(Millis, &'static str, &'s str)> = None;
        let mut consider = |at: Millis, reason: &'static str, id: &'s str| {
            if best.is_none_or(|(best_at, _, best_id)| (at, id) < (best_at, best_id)) {
                best = Some((at, reason, id));
            }
        };
        // Touched accounts, and those whose visit time has come, are asked now; the others'
        // wake-ups hold until their visit time.
        let live = self.touched.iter().chain(self.visits.range(..due_by(now)).map(|(_, slot)| slot));
        for entry in live.filter_map(|&slot| self.entry(slot)) {
            if let Some((at, reason)) = entry.account.next_due(now, config, limits) {
                consider(at, reason, &entry.account.id);
            }
        }
        let mut held = self.wakeups.iter().filter(|(_, _, slot)| !self.touched.contains(slot)).filter_map(|(_, _, slot)| self.entry(*slot));
        if let Some(entry) = held.find(|e| e.visit_at > now) {
            if let Some((at, reason)) = entry.wakeup {
                consider(at, reason, &entry.account.id);
            }
        }
        best
    }
}

/// Puts the names the account interned since the last call into the index.
fn index_names(index: &mut NameIndex, slot: Slot, entry: &mut Entry) {
    let mirror = &entry.account.mirror;
    for n in entry.names_indexed..mirror.name_count() {
        index.add(mirror.name(n as u32), slot);
    }
    entry.names_indexed = mirror.name_count();
}

/// The end (excluded) of the deadlines due at `now`.
fn due_by(now: Millis) -> (Millis, Slot) {
    (now.saturating_add(1), 0)
}
