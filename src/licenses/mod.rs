//! License decisions for one account: which (asset, target) pairs should hold a license, what
//! to ask Apple for, and what Apple's answers mean.
//!
//! [`Licenses`] is composed of sub-machines, each owning its state:
//!
//! | part | file | owns |
//! |---|---|---|
//! | provenance | `provenance.rs` | the assignments this instance made (only these are ever released, except by Clean Up) |
//! | desired state | `desired.rs` | the target → policy index, the rules, the holds |
//! | eligibility | `eligibility.rs` | whether a device can use a device license at all (user enrollment, books, platforms); the refusals told to the host |
//! | planning | `planning.rs`, `batch.rs`, `coalesce.rs` | what changed since the last plan, Reconcile / Clean Up requests, the coalescing window; comparing the desired state with Apple's and batching the difference into operations |
//! | pools | `pool.rs` | how many licenses may still be asked for, Apple's refusals, shortfall and low-count warnings |
//! | operations | `operations.rs`, `in_flight.rs`, `sending.rs` | the operations at Apple (queued, submitting, pending, unconfirmed), the pairs they release and the users they register, the associations that may be spending licenses |
//! | outcomes | `outcomes.rs` | what Apple's answers (`/status`, refusals, a sync's view) mean for provenance, the mirror and the host |
//! | notifications | `notifications.rs` | Apple's `ASSET_MANAGEMENT` and `USER_MANAGEMENT` notifications, and the events finished lately |
//! | explain | `explain.rs` | why a target has or lacks a license, in words |
//! | checks | `checks.rs` | pairs a device found no license for, checked with Apple; the reports of the last day |
//! | usage | `usage.rs` | for the reports: per app, the assignments that are ours and others', and those pending; per assignment, ours or not and the policy that wants it |
//! | planned | `planned.rs` | what planning added to a copy, compared with the original (the engine's preview) |
//!
//! Every method that changes something durable or the host must hear of reports it into the
//! account's [`AccountEffects`]; what it reads of the engine comes in an
//! [`Env`](crate::effects::Env). Triggers (a scope change, a retirement, a hold, Reconcile) only
//! *nominate* pairs or mark targets; planning releases a nominated pair only if it is ours and no
//! policy still wants it.

pub mod batch;
pub mod checks;
pub mod coalesce;
pub mod desired;
mod eligibility;
mod explain;
pub mod in_flight;
mod notifications;
pub mod operations;
mod outcomes;
mod planning;
pub mod planned;
mod pool;
pub mod provenance;
mod sending;
pub mod usage;

use crate::base::time::Millis;
use crate::effects::AccountEffects;
use crate::facts::{DeviceFacts, Facts};
use crate::licenses::checks::Checks;
use crate::licenses::coalesce::CoalescePolicy;
use crate::licenses::desired::{Decision, Desired};
use crate::licenses::eligibility::{device_refusal, Told};
use crate::licenses::in_flight::InFlight;
use crate::licenses::notifications::FinishedEvents;
use crate::licenses::operations::{Operation, Operations};
use crate::licenses::planning::Planner;
use crate::licenses::pool::Pool;
use crate::licenses::provenance::Provenance;
use crate::mirror::Mirror;
use crate::policy::Policy;
use crate::vocab::{AssetKey, AssignmentKey, OperationKind, Target};

/// One account's license state machine.
#[derive(Debug, Clone, Default)]
pub struct Licenses {
    /// Assignments this instance made (durable provenance).
    ours: Provenance,
    desired: Desired,
    planner: Planner,
    pool: Pool,
    ops: Operations,
    /// Associations that may be spending licenses: pairs being associated, and awaited pairs
    /// (adopted as ours if they appear before a trustworthy full refresh).
    in_flight: InFlight,
    finished: FinishedEvents,
    /// Pairs a device found no license for, to check with Apple.
    checks: Checks,
    /// Pairs refused because the device can't use the license, the host told of.
    told: Told,
}

impl Licenses {
    // ================================================================ triggers

