//! `preview`: what a list of inputs would do, without doing it.
//!
//! The inputs are applied by the same code as `handle_input` (so an input the engine refuses is
//! refused with the same error), in a *trial*: the roster hands out a copy of each account the
//! first time an input changes it (`Roster::begin_trial`), and the engine-wide state the inputs
//! name (the policies, device and user facts) is saved first and put back afterwards. Each copy
//! then plans at once (no coalescing window) with the planner the engine uses, and
//! `Licenses::planned_since` compares it with its original: the requests queued, the pairs
//! assigned and released, the shortfalls. Nothing reaches the outputs or the store: the effects
//! of the trial are dropped, the originals come back. The cost is the accounts touched (a copy
//! each) and the plan, not the engine.

use std::collections::{BTreeMap, BTreeSet};

use super::Engine;
use crate::account::Account;
use crate::base::time::{Clock, Millis, SECOND};
use crate::contract::error::EngineError;
use crate::contract::input::Input;
use crate::contract::preview::{AccountPreview, AppPreview, PreviewFigures, PreviewReport, ReleaseReason};
use crate::effects::{Effects, Env};
use crate::facts::{DeviceFacts, UserFacts};
use crate::licenses::planned::{Planned, PlannedRelease};
use crate::policy::Policy;
use crate::vocab::{AssetKey, Target};

/// Plans a copy runs at most: a plan of the targets that changed which finds a pool short asks
/// for a whole-account plan, which reports the shortfall.
const PLANS: usize = 3;

/// The policy, device and user whose engine-wide state an input may change; `None` for the
/// inputs `preview` does not cover.
type Names<'a> = (Option<&'a str>, Option<&'a str>, Option<&'a str>);

fn names_of(input: &Input) -> Option<Names<'_>> {
    Some(match input {
        Input::SetPolicy { policy } => (Some(&policy.policy_id), None, None),
        Input::RemovePolicy { policy_id } | Input::UpdatePolicyTargets { policy_id, .. } => (Some(policy_id), None, None),
        Input::DeviceEnrolled { serial_number, .. }
        | Input::DeviceRetired { serial_number }
        | Input::AppInstalled { serial_number, .. }
        | Input::AppRemoved { serial_number, .. }
        | Input::InstallFailed { serial_number, .. }
        | Input::AppConvertedToManaged { serial_number, .. }
        | Input::UpdatePush { serial_number, .. } => (None, Some(serial_number), None),
        Input::UserAdded { client_user_id, .. } | Input::UserRemoved { client_user_id } => (None, None, Some(client_user_id)),
        Input::ReclaimLicense { .. }
        | Input::ReclaimApp { .. }
        | Input::ReclaimAccount { .. }
        | Input::Reconcile
        | Input::CleanUp { .. } => (None, None, None),
        Input::AddAccount { .. }
        | Input::EditAccount { .. }
        | Input::DeleteAccount { .. }
        | Input::TestAccount { .. }
        | Input::Refresh { .. }
        | Input::ReclaimOwnership { .. }
        | Input::SetLicenseRemovalNotification { .. }
        | Input::Response { .. }
        | Input::NetworkError { .. }
        | Input::Timeout => return None,
    })
}

/// The engine-wide state a trial may change, as it was.
struct Saved {
    clock: Clock,
    effects: Effects,
    next_reconcile_at: Millis,
    policies: BTreeMap<String, Option<Policy>>,
    devices: BTreeMap<String, Option<DeviceFacts>>,
    users: BTreeMap<String, Option<UserFacts>>,
}

impl Saved {
    /// Saves what `inputs` may change (their effects start empty).
    fn take(engine: &mut Engine, inputs: &[Input]) -> Self {
        let mut saved = Saved {
            clock: engine.clock,
            effects: std::mem::take(&mut engine.effects),
            next_reconcile_at: engine.next_reconcile_at,
            policies: BTreeMap::new(),
            devices: BTreeMap::new(),
            users: BTreeMap::new(),
        };
        for (policy, device, user) in inputs.iter().filter_map(names_of) {
            if let Some(id) = policy.filter(|id| !saved.policies.contains_key(*id)) {
                saved.policies.insert(id.to_owned(), engine.policies.get(id).cloned());
            }
            if let Some(serial) = device.filter(|s| !saved.devices.contains_key(*s)) {
                saved.devices.insert(serial.to_owned(), engine.facts.devices.get(serial).cloned());
            }
            if let Some(user) = user.filter(|u| !saved.users.contains_key(*u)) {
                saved.users.insert(user.to_owned(), engine.facts.users.get(user).cloned());
            }
        }
        saved
    }

    fn put_back(self, engine: &mut Engine) {
        engine.clock = self.clock;
        engine.effects = self.effects;
        engine.next_reconcile_at = self.next_reconcile_at;
        for (id, policy) in self.policies {
            match policy {
                Some(policy) => engine.policies.insert(id, policy),
                None => engine.policies.remove(&id),
            };
        }
        for (serial, facts) in self.devices {
            engine.facts.put_back_device(&serial, facts);
        }
        for (user, facts) in self.users {
            match facts {
                Some(facts) => engine.facts.users.insert(user, facts),
                None => engine.facts.users.remove(&user),
            };
        }
    }
}

