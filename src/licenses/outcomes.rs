//! Apple's word on our operations — a `/status` answer, an outright refusal, what a sync shows —
//! applied to provenance, the mirror, the pools and the holds, and reported to the host
//! (`licenseReady` only after Apple confirmed, `licenseReleased`, `assignmentFailed`,
//! `insufficientLicenses`).

use std::collections::BTreeSet;

use crate::apple::errors::{INSUFFICIENT_LICENSES, INTERNAL_ERROR, MAINTENANCE, USER_ALREADY_EXISTS, USER_NOT_FOUND};
use crate::apple::limits::{POLL_INTERVAL, RESUBMIT_AFTER};
use crate::apple::wire::{EventStatus, NewUser, StatusResponse};
use crate::base::time::Millis;
use crate::contract::event::Event;
use crate::effects::{AccountEffects, Env};
use crate::licenses::Licenses;
use crate::licenses::operations::{Operation, OperationState};
use crate::mirror::{Mirror, UserRecord};
use crate::vocab::{AssetKey, AssignmentKey, OperationKind, PricingParam, Target};

/// The asset slot of a user-creation task (user tasks have no asset).
pub(super) const NO_ASSET: AssetKey = AssetKey { adam_id: u32::MAX, pricing: PricingParam::Stdq };

/// Whose release a confirmed release is, for provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Release {
    /// Ours: the pair leaves provenance.
    Ours,
    /// Someone else's, at an unknown time (perhaps older than a newer association of ours):
    /// provenance stays until a full refresh shows the pair gone.
    Elsewhere,
}

impl Licenses {
    /// A sync that started at `sync_started_at` completed: awaited pairs it shows are ours (the
    /// rest are forgotten after a `complete` full refresh); an unconfirmed association it can
    /// settle succeeded for the pairs Apple now holds, and the other pairs are planned again.
    /// Call when a sync completes, after the mirror took its pages.
    pub fn settle_unconfirmed(
        &mut self,
        sync_started_at: Millis,
        complete: bool,
        mirror: &mut Mirror,
        env: &Env<'_>,
        fx: &mut AccountEffects<'_>,
    ) {
        for key in self.in_flight.awaited_held(mirror) {
            self.confirmed_late(key, mirror, fx);
        }
        if complete {
            self.in_flight.stop_awaiting_all(fx);
        }
        let settled: Vec<Operation> = self
            .ops
            .values()
            .filter(|op| matches!(op.state, OperationState::Unconfirmed { confirm_after, .. } if confirm_after <= sync_started_at))
            .cloned()
            .collect();
        for op in settled {
            for (asset, target) in op.tasks() {
                let key = AssignmentKey { asset, target };
                if mirror.has_assignment(&key) {
                    self.succeed(&op, key, mirror, env, fx);
                } else {
                    self.in_flight.await_pair(key, fx); // Apple may still complete it
                }
            }
            self.finish(op.id, fx);
        }
    }

    /// An awaited pair appeared (Apple completed the association after all): it is ours.
    pub(super) fn confirmed_late(&mut self, key: AssignmentKey, mirror: &Mirror, fx: &mut AccountEffects<'_>) {
        if self.ours.contains(&key) {
            self.in_flight.stop_awaiting(&key, fx);
        } else {
            self.now_ours(key, true, mirror, fx);
        }
    }

    /// Apple confirmed an association of ours: it is ours, and (`announce`: unless it was reported
    /// ready already) ready for the install command.
    fn now_ours(&mut self, key: AssignmentKey, announce: bool, mirror: &Mirror, fx: &mut AccountEffects<'_>) {
        self.ours.adopt(key, fx);
        self.in_flight.stop_awaiting(&key, fx);
        // The scope may have changed while Apple worked: the next plan releases the pair again
        // if nothing wants it any more.
        self.nominate(key, "no longer wanted when Apple confirmed the assignment");
        if !announce {
            return;
        }
        fx.event(Event::license_ready(fx.account_id(), mirror.pair(&key)));
    }

