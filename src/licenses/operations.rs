//! One license or user change sent to Apple, from submission to Apple's final word.
//!
//! Associate, disassociate, revoke and user creation are asynchronous at Apple: the request
//! returns an `eventId`, and the outcome arrives by notification or `GET /status`. An operation
//! is *queued* (persisted before it is sent), *submitting* (persisted with the time it was sent),
//! then *pending* until every task is resolved. An association that got no answer is
//! *unconfirmed* until a later sync shows what Apple made of it. Apple: poll at least 30 s apart,
//! and re-submit a request still pending after 10 minutes.

use std::collections::{BTreeMap, BTreeSet};

use crate::apple::wire::{AssetRef, Failure, NewUser};
use crate::base::time::Millis;
use crate::mirror::Mirror;
use crate::vocab::{AssetKey, AssignmentKey, OperationKind, Target};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationState {
    Queued,
    /// Sent at `sent_at`, no answer yet.
    Submitting { sent_at: Millis },
    Pending { event_id: String, submitted_at: Millis, next_poll_at: Millis, polling: bool },
    /// An association sent but never answered (crash, lost response): Apple may have made it.
    /// The first sync that starts at or after `confirm_after` tells which pairs it holds; the
    /// rest are planned again.
    Unconfirmed { sent_at: Millis, confirm_after: Millis },
}

#[derive(Debug, Clone)]
pub struct Operation {
    pub id: u64,
    pub kind: OperationKind,
    pub assets: Vec<AssetKey>,
    pub targets: Vec<Target>,
    pub new_users: Vec<NewUser>,
    /// Why (for releases: what triggered them).
    pub reason: String,
    pub state: OperationState,
    /// Tasks already settled by notifications, so a later `/status` answer doesn't apply them twice.
    /// Kept as assignment keys: one ordered-set type for every pair set (wasm size).
    resolved: BTreeSet<AssignmentKey>,
}

impl Operation {
    pub fn new(id: u64, kind: OperationKind, assets: Vec<AssetKey>, targets: Vec<Target>, reason: String) -> Self {
        Self {
            id,
            kind,
            assets,
            targets,
            new_users: Vec::new(),
            reason,
            state: OperationState::Queued,
            resolved: BTreeSet::new(),
        }
    }

    /// Whether the task `(asset, target)` was settled already.
    pub fn is_resolved(&self, &(asset, target): &(AssetKey, Target)) -> bool {
        self.resolved.contains(&AssignmentKey { asset, target })
    }

    /// Marks the task `(asset, target)` settled; false if it was already.
    pub fn resolve(&mut self, (asset, target): (AssetKey, Target)) -> bool {
        self.resolved.insert(AssignmentKey { asset, target })
    }

    pub fn event_id(&self) -> Option<&str> {
        match &self.state {
            OperationState::Pending { event_id, .. } => Some(event_id),
            _ => None,
        }
    }

    /// Every (asset, target) task of an associate or disassociate.
    pub fn tasks(&self) -> impl Iterator<Item = (AssetKey, Target)> + '_ {
        self.assets.iter().flat_map(move |a| self.targets.iter().map(move |t| (*a, *t)))
    }

    /// The JSON body of the request.
    pub fn body(&self, mirror: &Mirror) -> String {
        let names = |kind: fn(&Target) -> Option<u32>| -> Vec<&str> {
            self.targets.iter().filter_map(kind).map(|id| mirror.name(id)).collect()
        };
        let serials = names(|t| match t {
            Target::Device(id) => Some(*id),
            Target::User(_) => None,
        });
        let users = names(|t| match t {
            Target::User(id) => Some(*id),
            Target::Device(_) => None,
        });
        let mut body = serde_json::Map::new();
        match self.kind {
            OperationKind::CreateUsers => {
                body.insert("users".into(), serde_json::json!(self.new_users));
            }
            kind => {
                if kind != OperationKind::Revoke {
                    let assets: Vec<AssetRef> = self.assets.iter().map(|a| mirror.asset_ref(a)).collect();
                    body.insert("assets".into(), serde_json::json!(assets));
                }
                if !serials.is_empty() {
                    body.insert("serialNumbers".into(), serde_json::json!(serials));
                }
                if !users.is_empty() {
                    body.insert("clientUserIds".into(), serde_json::json!(users));
                }
            }
        }
        serde_json::Value::Object(body).to_string()
    }

    /// The tasks a failed event reports as failed, with the error. A failure naming no assets
    /// applies to all of the operation's assets; one naming no targets, to all its targets.
    pub fn failed_tasks(&self, failures: &[Failure], mirror: &Mirror) -> Vec<(AssetKey, Target, Option<i64>, String)> {
        let mut failed = Vec::new();
        for failure in failures {
            let info = failure.error_info.clone().unwrap_or_default();
            let assets: Vec<AssetKey> = if info.assets.is_empty() {
                self.assets.clone()
            } else {
                self.assets
                    .iter()
                    .filter(|a| info.assets.iter().any(|r| mirror.name(a.adam_id) == r.adam_id && r.pricing_param.is_none_or(|p| p == a.pricing)))
                    .copied()
                    .collect()
            };
            // Ordered sets and maps are filled by `extend`: `collect` (their `FromIterator`) links one stable-sort
            // copy per element type into the wasm (issue 7's size target); only 1M-key sets keep it.
            let mut named = BTreeSet::new();
            named.extend(
                info.serial_numbers
                    .iter()
                    .filter_map(|s| mirror.lookup(s).map(Target::Device))
                    .chain(info.client_user_ids.iter().filter_map(|u| mirror.lookup(u).map(Target::User))),
            );
            let targets: Vec<Target> = if info.serial_numbers.is_empty() && info.client_user_ids.is_empty() {
                self.targets.clone()
            } else {
                self.targets.iter().filter(|t| named.contains(t)).copied().collect()
            };
            let message = failure.error_message.clone().unwrap_or_else(|| "Apple reported a failure".to_owned());
            for asset in &assets {
                for target in &targets {
                    failed.push((*asset, *target, failure.error_number, message.clone()));
                }
            }
        }
        failed
    }
}

