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

use std::collections::{BTreeMap, BTreeSet};

use super::name_index::NameIndex;
use crate::account::Account;
use crate::apple::Limits;
use crate::base::time::Millis;
use crate::contract::config::EngineConfig;

#[derive(Debug)]
struct Entry {
    account: Account,
    /// The account's number in the name index.
    slot: u32,
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
    entries: BTreeMap<String, Entry>,
    /// Touched since the last scheduling pass visited them.
    unvisited: BTreeSet<String>,
    /// Touched since their deadlines were last computed.
    touched: BTreeSet<String>,
    visits: BTreeSet<(Millis, String)>,
    wakeups: BTreeSet<(Millis, String)>,
    statuses: BTreeSet<(Millis, String)>,
    names: NameIndex,
    /// The account id of each slot (`None`: free).
    slots: Vec<Option<String>>,
    /// The free slots.
    free: Vec<u32>,
    /// While a preview runs: the accounts it may change are copies, the originals wait here.
    trial: Option<Trial>,
}

/// The accounts a preview put aside (see `engine/preview.rs`): the first mutable access to an
/// account during a trial swaps in a copy, so that the preview changes copies only and costs what
/// the accounts it touches cost.
#[derive(Debug)]
struct Trial {
    originals: BTreeMap<String, Account>,
    unvisited: BTreeSet<String>,
    touched: BTreeSet<String>,
}

impl Roster {
    pub(super) fn get(&self, id: &str) -> Option<&Account> {
        self.entries.get(id).map(|e| &e.account)
    }

    /// The account, to change it: marks it touched.
    pub(super) fn get_mut(&mut self, id: &str) -> Option<&mut Account> {
        self.copy_for_trial(id);
        let entry = self.entries.get_mut(id)?;
        if !self.unvisited.contains(id) {
            self.unvisited.insert(id.to_owned());
        }
        if !self.touched.contains(id) {
            self.touched.insert(id.to_owned());
        }
        Some(&mut entry.account)
    }

    /// The account, for the scheduling pass visiting it or to report its status and write its
    /// changes (no work for another pass): only its deadlines are computed again.
    pub(super) fn get_in_pass(&mut self, id: &str) -> Option<&mut Account> {
        self.copy_for_trial(id);
        let entry = self.entries.get_mut(id)?;
        if !self.touched.contains(id) {
            self.touched.insert(id.to_owned());
        }
        Some(&mut entry.account)
    }

    pub(super) fn contains_key(&self, id: &str) -> bool {
        self.entries.contains_key(id)
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &Account> {
        self.entries.values().map(|e| &e.account)
    }

    /// The accounts whose mirror knows one of `names` (devices' serial numbers, users' client user
    /// ids), in id order: the only accounts a fact about them can change.
    pub(super) fn knowing(&mut self, names: &[&str]) -> Vec<String> {
        for id in &self.touched {
            if let Some(entry) = self.entries.get_mut(id) {
                index_names(&mut self.names, entry);
            }
        }
        let mut ids = BTreeSet::new();
        for slot in names.iter().flat_map(|name| self.names.candidates(name)) {
            let Some(id) = self.slots.get(*slot as usize).and_then(Option::as_ref) else { continue };
            let knows = |account: &Account| names.iter().any(|name| account.mirror.lookup(name).is_some());
            if self.entries.get(id).is_some_and(|e| knows(&e.account)) {
                ids.insert(id.clone());
            }
        }
        ids.into_iter().collect()
    }

    /// Every account, to change them all (a global change): marks all touched.
    pub(super) fn iter_mut_all(&mut self) -> impl Iterator<Item = (&String, &mut Account)> {
        if self.trial.is_some() {
            let ids: Vec<String> = self.entries.keys().cloned().collect();
            ids.iter().for_each(|id| self.copy_for_trial(id));
        }
        self.touch_all();
        self.entries.iter_mut().map(|(id, e)| (id, &mut e.account))
    }

    /// Something every account's deadlines depend on changed (the service config's limits).
    pub(super) fn touch_all(&mut self) {
        self.unvisited.extend(self.entries.keys().cloned());
        self.touched.extend(self.entries.keys().cloned());
    }

    /// Adds an account (touched: it is new).
    pub(super) fn insert(&mut self, account: Account) {
        let id = account.id.clone();
        let slot = self.free.pop().unwrap_or_else(|| {
            self.slots.push(None);
            (self.slots.len() - 1) as u32
        });
        self.slots[slot as usize] = Some(id.clone());
        let entry = Entry { account, slot, names_indexed: 0, visit_at: Millis::MAX, wakeup: None, status_at: None };
        if let Some(old) = self.entries.insert(id.clone(), entry) {
            self.forget(&id, &old);
        }
        self.unvisited.insert(id.clone());
        self.touched.insert(id);
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
        if let Some(entry) = self.entries.get_mut(id) {
            let copy = entry.account.clone();
            trial.originals.insert(id.to_owned(), std::mem::replace(&mut entry.account, copy));
        }
    }

    /// The accounts the trial changed: each copy, as changed, with its original.
    pub(super) fn trial_accounts(&self) -> impl Iterator<Item = (&Account, &Account)> {
        let originals = self.trial.iter().flat_map(|t| &t.originals);
        originals.filter_map(|(id, original)| self.entries.get(id).map(|e| (&e.account, original)))
    }

    /// The ids of the accounts the trial changed.
    pub(super) fn trial_ids(&self) -> Vec<String> {
        self.trial.iter().flat_map(|t| t.originals.keys().cloned()).collect()
    }

    /// Ends a trial: the originals come back, with the marks they had; names only the copies
    /// knew leave the name index.
    pub(super) fn end_trial(&mut self) {
        let Some(trial) = self.trial.take() else { return };
        for (id, original) in trial.originals {
            let Some(entry) = self.entries.get_mut(&id) else { continue };
            let known = original.mirror.name_count();
            for n in known..entry.names_indexed {
                self.names.remove(entry.account.mirror.name(n as u32), entry.slot);
            }
            entry.names_indexed = entry.names_indexed.min(known);
            entry.account = original;
        }
        self.unvisited = trial.unvisited;
        self.touched = trial.touched;
    }

    /// The accounts, taken out (the roster is dropped).
    pub(super) fn into_accounts(self) -> impl Iterator<Item = Account> {
        self.entries.into_values().map(|e| e.account)
    }

    /// Removes an account and its deadlines and names.
    pub(super) fn remove(&mut self, id: &str) -> Option<Account> {
        let entry = self.entries.remove(id)?;
        self.forget(id, &entry);
        self.unvisited.remove(id);
        self.touched.remove(id);
        Some(entry.account)
    }

    fn forget(&mut self, id: &str, entry: &Entry) {
        self.visits.remove(&(entry.visit_at, id.to_owned()));
        if let Some((at, _)) = entry.wakeup {
            self.wakeups.remove(&(at, id.to_owned()));
        }
        if let Some(at) = entry.status_at {
            self.statuses.remove(&(at, id.to_owned()));
        }
        for name in (0..entry.names_indexed).map(|n| entry.account.mirror.name(n as u32)) {
            self.names.remove(name, entry.slot);
        }
        if self.slots.get(entry.slot as usize).is_some_and(|s| s.as_deref() == Some(id)) {
            self.slots[entry.slot as usize] = None;
            self.free.push(entry.slot);
        }
    }

    /// The accounts a scheduling pass at `now` visits, in id order: the touched ones and those
    /// whose visit time has come. They count as touched again (the pass may change them).
    pub(super) fn take_pass(&mut self, now: Millis) -> Vec<String> {
        let mut ids = std::mem::take(&mut self.unvisited);
        ids.extend(self.visits.range(..due_by(now)).map(|(_, id)| id.clone()));
        self.touched.extend(ids.iter().cloned());
        ids.into_iter().collect()
    }

    /// The accounts whose status may have changed at `now`, in id order: the touched ones and
    /// those whose backoff ended, with `changed` (accounts with changes to write, in id order)
    /// merged in.
    pub(super) fn status_candidates<'a>(&self, now: Millis, changed: impl Iterator<Item = &'a String>) -> Vec<String> {
        let mut ids: BTreeSet<String> = self.touched.clone();
        ids.extend(self.statuses.range(..due_by(now)).map(|(_, id)| id.clone()));
        ids.extend(changed.cloned());
        ids.into_iter().collect()
    }