impl Engine {
    /// What applying `inputs` (in order) at `now` would do: the licenses assigned and released
    /// (by reason, and those of other MDMs), the shortfalls, the requests to Apple and about how
    /// long they take — in total, per account and per app. Call before applying an
    /// administrator's change (a scope edit, Reconcile, Clean Up, a reclaim) to show what it does
    /// and ask; then apply the same inputs with [`Engine::handle_input`].
    ///
    /// Covers policies, device and user facts, the reclaims, Reconcile and Clean Up. Changes
    /// nothing (state, outputs, the store); an input the engine would refuse is refused with the
    /// same error, and so is an input of another kind.
    pub fn preview(&mut self, inputs: Vec<Input>, now: Millis) -> Result<PreviewReport, EngineError> {
        if inputs.iter().any(|input| names_of(input).is_none()) {
            return Err(EngineError::InvalidInput(
                "preview covers policies, device and user facts, reclaims, Reconcile and Clean Up".to_owned(),
            ));
        }
        let saved = Saved::take(self, &inputs);
        self.accounts.begin_trial();
        let now = self.clock.advance(now);
        self.clock.take_rewind(); // the trial's clock is put back: nothing to re-derive
        let report = inputs.into_iter().try_for_each(|input| self.apply_input(input, now)).map(|()| self.plan_copies(now));
        self.accounts.end_trial();
        saved.put_back(self);
        report
    }

    /// Plans every copy the trial made and reports what they planned.
    fn plan_copies(&mut self, now: Millis) -> PreviewReport {
        let env = Env::new(now, &self.config, &self.service, self.notify_users);
        for id in self.accounts.trial_ids() {
            let Some(account) = self.accounts.get_in_pass(&id).filter(|a| a.can_plan()) else { continue };
            let mut fx = self.effects.account(&id);
            for _ in 0..PLANS {
                if !account.licenses.wants_plan() {
                    break;
                }
                account.plan_licenses(&self.facts, &env, &mut fx);
            }
        }
        let rate = self.service.limits.max_request_per_second;
        let mut report = Report::default();
        for (copy, original) in self.accounts.trial_accounts() {
            report.account(copy, &copy.licenses.planned_since(&original.licenses), now, rate);
        }
        report.finish()
    }
}

/// The figures of one account or app, with the targets counted once.
#[derive(Default)]
struct Tally {
    figures: PreviewFigures,
    targets: BTreeSet<Target>,
}

impl Tally {
    fn assign(&mut self, target: Target) {
        self.figures.assign += 1;
        self.targets.insert(target);
    }

    fn release(&mut self, release: &PlannedRelease) {
        self.figures.release += 1;
        self.figures.other_mdm_released += usize::from(release.other_mdm);
        self.targets.insert(release.key.target);
    }

    fn figures(self) -> PreviewFigures {
        let devices = self.targets.iter().filter(|t| matches!(t, Target::Device(_))).count();
        PreviewFigures { devices, users: self.targets.len() - devices, ..self.figures }
    }
}

/// The report, account by account.
#[derive(Default)]
struct Report {
    report: PreviewReport,
    reasons: BTreeMap<String, usize>,
}

impl Report {
    /// Adds what `account` (a copy) planned.
    fn account(&mut self, account: &Account, planned: &Planned<'_>, now: Millis, rate: u32) {
        let mut all = Tally::default();
        let mut apps: BTreeMap<AssetKey, Tally> = BTreeMap::new();
        for key in &planned.assigned {
            all.assign(key.target);
            apps.entry(key.asset).or_default().assign(key.target);
        }
        for release in &planned.released {
            all.release(release);
            apps.entry(release.key.asset).or_default().release(release);
            match self.reasons.get_mut(release.reason) {
                Some(count) => *count += 1,
                None => {
                    self.reasons.insert(release.reason.to_owned(), 1);
                }
            }
        }
        for &(asset, short_by) in &planned.short {
            all.figures.short_by += short_by;
            apps.entry(asset).or_default().figures.short_by = short_by;
        }
        for assets in &planned.requests {
            all.figures.requests += 1;
            for asset in assets {
                apps.entry(*asset).or_default().figures.requests += 1;
            }
        }
        let figures = all.figures();
        let (blocked_until, why) = account.blocked_until();
        let wait_ms = blocked_until.saturating_sub(now);
        let wait_reason = if !account.can_plan() {
            Some("licenses are decided once the account is ours and synced".to_owned())
        } else {
            (wait_ms > 0).then(|| why.to_owned())
        };
        let sending_ms = (figures.requests as Millis * SECOND).div_ceil(Millis::from(rate.max(1)));
        let estimated_ms = if figures.requests == 0 { 0 } else { wait_ms + sending_ms };
        add(&mut self.report.totals, &figures);
        self.report.estimated_ms = self.report.estimated_ms.max(estimated_ms);
        self.report.accounts.push(AccountPreview {
            account_id: account.id.clone(),
            figures,
            max_request_per_second: rate,
            wait_ms,
            wait_reason,
            estimated_ms,
        });
        for (asset, tally) in apps {
            self.report.apps.push(AppPreview {
                account_id: account.id.clone(),
                adam_id: account.mirror.name(asset.adam_id).to_owned(),
                pricing_param: asset.pricing,
                figures: tally.figures(),
            });
        }
    }

    fn finish(mut self) -> PreviewReport {
        self.report.releases_by_reason = self.reasons.into_iter().map(|(reason, count)| ReleaseReason { reason, count }).collect();
        self.report
    }
}

/// Adds `figures` to `totals`.
fn add(totals: &mut PreviewFigures, figures: &PreviewFigures) {
    totals.assign += figures.assign;
    totals.release += figures.release;
    totals.short_by += figures.short_by;
    totals.other_mdm_released += figures.other_mdm_released;
    totals.requests += figures.requests;
    totals.devices += figures.devices;
    totals.users += figures.users;
}
