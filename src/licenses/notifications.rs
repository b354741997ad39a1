//! Apple's notifications about licenses and users: the results of our events (they complete an
//! operation before its `/status` poll), news of changes someone else made, and user records.
//! Late (re)deliveries about operations finished lately are recognized and ignored.

use std::collections::{BTreeSet, VecDeque};

use crate::apple::notification::{AssetManagement, ManagementResult, ManagementType, UserManagement};
use crate::apple::wire::{self, NewUser};
use crate::effects::{AccountEffects, Env};
use crate::licenses::Licenses;
use crate::licenses::outcomes::{Release, NO_ASSET};
use crate::mirror::{Mirror, UserRecord};
use crate::vocab::{AssignmentKey, OperationKind, Target};

/// How many finished event ids are remembered.
const FINISHED_EVENTS_KEPT: usize = 4_096;

/// Event ids of operations finished lately (and their order), whose late notifications are old news.
#[derive(Debug, Clone, Default)]
pub struct FinishedEvents {
    ids: BTreeSet<String>,
    order: VecDeque<String>,
}

impl FinishedEvents {
    /// The operation of `event_id` finished: forget the oldest beyond [`FINISHED_EVENTS_KEPT`].
    pub fn remember(&mut self, event_id: &str) {
        self.ids.insert(event_id.to_owned());
        self.order.push_back(event_id.to_owned());
        if self.order.len() > FINISHED_EVENTS_KEPT {
            let oldest = self.order.pop_front().expect("not empty");
            self.ids.remove(&oldest);
        }
    }

    fn contains(&self, event_id: &str) -> bool {
        self.ids.contains(event_id)
    }
}

impl Licenses {
    /// An `ASSET_MANAGEMENT` notification: results of one of our events, or news of a change
    /// someone else made (purchases, another MDM, the admin in Apple Business Manager). Returns
    /// whether users were registered.
    pub fn asset_management(&mut self, n: &AssetManagement, mirror: &mut Mirror, env: &Env<'_>, fx: &mut AccountEffects<'_>) -> bool {
        let keys: Vec<AssignmentKey> = n.assignments.iter().filter_map(|a| mirror.key_of(a)).collect();
        let op_id = n.event_id.as_deref().and_then(|e| self.ops.values().find(|op| op.event_id() == Some(e))).map(|op| op.id);
        // Taken out while its tasks are applied (they need `&mut self`), put back after.
        let Some(mut op) = op_id.and_then(|id| self.ops.remove(id)) else {
            if n.event_id.as_ref().is_some_and(|e| self.finished.contains(e)) {
                return false; // a late (re)delivery about an operation already finished: old news
            }
            for key in keys {
                match (n.kind, n.result) {
                    (ManagementType::Associate, ManagementResult::Success) => {
                        mirror.add_assignment(key, env.now, &mut fx.changes().mirror);
                        if self.in_flight.is_awaited(&key) {
                            self.confirmed_late(key, mirror, fx);
                        }
                    }
                    // When it happened is unknown: the next sync's counts include it. Possibly it
                    // is older than a newer association of ours: provenance stays until a full
                    // refresh shows the pair gone.
                    // A release of ours sent twice (the first answer was lost): this is the first landing.
                    (_, ManagementResult::Success) => match self.ops.releasing.remove(&key) {
                        Some(reason) => self.released(key, reason, Release::Ours, mirror, env, fx),
                        None => self.released(key, "released outside this MDM".to_owned(), Release::Elsewhere, mirror, env, fx),
                    },
                    (_, ManagementResult::Failure) => {}
                }
            }
            self.planner.replan_all();
            return false;
        };
        let error_number = n.error.as_ref().and_then(|e| e.error_number);
        let message = n.error.as_ref().and_then(|e| e.error_message.clone()).unwrap_or_else(|| "Apple reported a failure".to_owned());
        let mut op_targets = BTreeSet::new();
        op_targets.extend(op.targets.iter().copied());
        for key in keys {
            let task = (key.asset, key.target);
            let in_op = match op.kind {
                // A revoke names no assets: Apple lists every pair of its targets it released.
                OperationKind::Revoke => op_targets.contains(&key.target),
                _ => op_targets.contains(&key.target) && op.assets.contains(&key.asset),
            };
            if !in_op || !op.resolve(task) {
                continue;
            }
            match n.result {
                ManagementResult::Success => self.succeed(&op, key, mirror, env, fx),
                ManagementResult::Failure => self.fail(&op, key, error_number, &message, mirror, fx),
            }
        }
        self.pool.report_refusals(mirror, fx);
        let done = match op.kind {
            // A revoke is done when nothing it was releasing is still pending.
            OperationKind::Revoke => !self.ops.releasing.keys().any(|k| op_targets.contains(&k.target)),
            _ => op.tasks().all(|t| op.is_resolved(&t)),
        };
        let id = op.id;
        self.ops.insert(op);
        if done {
            self.finish(id, fx);
        }
        std::mem::take(&mut self.ops.registered)
    }

    /// `USER_MANAGEMENT`: the outcome of a user event; finishes our create-users operation.
    /// Returns whether users were registered.
    pub fn user_management(&mut self, n: &UserManagement, mirror: &mut Mirror, fx: &mut AccountEffects<'_>) -> bool {
        self.users_updated(&n.users, mirror, fx);
        let op_id = n.event_id.as_deref().and_then(|e| self.ops.values().find(|op| op.event_id() == Some(e))).map(|op| op.id);
        let Some(mut op) = op_id.and_then(|id| self.ops.remove(id)) else { return std::mem::take(&mut self.ops.registered) };
        let error_number = n.error.as_ref().and_then(|e| e.error_number);
        let message = n.error.as_ref().and_then(|e| e.error_message.clone()).unwrap_or_else(|| "Apple reported a failure".to_owned());
        for user in &n.users {
            let Some(target) = mirror.lookup(&user.client_user_id).map(Target::User) else { continue };
            if !op.targets.contains(&target) || !op.resolve((NO_ASSET, target)) {
                continue;
            }
            let key = AssignmentKey { asset: NO_ASSET, target };
            match n.result {
                Some(ManagementResult::Failure) => self.fail(&op, key, error_number, &message, mirror, fx),
                _ => {
                    let user = NewUser { client_user_id: user.client_user_id.clone(), email: None, managed_apple_id: None };
                    self.user_created(target, &user, mirror, fx)
                }
            }
        }
        let done = op.targets.iter().all(|t| op.is_resolved(&(NO_ASSET, *t)));
        let id = op.id;
        self.ops.insert(op);
        if done {
            self.finish(id, fx);
        }
        std::mem::take(&mut self.ops.registered)
    }

    /// `USER_MANAGEMENT` / `USER_ASSOCIATED`: user records changed.
    pub fn users_updated(&mut self, users: &[wire::User], mirror: &mut Mirror, fx: &mut AccountEffects<'_>) {
        for user in users {
            let record = UserRecord { email: user.email.clone(), status: user.status.clone(), invite_code: user.invite_code.clone() };
            mirror.set_user(&user.client_user_id, record, &mut fx.changes().mirror);
        }
        self.planner.replan_all();
    }
}
