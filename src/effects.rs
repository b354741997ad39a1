//! The boundary between the engine and the state machines it drives: what a state machine reads
//! while it works ([`Env`]), and the one value it reports what it did into ([`Effects`]).
//!
//! The engine owns one [`Effects`]. Every change — an input, an answer, a notification, a timer
//! — is handed a part of it: [`Effects::account`] lends an account's state machines (ownership,
//! sync, licenses, the mirror) an [`AccountEffects`], in which they record the events the host
//! must hear of and the store changes to write. When the change is done, the engine turns the
//! events into outputs, and `engine/records.rs` maps the store changes to `Persist` records.
//! Nothing outside a state machine reads its state to find out what changed.
//!
//! Store changes are kept by key, the last word winning: a pair adopted and released in one step
//! is written once, as released. Mirror changes may wait for later outputs (at most
//! [`crate::DRAIN_BATCH_RECORDS`] records per output), so an account's changes live here until
//! written.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;

use crate::apple::ServiceConfig;
use crate::base::time::Millis;
use crate::contract::config::EngineConfig;
use crate::contract::event::Event;
use crate::mirror::MirrorChanges;
use crate::persist::{PolicyRecord, ScopeRecord};
use crate::vocab::AssignmentKey;

/// What a state machine reads while it works: the time, the configuration, Apple's service
/// config and the license removal notification toggle. Lent by the engine for one call.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    pub now: Millis,
    pub config: &'a EngineConfig,
    pub service: &'a ServiceConfig,
    /// The license removal notification toggle (`notifyUser` events on releases).
    pub notify_users: bool,
}

impl<'a> Env<'a> {
    /// What the engine lends a state machine for one call at `now`.
    pub fn new(now: Millis, config: &'a EngineConfig, service: &'a ServiceConfig, notify_users: bool) -> Self {
        Self { now, config, service, notify_users }
    }
}

/// A change to a record that belongs to no single account's state machines, in the order made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EngineChange {
    /// A policy was set (its record holds everything but its targets).
    PolicySet(PolicyRecord),
    PolicyRemoved { policy_id: String },
    /// A target entered (or left) a policy's scope.
    Scope { record: ScopeRecord, in_scope: bool },
    /// The license removal notification toggle changed.
    Settings { license_removal_notification: bool },
    AccountDeleted { account_id: String },
}

/// The store changes of one account, by key.
#[derive(Debug, Default)]
pub struct AccountChanges {
    /// The account record (name, token, ownership, schedule, …) changed.
    pub record: bool,
    /// The mirror's assets, assignments and users to write.
    pub mirror: MirrorChanges,
    /// Provenance: pair → now ours?
    pub ours: BTreeMap<AssignmentKey, bool>,
    /// Holds: pair → its reason, or `None` when lifted.
    pub holds: BTreeMap<AssignmentKey, Option<String>>,
    /// Awaited pairs: pair → still awaited?
    pub awaited: BTreeMap<AssignmentKey, bool>,
    /// Users Apple refused to register: user (interned) → why, or `None` when lifted.
    pub user_holds: BTreeMap<u32, Option<String>>,
    /// Operations whose record must be written (or deleted, when gone).
    pub operations: BTreeSet<u64>,
}

/// Everything the engine's state machines did that the host must hear of or the store must keep.
#[derive(Debug, Default)]
pub struct Effects {
    events: Vec<Event>,
    engine: Vec<EngineChange>,
    /// Device and user facts whose records must be written.
    devices: BTreeSet<String>,
    users: BTreeSet<String>,
    accounts: BTreeMap<String, AccountChanges>,
}

impl Effects {
    /// The part of the effects account `account_id`'s state machines report into (kept while the
    /// account is: it is made once).
    pub fn account<'a>(&'a mut self, account_id: &str) -> AccountEffects<'a> {
        if !self.accounts.contains_key(account_id) {
            self.accounts.insert(account_id.to_owned(), AccountChanges::default());
        }
        let range = (Bound::Included(account_id), Bound::Included(account_id));
        let (id, changes) = self.accounts.range_mut::<str, _>(range).next().expect("inserted above");
        AccountEffects { account_id: id, events: &mut self.events, changes }
    }

    /// An event for the host.
    pub fn event(&mut self, event: Event) {
        self.events.push(event);
    }

    /// A record that belongs to no account's state machines changed.
    pub fn engine_change(&mut self, change: EngineChange) {
        self.engine.push(change);
    }

    /// The facts of device `serial` changed.
    pub fn device_changed(&mut self, serial: &str) {
        if !self.devices.contains(serial) {
            self.devices.insert(serial.to_owned());
        }
    }

    /// The facts of user `client_user_id` changed.
    pub fn user_changed(&mut self, client_user_id: &str) {
        if !self.users.contains(client_user_id) {
            self.users.insert(client_user_id.to_owned());
        }
    }

    /// Takes the events reported so far, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// Takes the engine-wide changes, in order.
    pub fn take_engine_changes(&mut self) -> Vec<EngineChange> {
        std::mem::take(&mut self.engine)
    }

    /// Takes the devices and users whose facts changed.
    pub fn take_fact_changes(&mut self) -> (BTreeSet<String>, BTreeSet<String>) {
        (std::mem::take(&mut self.devices), std::mem::take(&mut self.users))
    }

    /// The store changes account `account_id` made and that are not written yet.
    pub fn account_changes(&mut self, account_id: &str) -> Option<&mut AccountChanges> {
        self.accounts.get_mut(account_id)
    }

    /// Forgets what account `account_id` changed and did not write: it was deleted, or another
    /// instance drives it now.
    pub fn forget_account(&mut self, account_id: &str) {
        self.accounts.remove(account_id);
    }

    /// Takes over `other`'s store changes after those already here (an account adopted from the
    /// store: its records were loaded into a separate engine first).
    pub fn absorb(&mut self, other: Effects) {
        self.events.extend(other.events);
        self.engine.extend(other.engine);
        self.devices.extend(other.devices);
        self.users.extend(other.users);
        self.accounts.extend(other.accounts);
    }
}

/// What one account's state machines report into: its events and its store changes.
#[derive(Debug)]
pub struct AccountEffects<'a> {
    account_id: &'a str,
    events: &'a mut Vec<Event>,
    /// The account's store changes, recorded by key.
    pub changes: &'a mut AccountChanges,
}

impl AccountEffects<'_> {
    /// The account the effects are of.
    pub fn account_id(&self) -> &str {
        self.account_id
    }

    /// An event for the host.
    pub fn event(&mut self, event: Event) {
        self.events.push(event);
    }

    /// The account record must be written again.
    pub fn record_changed(&mut self) {
        self.changes.record = true;
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn an_account_keeps_its_changes_until_they_are_written_and_events_stay_in_order() {
        let mut effects = Effects::default();
        effects.event(Event::OwnershipClaimed { account_id: "a".into() });
        let mut fx = effects.account("b");
        assert_eq!(fx.account_id(), "b");
        fx.event(Event::OwnershipClaimed { account_id: "b".into() });
        fx.record_changed();
        assert!(effects.account_changes("b").is_some_and(|changes| changes.record));
        assert!(effects.account_changes("c").is_none(), "no effects yet");
        let ids: Vec<String> = effects
            .take_events()
            .into_iter()
            .map(|e| match e {
                Event::OwnershipClaimed { account_id } => account_id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["a", "b"]);
        effects.forget_account("b");
        assert!(effects.account_changes("b").is_none());
    }
}