    /// The policy `policy_id` (interned) gives licenses of `asset`. Call before its targets
    /// enter its scope ([`Licenses::scope_changed`]).
    pub fn policy_means(&mut self, policy_id: u32, asset: AssetKey) {
        self.desired.policy_means(policy_id, asset);
    }

    /// `target` entered (or left) the scope of the policy `policy_id` (interned): it is planned
    /// again. Call for every target a policy input adds or removes, and at restore.
    pub fn scope_changed(&mut self, target: Target, policy_id: u32, in_scope: bool) {
        self.desired.scope_changed(target, policy_id, in_scope);
        self.planner.replan(target);
    }

    /// Releases `key` (if it is ours and no policy still wants it) at the next plan.
    pub fn nominate(&mut self, key: AssignmentKey, reason: &str) {
        if self.ours.contains(&key) {
            self.planner.nominate(key, reason);
        }
    }

    /// Nominates every pair of ours that `target` holds.
    pub fn nominate_target(&mut self, target: Target, reason: &str) {
        let keys: Vec<AssignmentKey> = self.ours.of_target(target).collect();
        for key in keys {
            self.nominate(key, reason);
        }
    }

    /// Nominates every pair of ours `device` holds that it can't use (see [`eligibility`](self::eligibility)), with why.
    pub fn nominate_ineligible(&mut self, device: Target, facts: &DeviceFacts, mirror: &Mirror) {
        let refused: Vec<(AssignmentKey, String)> = self
            .ours
            .of_target(device)
            .filter_map(|key| Some((key, device_refusal(Some(facts), mirror.asset(&key.asset)?)?.into_owned())))
            .collect();
        for (key, reason) in refused {
            self.nominate(key, &reason);
        }
    }

    /// Don't assign `key` until [`Licenses::release_hold`]; release it if it is ours.
    pub fn hold(&mut self, key: AssignmentKey, reason: &str, fx: &mut AccountEffects<'_>) {
        self.desired.hold(key, reason.to_owned(), fx);
        self.nominate(key, reason);
        self.planner.replan(key.target);
    }

    /// Lifts the hold on `key`, if there is one (the app was installed, the target re-entered a scope).
    pub fn release_hold(&mut self, key: &AssignmentKey, fx: &mut AccountEffects<'_>) {
        if self.desired.lift_hold(key, fx) {
            self.planner.replan(key.target);
        }
    }

    /// Lifts every hold on `target` (re-enrollment, new scope, a user added again).
    pub fn release_holds_of(&mut self, target: Target, fx: &mut AccountEffects<'_>) {
        for key in self.desired.holds_of(target) {
            self.release_hold(&key, fx);
        }
        if let Target::User(id) = target {
            if self.desired.lift_user_hold(id, fx) {
                self.planner.replan(target);
            }
        }
    }

    /// Plans `target`'s pairs again (a fact about it changed).
    pub fn replan(&mut self, target: Target) {
        self.planner.replan(target);
    }

    /// Releases, at the next plan, whatever of ours no policy wants (Reconcile).
    pub fn request_reconcile(&mut self) {
        self.planner.request_reconcile();
    }

    /// Adopts, at the next plan, other MDMs' assignments a policy wants and releases the rest (Clean Up).
    pub fn request_clean_up(&mut self) {
        self.planner.request_clean_up();
    }

    /// A full refresh read every count: every asset Apple refused is tried again (at most daily,
    /// when Apple's counts stay the same and it refused twice).
    pub fn forget_pool_refusals(&mut self) {
        self.pool.forget_refusals();
    }

    /// Counts were read or changed (sync, `ASSET_COUNT`): the whole account is planned again.
    pub fn counts_changed(&mut self, mirror: &Mirror) {
        self.pool.counts_changed(mirror);
        self.planner.replan_all();
    }

    /// How many licenses of `asset` the targets waiting for it lack (see `appCounts`' `shortBy`).
    pub fn short_by(&self, asset: &AssetKey) -> usize {
        self.pool.short_by(asset)
    }

