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
//! is written once, as released; the provenance of a device or user is kept as the target whose
//! record must be written, and that record is built from the state when written. Mirror changes may wait for later outputs (at most
//! [`crate::DRAIN_BATCH_RECORDS`] records per output), so an account's changes live here until
//! written. An account's entry is made at its first change and dropped once everything in it is
//! written: lending an account its part costs nothing until it changes something.

use std::collections::{BTreeMap, BTreeSet};

use crate::apple::ServiceConfig;
use crate::base::time::Millis;
use crate::contract::config::EngineConfig;
use crate::contract::event::Event;
use crate::mirror::MirrorChanges;
use crate::vocab::{AssignmentKey, Target};

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
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum EngineChange {
    /// A policy was set or removed: its record (everything but its targets) is written as the
    /// policy is when written, deleted if it is gone.
    Policy {
        policy_id: String,
    },
    /// Targets entered or left the scope of a policy: record `index` of its targets is written
    /// as it is when written (deleted once empty, or when the policy is gone or in another account).
    Scope {
        account_id: String,
        policy_id: String,
        index: u32,
    },
    /// A record of an earlier engine's format, replaced by the records of this one.
    Replaced {
        key: String,
    },
    /// The license removal notification toggle changed.
    Settings {
        license_removal_notification: bool,
    },
    AccountDeleted {
        account_id: String,
    },
}

/// The store changes of one account, by key.
#[derive(Debug, Default)]
pub struct AccountChanges {
    /// The account record (name, token, ownership, schedule, …) changed.
    pub record: bool,
    /// The mirror's assets, assignments and users to write.
    pub mirror: MirrorChanges,
    /// Provenance: the devices and users whose record (the pairs of ours they hold) must be
    /// written, or deleted when none is left.
    pub ours: BTreeSet<Target>,
    /// Records of an earlier engine to delete: per-pair provenance records, restored and written
    /// again per device or user (their targets are in `ours`).
    pub stale: Vec<String>,
    /// Holds: pair → its reason, or `None` when lifted.
    pub holds: BTreeMap<AssignmentKey, Option<String>>,
    /// Awaited pairs: pair → still awaited?
    pub awaited: BTreeMap<AssignmentKey, bool>,
    /// Users Apple refused to register: user (interned) → why, or `None` when lifted.
    pub user_holds: BTreeMap<u32, Option<String>>,
    /// Operations whose record must be written (or deleted, when gone).
    pub operations: BTreeSet<u64>,
}

impl AccountChanges {
    fn is_empty(&self) -> bool {
        !self.record
            && self.mirror.is_empty()
            && self.ours.is_empty()
            && self.stale.is_empty()
            && self.holds.is_empty()
            && self.awaited.is_empty()
            && self.user_holds.is_empty()
            && self.operations.is_empty()
    }
}

/// Everything the engine's state machines did that the host must hear of or the store must keep.
#[derive(Debug, Default)]
pub struct Effects {
    events: Vec<Event>,
    engine: Vec<EngineChange>,
    /// Device and user facts whose records must be written.
    devices: BTreeSet<String>,
    users: BTreeSet<String>,
    /// By account id (few: an account's entry goes once its changes are written).
    accounts: Vec<(String, AccountChanges)>,
}

impl Effects {
    /// The part of the effects account `account_id`'s state machines report into.
    pub fn account<'a>(&'a mut self, account_id: &'a str) -> AccountEffects<'a> {
        AccountEffects { account_id, events: &mut self.events, changes: Changes::Unopened(&mut self.accounts) }
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

    /// The accounts with store changes not written yet, by id.
    pub fn changed_accounts(&mut self) -> impl Iterator<Item = (&String, &mut AccountChanges)> {
        self.accounts.iter_mut().map(|(id, changes)| (&*id, changes))
    }

    /// Forgets the accounts whose changes are all written. Call after writing.
    pub fn drop_written(&mut self) {
        self.accounts.retain(|(_, changes)| !changes.is_empty());
    }

    /// Forgets what account `account_id` changed and did not write: it was deleted, or another
    /// instance drives it now.
    pub fn forget_account(&mut self, account_id: &str) {
        self.accounts.retain(|(id, _)| id != account_id);
    }

    /// Takes over `other`'s store changes after those already here (an account adopted from the
    /// store: its records were loaded into a separate engine first).
    pub fn absorb(&mut self, other: Effects) {
        self.events.extend(other.events);
        self.engine.extend(other.engine);
        self.devices.extend(other.devices);
        self.users.extend(other.users);
        self.accounts.extend(other.accounts);
        self.accounts.sort_unstable_by(|(a, _), (b, _)| a.cmp(b));
    }
}

/// What one account's state machines report into: its events and its store changes.
#[derive(Debug)]
pub struct AccountEffects<'a> {
    account_id: &'a str,
    events: &'a mut Vec<Event>,
    changes: Changes<'a>,
}

/// An account's store changes: found (or made) at the first change.
#[derive(Debug)]
enum Changes<'a> {
    Unopened(&'a mut Vec<(String, AccountChanges)>),
    Open(&'a mut AccountChanges),
    /// Only while opening.
    Opening,
}

impl AccountEffects<'_> {
    /// The account's store changes, recorded by key: report a change here.
    pub fn changes(&mut self) -> &mut AccountChanges {
        if let Changes::Unopened(_) = self.changes {
            let Changes::Unopened(accounts) = std::mem::replace(&mut self.changes, Changes::Opening) else { unreachable!("matched above") };
            let at = match accounts.binary_search_by(|(id, _)| id.as_str().cmp(self.account_id)) {
                Ok(at) => at,
                Err(at) => {
                    accounts.insert(at, (self.account_id.to_owned(), AccountChanges::default()));
                    at
                }
            };
            self.changes = Changes::Open(&mut accounts[at].1);
        }
        match &mut self.changes {
            Changes::Open(changes) => changes,
            Changes::Unopened(_) | Changes::Opening => unreachable!("opened above"),
        }
    }

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
        self.changes().record = true;
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
        effects.account("c").event(Event::OwnershipClaimed { account_id: "c".into() });
        let changed: Vec<(String, bool)> = effects.changed_accounts().map(|(id, changes)| (id.clone(), changes.record)).collect();
        assert_eq!(changed, [("b".to_owned(), true)], "an account that changed nothing stored has no entry");
        let ids: Vec<String> = effects
            .take_events()
            .into_iter()
            .map(|e| match e {
                Event::OwnershipClaimed { account_id } => account_id,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ids, ["a", "b", "c"]);
        effects.changed_accounts().for_each(|(_, changes)| changes.record = false);
        effects.drop_written();
        assert_eq!(effects.changed_accounts().count(), 0, "written");
    }
}