    /// Apple refused a submission outright (validation): nothing happened at Apple. Returns
    /// whether users were registered (their invitation codes are read by the next users sync).
    pub fn refused(
        &mut self,
        op_id: u64,
        error_number: Option<i64>,
        message: &str,
        mirror: &mut Mirror,
        fx: &mut AccountEffects<'_>,
    ) -> bool {
        let Some(op) = self.ops.get(op_id).cloned() else { return false };
        for (asset, target) in every_task(&op) {
            self.fail(&op, AssignmentKey { asset, target }, error_number, message, mirror, fx);
        }
        self.pool.report_refusals(mirror, fx);
        self.finish(op_id, fx);
        std::mem::take(&mut self.ops.registered)
    }

    /// `/status` answered for an operation. Returns whether users were registered (their
    /// invitation codes are read by the next users sync).
    pub fn status(&mut self, op_id: u64, status: StatusResponse, mirror: &mut Mirror, env: &Env<'_>, fx: &mut AccountEffects<'_>) -> bool {
        let Some(op) = self.ops.get(op_id) else { return false };
        let OperationState::Pending { submitted_at, .. } = op.state else { return false };
        let kind = op.kind;
        let now = env.now;
        let still_pending = status.event_status == EventStatus::Pending;
        let resubmit = still_pending && now.saturating_sub(submitted_at) >= RESUBMIT_AFTER;
        self.ops.update(op_id, |op| {
            if let OperationState::Pending { next_poll_at, polling, .. } = &mut op.state {
                *polling = false;
                if still_pending {
                    *next_poll_at = now + POLL_INTERVAL; // unless resubmitted below
                }
            }
        });
        match status.event_status {
            EventStatus::Pending if resubmit => {
                if kind == OperationKind::Associate {
                    self.resubmit_associations(op_id, fx);
                } else {
                    // Releases and user creation change nothing twice: the same request again.
                    self.ops.update(op_id, |op| op.state = OperationState::Queued);
                    fx.changes().operations.insert(op_id);
                }
            }
            EventStatus::Pending => {}
            EventStatus::Complete | EventStatus::Failed => {
                let op = self.ops.get(op_id).cloned().expect("looked up above");
                let failed = op.failed_tasks(&status.failures, mirror);
                let mut failed_keys = BTreeSet::new();
                failed_keys.extend(failed.iter().map(|&(asset, target, _, _)| AssignmentKey { asset, target }));
                for (asset, target, number, message) in &failed {
                    if !op.is_resolved(&(*asset, *target)) {
                        self.fail(&op, AssignmentKey { asset: *asset, target: *target }, *number, message, mirror, fx);
                    }
                }
                if status.event_status == EventStatus::Failed && failed.is_empty() {
                    for (asset, target) in every_task(&op).into_iter().filter(|t| !op.is_resolved(t)) {
                        self.fail(&op, AssignmentKey { asset, target }, None, "Apple reported the event as failed", mirror, fx);
                    }
                } else {
                    self.succeed_rest(&op, &failed_keys, mirror, env, fx);
                }
                self.pool.report_refusals(mirror, fx);
                self.finish(op_id, fx);
            }
        }
        std::mem::take(&mut self.ops.registered)
    }

    /// Applies every task of `op` not failed and not already resolved as a success.
    fn succeed_rest(&mut self, op: &Operation, failed: &BTreeSet<AssignmentKey>, mirror: &mut Mirror, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        match op.kind {
            OperationKind::Revoke => {
                let keys: Vec<AssignmentKey> = self.ops.releasing.keys().filter(|k| op.targets.contains(&k.target)).copied().collect();
                for key in keys {
                    self.succeed(op, key, mirror, env, fx);
                }
            }
            OperationKind::CreateUsers => {
                for user in &op.new_users {
                    let target = mirror.intern_user(&user.client_user_id);
                    if failed.iter().any(|k| k.target == target) {
                        continue;
                    }
                    self.user_created(target, user, mirror, fx);
                }
            }
            OperationKind::Associate | OperationKind::Disassociate => {
                let tasks: Vec<(AssetKey, Target)> = op
                    .tasks()
                    .filter(|&(asset, target)| !failed.contains(&AssignmentKey { asset, target }) && !op.is_resolved(&(asset, target)))
                    .collect();
                for (asset, target) in tasks {
                    self.succeed(op, AssignmentKey { asset, target }, mirror, env, fx);
                }
            }
        }
    }