    // ================================================================ scheduling

    /// Whether something changed that planning must look at.
    pub fn wants_plan(&self) -> bool {
        self.planner.wants_plan()
    }

    /// Feeds the coalescing window while [`Licenses::wants_plan`]: call on every pass of the
    /// engine's scheduling, right after the inputs that changed something.
    pub fn note_waiting_work(&mut self, now: Millis) {
        self.planner.note_waiting_work(now);
    }

    /// Whether the coalescing window saw the work waiting now (else the next pass feeds it).
    pub fn waiting_work_noted(&self) -> bool {
        self.planner.waiting_work_noted()
    }

    /// When the waiting work's coalescing window closes, if one is open.
    pub fn coalescing_closes_at(&self, policy: &CoalescePolicy) -> Option<Millis> {
        self.planner.closes_at(policy)
    }

    /// Whether planned requests wait to be sent.
    pub fn has_queued(&self) -> bool {
        self.ops.first_queued().is_some()
    }

    /// Whether a check of a pair with Apple waits to be sent.
    pub fn check_queued(&self) -> bool {
        self.checks.any_queued()
    }

    /// Whether license requests wait: planned ones, or work collecting in a window.
    pub fn sends_waiting(&self) -> bool {
        self.has_queued() || self.wants_plan()
    }

    // ================================================================ reading

    /// The decision of one policy for one target (for explanations).
    pub fn decide(&self, policy: &Policy, target: &str, facts: &Facts, mirror: &mut Mirror) -> Decision {
        self.desired.decide(policy, target, facts, mirror, &self.ours)
    }

    /// The assignments this instance made.
    pub fn ours(&self) -> &Provenance {
        &self.ours
    }

    /// Every open operation, by id.
    pub fn operations(&self) -> impl Iterator<Item = &Operation> {
        self.ops.values()
    }

    /// The open operation `op_id`, if it is open.
    pub fn operation(&self, op_id: u64) -> Option<&Operation> {
        self.ops.get(op_id)
    }

    // ================================================================ restore

    /// Pairs of ours read back from the store.
    pub fn restore_ours(&mut self, keys: Vec<AssignmentKey>) {
        self.ours.restore(keys);
    }

    /// The targets of restored policies (each with the policy's interned id), indexed in one bulk
    /// build; each target is planned again, as after a scope change (`scope_changed`).
    pub fn restore_scoped(&mut self, scoped: Vec<(Target, u32)>) {
        self.desired.restore_scoped(scoped);
        self.planner.replan_targets(self.desired.scoped_targets());
    }

    /// A hold read back from the store.
    pub fn restore_hold(&mut self, key: AssignmentKey, reason: String) {
        self.desired.restore_hold(key, reason);
    }

    /// A user hold read back from the store.
    pub fn restore_user_hold(&mut self, id: u32, reason: String) {
        self.desired.restore_user_hold(id, reason);
    }

    /// An awaited pair read back from the store.
    pub fn restore_awaited(&mut self, key: AssignmentKey) {
        self.in_flight.restore_awaited(key);
    }

    /// Restores an operation read from the store (its state already decided from the record:
    /// polled, unconfirmed or queued).
    pub fn restore_operation(&mut self, op: Operation) {
        match op.kind {
            OperationKind::Associate => self.associating(&op),
            OperationKind::CreateUsers => self.ops.registering.extend(op.targets.iter().filter_map(|t| match t {
                Target::User(id) => Some(*id),
                Target::Device(_) => None,
            })),
            OperationKind::Disassociate => {
                for (asset, target) in op.tasks() {
                    self.ops.releasing.insert(AssignmentKey { asset, target }, op.reason.clone());
                }
            }
            OperationKind::Revoke => {}
        }
        self.ops.restore(op);
        self.planner.replan_all();
    }

    /// `op`'s pairs are being associated by it.
    fn associating(&mut self, op: &Operation) {
        for (asset, target) in op.tasks() {
            self.in_flight.associating(AssignmentKey { asset, target }, op.id);
        }
    }
}