/// The open operations of one account, by id, with what falls due kept in order: asking what
/// to send or when to wake up does not walk every operation. Change an operation only through
/// [`Operations::update`], which keeps the order.
#[derive(Debug, Clone, Default)]
pub struct Operations {
    ops: BTreeMap<u64, Operation>,
    due: Due,
    /// The id of the last operation created (or restored).
    last_id: u64,
    /// Pairs an open release (disassociate or revoke) is releasing, with the reason.
    pub releasing: BTreeMap<AssignmentKey, String>,
    /// Users (interned) an open user creation is registering.
    pub registering: BTreeSet<u32>,
    /// A user creation completed while the outcome being applied was: taken (and returned) by it.
    pub registered: bool,
}

/// The orders [`Operations`] keeps, by state and kind.
#[derive(Debug, Clone, Default)]
struct Due {
    /// Ids of the queued operations.
    queued: BTreeSet<u64>,
    /// (next poll, id) of the pending operations not being polled.
    polls: BTreeSet<(Millis, u64)>,
    /// (confirm after, id) of the unconfirmed associations.
    unconfirmed: BTreeSet<(Millis, u64)>,
    /// Ids of the revokes.
    revokes: BTreeSet<u64>,
}

impl Due {
    /// Adds `op` to (or, unless `present`, removes it from) the orders its state and kind put it in.
    fn set(&mut self, op: &Operation, present: bool) {
        fn set<T: Ord>(set: &mut BTreeSet<T>, value: T, present: bool) {
            if present {
                set.insert(value);
            } else {
                set.remove(&value);
            }
        }
        match op.state {
            OperationState::Queued => set(&mut self.queued, op.id, present),
            OperationState::Pending { next_poll_at, polling: false, .. } => set(&mut self.polls, (next_poll_at, op.id), present),
            OperationState::Unconfirmed { confirm_after, .. } => set(&mut self.unconfirmed, (confirm_after, op.id), present),
            OperationState::Pending { polling: true, .. } | OperationState::Submitting { .. } => {}
        }
        if op.kind == OperationKind::Revoke {
            set(&mut self.revokes, op.id, present);
        }
    }
}

impl Operations {
    /// A new operation, queued, with the next id (not added yet: see [`Operations::insert`]).
    pub fn create(&mut self, kind: OperationKind, assets: Vec<AssetKey>, targets: Vec<Target>, reason: String) -> Operation {
        self.last_id += 1;
        Operation::new(self.last_id, kind, assets, targets, reason)
    }

    /// Adds an operation read back from the store: later operations get higher ids.
    pub fn restore(&mut self, op: Operation) {
        self.last_id = self.last_id.max(op.id);
        self.insert(op);
    }

    /// Adds `op` (or replaces the operation of its id).
    pub fn insert(&mut self, op: Operation) {
        self.remove(op.id);
        self.due.set(&op, true);
        self.ops.insert(op.id, op);
    }

    pub fn remove(&mut self, id: u64) -> Option<Operation> {
        let op = self.ops.remove(&id)?;
        self.due.set(&op, false);
        Some(op)
    }

    pub fn get(&self, id: u64) -> Option<&Operation> {
        self.ops.get(&id)
    }