    /// Apple registered `user`: it may be licensed (and invited) now.
    pub(super) fn user_created(&mut self, target: Target, user: &NewUser, mirror: &mut Mirror, fx: &mut AccountEffects<'_>) {
        if let Target::User(id) = target {
            self.ops.registering.remove(&id);
            if mirror.user(id).and_then(|u| u.status.as_deref()).is_none() {
                let status = if user.managed_apple_id.is_some() { "Associated" } else { "Registered" };
                let record = UserRecord { email: user.email.clone(), status: Some(status.to_owned()), invite_code: None };
                mirror.set_user(&user.client_user_id, record, &mut fx.changes().mirror);
            }
            self.ops.registered = true;
            self.planner.replan(target);
        }
    }

    /// Apple made the change `key` of `op`.
    pub(super) fn succeed(&mut self, op: &Operation, key: AssignmentKey, mirror: &mut Mirror, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        match op.kind {
            OperationKind::Associate => {
                self.in_flight.associated(key);
                // Known already (a sync showed it, and it was reported ready then): a second word of the same fact.
                let known = self.ours.contains(&key) && mirror.has_assignment(&key);
                mirror.add_assignment(key, env.now, &mut fx.changes().mirror);
                self.now_ours(key, !known, mirror, fx);
            }
            OperationKind::Disassociate | OperationKind::Revoke => {
                match self.ops.releasing.remove(&key) {
                    Some(reason) => self.released(key, reason, Release::Ours, mirror, env, fx),
                    // A release sent twice (the first answer was lost) whose first landing was reported
                    // already: nothing left to say.
                    None if !mirror.has_assignment(&key) => {}
                    None => self.released(key, op.reason.clone(), Release::Ours, mirror, env, fx),
                }
            }
            OperationKind::CreateUsers => {}
        }
        self.planner.replan(key.target);
        if op.kind != OperationKind::Associate && self.pool.anyone_waiting() {
            self.planner.replan_all(); // a freed license for targets waiting on the pool
        }
    }

    /// A license went away (released by us, or by someone else as a notification tells).
    pub(super) fn released(
        &mut self,
        key: AssignmentKey,
        reason: String,
        how: Release,
        mirror: &mut Mirror,
        env: &Env<'_>,
        fx: &mut AccountEffects<'_>,
    ) {
        let pair = mirror.pair(&key);
        mirror.remove_assignment(&key, &mut fx.changes().mirror);
        if how != Release::Elsewhere {
            self.ours.forget(&key, fx);
        }
        if env.notify_users {
            fx.event(Event::notify_user(fx.account_id(), &pair));
        }
        fx.event(Event::license_released(fx.account_id(), pair, reason));
    }

    /// Apple failed the change `key` of `op`, with `error_number`.
    pub(super) fn fail(
        &mut self,
        op: &Operation,
        key: AssignmentKey,
        error_number: Option<i64>,
        message: &str,
        mirror: &mut Mirror,
        fx: &mut AccountEffects<'_>,
    ) {
        self.planner.replan(key.target);
        match (op.kind, error_number) {
            (OperationKind::CreateUsers, Some(USER_ALREADY_EXISTS)) => {
                if let Some(user) = op.new_users.iter().find(|u| mirror.lookup(&u.client_user_id).map(Target::User) == Some(key.target)) {
                    self.user_created(key.target, &user.clone(), mirror, fx);
                }
                return;
            }
            (OperationKind::CreateUsers, _) => {
                if let Target::User(id) = key.target {
                    self.ops.registering.remove(&id);
                    self.desired.hold_user(id, format!("Apple refused to create the user: {message}"), fx);
                    fx.event(Event::RequestFailed {
                        account_id: Some(fx.account_id().to_owned()),
                        purpose: format!("createUsers ({})", mirror.name(id)),
                        error_number,
                        message: message.to_owned(),
                    });
                }
                return; // a user task has no asset to report an assignment failure for
            }
            (OperationKind::Associate, Some(INSUFFICIENT_LICENSES)) => {
                self.in_flight.association_ended(key, op.id);
                self.pool.refused(key.asset, message, mirror, self.in_flight.count(&key.asset));
            }
            (OperationKind::Associate, Some(USER_NOT_FOUND)) => {
                self.in_flight.association_ended(key, op.id);
                if let Target::User(id) = key.target {
                    // Apple doesn't know the user (any more): register it again.
                    let name = mirror.name(id).to_owned();
                    mirror.set_user(&name, UserRecord { email: None, status: None, invite_code: None }, &mut fx.changes().mirror);
                }
            }
            (OperationKind::Associate, Some(INTERNAL_ERROR | MAINTENANCE)) => {
                self.in_flight.association_ended(key, op.id); // Apple's trouble, not the pair's: the next plan retries
            }
            (OperationKind::Associate, _) => {
                self.in_flight.association_ended(key, op.id);
                self.desired.hold(key, format!("Apple refused the assignment: {message}"), fx);
            }
            (OperationKind::Disassociate | OperationKind::Revoke, _) => {
                self.ops.releasing.remove(&key);
            }
        }
        fx.event(Event::assignment_failed(fx.account_id(), mirror.pair(&key), error_number, message.to_owned()));
    }