    /// Recomputes the deadlines of the touched accounts and indexes their new names. Call after
    /// every change (the engine's `settle`), and before reading the name index.
    pub(super) fn reschedule_touched(&mut self, now: Millis, config: &EngineConfig, limits: &Limits) {
        for id in std::mem::take(&mut self.touched) {
            let Some(entry) = self.entries.get_mut(&id) else {
                continue;
            };
            let account = &entry.account;
            let wakeup = account.next_due(now, config, limits);
            let visit_at = account.next_visit(now, config, limits).min(wakeup.map_or(Millis::MAX, |(at, _)| at));
            if visit_at != entry.visit_at {
                self.visits.remove(&(entry.visit_at, id.clone()));
                if visit_at != Millis::MAX {
                    self.visits.insert((visit_at, id.clone()));
                }
                entry.visit_at = visit_at;
            }
            if wakeup.map(|w| w.0) != entry.wakeup.map(|w| w.0) {
                if let Some((at, _)) = entry.wakeup {
                    self.wakeups.remove(&(at, id.clone()));
                }
                if let Some((at, _)) = wakeup {
                    self.wakeups.insert((at, id.clone()));
                }
            }
            entry.wakeup = wakeup;
            let status_at = account.status_changes_at(now);
            if status_at != entry.status_at {
                if let Some(at) = entry.status_at {
                    self.statuses.remove(&(at, id.clone()));
                }
                if let Some(at) = status_at {
                    self.statuses.insert((at, id.clone()));
                }
                entry.status_at = status_at;
            }
            index_names(&mut self.names, entry);
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
        let live = self.touched.iter().chain(self.visits.range(..due_by(now)).map(|(_, id)| id));
        for (id, entry) in live.filter_map(|id| self.entries.get_key_value(id.as_str())) {
            if let Some((at, reason)) = entry.account.next_due(now, config, limits) {
                consider(at, reason, id);
            }
        }
        let mut held = self.wakeups.iter().filter_map(|(_, id)| self.entries.get_key_value(id.as_str()));
        if let Some((id, entry)) = held.find(|(id, e)| !self.touched.contains(*id) && e.visit_at > now) {
            if let Some((at, reason)) = entry.wakeup {
                consider(at, reason, id);
            }
        }
        best
    }
}

/// Puts the names the account interned since the last call into the index.
fn index_names(index: &mut NameIndex, entry: &mut Entry) {
    let mirror = &entry.account.mirror;
    for n in entry.names_indexed..mirror.name_count() {
        index.add(mirror.name(n as u32), entry.slot);
    }
    entry.names_indexed = mirror.name_count();
}

/// The end (excluded) of the deadlines due at `now`.
fn due_by(now: Millis) -> (Millis, String) {
    (now.saturating_add(1), String::new())
}