    /// Every operation, by id.
    pub fn values(&self) -> impl Iterator<Item = &Operation> {
        self.ops.values()
    }

    /// Changes operation `id` with `change` (if it is open), returning what `change` returns.
    pub fn update<R>(&mut self, id: u64, change: impl FnOnce(&mut Operation) -> R) -> Option<R> {
        let op = self.ops.get_mut(&id)?;
        self.due.set(op, false);
        let result = change(op);
        self.due.set(op, true);
        Some(result)
    }

    /// The queued operation of the lowest id.
    pub fn first_queued(&self) -> Option<u64> {
        self.due.queued.first().copied()
    }

    /// Whether an operation is not queued (it was sent to Apple and is not finished).
    pub fn any_sent(&self) -> bool {
        self.ops.len() > self.due.queued.len()
    }

    /// The pending operation of the lowest id due for a poll at `now` and not being polled.
    pub fn poll_due(&self, now: Millis) -> Option<u64> {
        self.due.polls.range(..=(now, u64::MAX)).map(|&(_, id)| id).min()
    }

    /// The earliest time a pending operation not being polled is due for a poll.
    pub fn next_poll_at(&self) -> Option<Millis> {
        self.due.polls.first().map(|&(at, _)| at)
    }

    /// The earliest `confirm_after` of the unconfirmed associations.
    pub fn next_confirmation(&self) -> Option<Millis> {
        self.due.unconfirmed.first().map(|&(at, _)| at)
    }

    /// The targets of the revokes.
    pub fn revoking(&self) -> impl Iterator<Item = Target> + '_ {
        self.due.revokes.iter().flat_map(|id| self.ops[id].targets.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(id: u64, kind: OperationKind, state: OperationState) -> Operation {
        let mut op = Operation::new(id, kind, Vec::new(), vec![Target::Device(id as u32)], String::new());
        op.state = state;
        op
    }

    fn pending(next_poll_at: Millis, polling: bool) -> OperationState {
        OperationState::Pending { event_id: "e".to_owned(), submitted_at: 0, next_poll_at, polling }
    }

    #[test]
    fn what_falls_due_follows_every_state_change() {
        let mut ops = Operations::default();
        ops.insert(op(1, OperationKind::Associate, OperationState::Queued));
        ops.insert(op(2, OperationKind::Disassociate, OperationState::Queued));
        assert_eq!(ops.first_queued(), Some(1));
        assert!(!ops.any_sent());

        ops.update(1, |op| op.state = pending(500, false));
        assert_eq!(ops.first_queued(), Some(2));
        assert!(ops.any_sent());
        assert_eq!(ops.next_poll_at(), Some(500));
        assert_eq!(ops.poll_due(499), None);
        assert_eq!(ops.poll_due(500), Some(1));

        ops.update(1, |op| op.state = pending(500, true));
        assert_eq!(ops.next_poll_at(), None, "an operation being polled is not due");

        ops.update(2, |op| op.state = OperationState::Unconfirmed { sent_at: 0, confirm_after: 900 });
        assert_eq!(ops.first_queued(), None);
        assert_eq!(ops.next_confirmation(), Some(900));

        assert!(ops.remove(2).is_some());
        assert_eq!(ops.next_confirmation(), None);
        assert_eq!(ops.values().map(|op| op.id).collect::<Vec<_>>(), [1]);
    }

    #[test]
    fn the_due_poll_is_the_lowest_id_among_those_due_not_the_earliest() {
        let mut ops = Operations::default();
        ops.insert(op(1, OperationKind::Associate, pending(300, false)));
        ops.insert(op(2, OperationKind::Associate, pending(100, false)));
        ops.insert(op(3, OperationKind::Associate, pending(900, false)));
        assert_eq!(ops.next_poll_at(), Some(100));
        assert_eq!(ops.poll_due(200), Some(2));
        assert_eq!(ops.poll_due(300), Some(1));
    }

    #[test]
    fn replacing_an_operation_drops_its_old_place_and_revokes_are_listed_by_target() {
        let mut ops = Operations::default();
        ops.insert(op(1, OperationKind::Revoke, OperationState::Queued));
        ops.insert(op(2, OperationKind::Associate, OperationState::Queued));
        assert_eq!(ops.revoking().collect::<Vec<_>>(), [Target::Device(1)]);
        ops.insert(op(1, OperationKind::Revoke, pending(50, false)));
        assert_eq!(ops.first_queued(), Some(2));
        assert_eq!(ops.next_poll_at(), Some(50));
        ops.remove(1);
        assert_eq!(ops.revoking().count(), 0);
        assert_eq!(ops.next_poll_at(), None);
    }
}