    /// An association still pending at Apple after [`RESUBMIT_AFTER`]: resubmitted by planning
    /// again, so that only the pairs still wanted are asked for, within the pool. Its open pairs
    /// are awaited (Apple may still complete the old event, whose notification is then adopted).
    fn resubmit_associations(&mut self, op_id: u64, fx: &mut AccountEffects<'_>) {
        let Some(op) = self.ops.get(op_id) else { return };
        let open: Vec<AssignmentKey> =
            op.tasks().filter(|t| !op.is_resolved(t)).map(|(asset, target)| AssignmentKey { asset, target }).collect();
        for key in open {
            self.in_flight.await_pair(key, fx);
        }
        self.close(op_id, false, fx);
    }

    /// Operation `op_id` is done: forgotten, its event's late notifications old news.
    pub(super) fn finish(&mut self, op_id: u64, fx: &mut AccountEffects<'_>) {
        self.close(op_id, true, fx);
    }

    /// Forgets operation `op_id`; `remember_event`: its event's late notifications are old news.
    fn close(&mut self, op_id: u64, remember_event: bool, fx: &mut AccountEffects<'_>) {
        if let Some(op) = self.ops.remove(op_id) {
            if let Some(event_id) = op.event_id().filter(|_| remember_event) {
                self.finished.remember(event_id);
            }
            // Tasks never resolved must not stay pending forever; a newer operation's stay.
            for (asset, target) in op.tasks() {
                self.in_flight.association_ended(AssignmentKey { asset, target }, op_id);
            }
            if op.kind == OperationKind::Revoke {
                self.ops.releasing.retain(|k, _| !op.targets.contains(&k.target));
            }
            if op.kind == OperationKind::CreateUsers {
                for target in &op.targets {
                    if let Target::User(id) = target {
                        self.ops.registering.remove(id);
                    }
                }
            }
            fx.changes().operations.insert(op_id);
            for target in &op.targets {
                self.planner.replan(*target);
            }
        }
    }

    /// The assignments of ours the mirror shows: call before a full refresh replaces it, and hand
    /// them to [`Licenses::prune_ours`] after.
    pub fn ours_held(&self, mirror: &Mirror) -> BTreeSet<AssignmentKey> {
        let mut held = BTreeSet::new();
        held.extend(self.ours.iter().filter(|k| mirror.has_assignment(k)));
        held
    }

    /// After a full refresh: provenance of assignments Apple no longer has is dropped (released
    /// while this instance was down or stopped, or by someone else). Those the mirror showed
    /// before (`held_before`) are reported released: the host learns of it now.
    pub fn prune_ours(&mut self, held_before: &BTreeSet<AssignmentKey>, mirror: &mut Mirror, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        let gone: Vec<AssignmentKey> = self.ours.iter().filter(|k| !mirror.has_assignment(k) && !self.in_flight.is_associating(k)).collect();
        for key in gone {
            if held_before.contains(&key) {
                let reason = "not at Apple any more (found by a full refresh): released outside this MDM".to_owned();
                self.released(key, reason, Release::Ours, mirror, env, fx);
            } else {
                self.ours.forget(&key, fx);
            }
        }
    }
}

/// Every task of an operation; a user creation has one per user (with no asset).
pub(super) fn every_task(op: &Operation) -> Vec<(AssetKey, Target)> {
    match op.kind {
        OperationKind::CreateUsers => op.targets.iter().map(|t| (NO_ASSET, *t)).collect(),
        _ => op.tasks().collect(),
    }
}
