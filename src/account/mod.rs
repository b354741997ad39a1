//! One Apps and Books account (one sToken, one location): a state machine composed of parts that
//! each own their state, and the requests it wants to send next.
//!
//! | part | file | owns |
//! |---|---|---|
//! | credential | `credential.rs` | the sToken, why it can't be used, expiry warnings |
//! | location | `ownership.rs` | who manages the location (check, claim, Reclaim Ownership), its client config, the connectivity test |
//! | sync schedule | `schedule.rs`, `sync.rs` | when the next full refresh and delta sync are due, the sync running, the `versionId` cursors |
//! | gate | `gate.rs` | whether the account may send: `Retry-After`, backoff after failures, the rate limits |
//! | license work | `license_work.rs` | when license requests go, what they are (the decisions are [`Licenses`]') |
//! | answers | `answers.rs` | what an answer means, whatever it was for, then per purpose in the part that sent it |
//!
//! The account never sends anything itself. The engine asks it for its next request when the
//! account may send (not stopped, not inside a backoff window, under the rate limit), and hands it
//! every answer; what changed is reported into the account's [`AccountEffects`].

mod answers;
mod credential;
mod gate;
mod license_work;
mod ownership;
mod schedule;
pub mod sync;

pub use answers::Purpose;
pub use credential::EXPIRY_WARNING_DAYS;

use crate::apple::Limits;
use crate::apple::token::SToken;
use crate::base::time::Millis;
use crate::contract::config::EngineConfig;
use crate::contract::event::Event;
use crate::contract::output::Method;
use crate::effects::{AccountEffects, Env};
use crate::licenses::coalesce::CoalescePolicy;
use crate::licenses::Licenses;
use crate::mirror::Mirror;
use crate::persist::{AccountRecord, DurableAccount, Ownership};
use crate::vocab::{AccountStatus, SyncKind};
use credential::Credential;
use gate::Gate;
use ownership::Location;
use schedule::SyncSchedule;

/// A request an account wants sent; the engine adds the id and headers.
#[derive(Debug, Clone)]
pub struct AccountRequest {
    pub purpose: Purpose,
    pub method: Method,
    pub url: String,
    pub body: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub name: String,
    credential: Credential,
    location: Location,
    schedule: SyncSchedule,
    gate: Gate,
    /// The account's copy of Apple's data.
    pub mirror: Mirror,
    /// License decisions and the operations in flight at Apple.
    pub licenses: Licenses,
    /// The status last reported to the host.
    reported: Option<(AccountStatus, String)>,
}

impl Account {
    /// A newly added account: it starts by reading the location's client config. Report its
    /// record as changed (it is new).
    pub fn new(id: String, name: String, token: SToken, config: &EngineConfig) -> Self {
        Self::with_durable(id, name, token, DurableAccount::default(), config)
    }

    fn with_durable(id: String, name: String, token: SToken, durable: DurableAccount, config: &EngineConfig) -> Self {
        Self {
            id,
            name,
            credential: Credential::new(token, durable.token_problem, durable.warned_threshold),
            location: Location::new(durable.ownership, durable.claim_requested, durable.u_id, durable.location_name, durable.country_code),
            schedule: SyncSchedule::new(durable.cursors, durable.last_synced_at, durable.last_full_refresh_at, durable.mirror_stored),
            gate: Gate::new(durable.retry_after_until, config.rate_limit_margin_ms),
            mirror: Mirror::default(),
            licenses: Licenses::default(),
            reported: None,
        }
    }

    /// Rebuilds an account from its stored record at `now` (its mirror records are loaded into
    /// it next). The previous instance may have sent requests in the last second, which Apple
    /// still counts: the rate window starts full. With a complete stored mirror the account
    /// catches up with a delta sync; otherwise it starts with a full refresh.
    pub fn restore(record: AccountRecord, token: SToken, config: &EngineConfig, now: Millis) -> Self {
        let mut account = Self::with_durable(record.account_id, record.name, token, record.durable, config);
        account.schedule.restored(config);
        account.gate.fill_rate_window(now, Limits::default().max_request_per_second);
        // Releases are decided in memory and planned when the coalescing window closes: one decided
        // just before a crash is not in the store. The first plan releases whatever of ours no policy
        // wants (a Reconcile), so none is lost.
        account.licenses.request_reconcile();
        account
    }

    /// Taken over from another instance ([`crate::Engine::adopt`], after [`Account::restore`]): the
    /// previous holder stopped sending before the lease could be taken — a lease margin (a tenth of
    /// the ttl, seconds) before it expired, or when it released the account, before its writes
    /// landed, the lease was freed and a round here took it — so the rate window starts empty.
    pub fn adopted(&mut self) {
        self.gate.clear_rate_window();
    }

    /// The account's stored form.
    pub fn to_record(&self) -> AccountRecord {
        let (location, credential, schedule) = (&self.location, &self.credential, &self.schedule);
        AccountRecord {
            account_id: self.id.clone(),
            name: self.name.clone(),
            token: credential.token.bearer().clone(),
            durable: DurableAccount {
                u_id: location.u_id.clone(),
                location_name: location.name.clone(),
                country_code: location.country_code.clone(),
                ownership: location.ownership.clone(),
                token_problem: credential.problem.clone(),
                cursors: schedule.cursors.clone(),
                last_synced_at: schedule.last_synced_at,
                last_full_refresh_at: schedule.last_full_refresh_at,
                mirror_stored: schedule.mirror_stored,
                retry_after_until: self.gate.retry_after_until,
                warned_threshold: credential.warned_threshold,
                claim_requested: location.claim_requested,
            },
        }
    }

    // ----------------------------------------------------------------- commands

    /// Replaces the token (the way out of *token invalid*) at `now` and verifies ownership again.
    /// A token for another organization starts the account from scratch.
    pub fn replace_token(&mut self, token: SToken, now: Millis, fx: &mut AccountEffects<'_>) {
        if token.org_name != self.credential.token.org_name {
            self.mirror.clear(&mut fx.changes().mirror);
            self.schedule.forget_history();
            self.location.forget_client_config();
            self.gate.start_over();
        }
        self.credential.replace(token, now);
        self.location.verify_again_from_scratch();
        self.schedule.abandon_run();
        fx.record_changed();
    }

    /// Queues a connectivity test (the administrator's Test). When requests are stopped, answers at once instead.
    pub fn request_test(&mut self, fx: &mut AccountEffects<'_>) {
        if let Some(reason) = self.stop_reason() {
            fx.event(self.test_result(false, format!("Not contacting Apple: {reason}")));
        } else {
            self.location.queue_test();
        }
    }

    /// A full refresh as soon as the account may send (the administrator's Refresh).
    pub fn request_refresh(&mut self) -> Result<(), String> {
        if let Some(reason) = self.stop_reason() {
            return Err(format!("cannot refresh: {reason}"));
        }
        self.schedule.request_full();
        Ok(())
    }

    /// Claims the location again (the administrator's Reclaim Ownership): only when another MDM holds it.
    pub fn reclaim_ownership(&mut self, fx: &mut AccountEffects<'_>) -> Result<(), String> {
        if self.credential.problem.is_some() {
            return Err("the token is invalid; replace it before reclaiming ownership".to_owned());
        }
        self.location.reclaim()?;
        fx.record_changed();
        Ok(())
    }

    // ----------------------------------------------------------------- state

    /// Why the account sends nothing at all, if it doesn't.
    fn stop_reason(&self) -> Option<String> {
        self.credential.problem.clone().or_else(|| self.location.stop_reason())
    }

    /// Whether the account sends nothing at all (token invalid, or another MDM holds the location).
    pub fn is_stopped(&self) -> bool {
        self.stop_reason().is_some()
    }

    /// The account's status at `now`, with the reason shown next to it.
    pub fn status(&self, now: Millis) -> (AccountStatus, String) {
        if let Some(problem) = &self.credential.problem {
            return (AccountStatus::TokenInvalid, problem.clone());
        }
        if let Some(reason) = self.stop_reason() {
            return (AccountStatus::OwnedByOtherMdm, reason);
        }
        if self.gate.blocked_until() > now {
            return (AccountStatus::BackingOff, self.gate.reason().to_owned());
        }
        if let Some(checking) = self.location.checking() {
            return (AccountStatus::Checking, checking.to_owned());
        }
        if self.schedule.running() == Some(SyncKind::Full) {
            return (AccountStatus::Syncing, "Full refresh of licenses in progress".to_owned());
        }
        (AccountStatus::Active, "Managed by this MDM".to_owned())
    }

    /// When the status shown changes by itself, after `now`: when a backoff ends. Call after every
    /// change to know when to report the status again.
    pub fn status_changes_at(&self, now: Millis) -> Option<Millis> {
        Some(self.gate.blocked_until()).filter(|&at| at > now)
    }

    /// `accountStatusChanged` when the status at `now` is not the one last reported. Call after
    /// every change.
    pub fn status_change(&mut self, now: Millis) -> Option<Event> {
        let status = self.status(now);
        if self.reported.as_ref() == Some(&status) {
            return None;
        }
        let (status_kind, reason) = status.clone();
        self.reported = Some(status);
        Some(Event::AccountStatusChanged { account_id: self.id.clone(), status: status_kind, reason })
    }

    /// The name of the MDM that holds the location, when another one does.
    pub fn other_mdm_name(&self) -> Option<String> {
        match &self.location.ownership {
            Ownership::Other(info) => Some(info.name.clone()),
            _ => None,
        }
    }

    /// The location's data from client config: (`uId`, name, country code).
    pub fn location(&self) -> (Option<&str>, Option<&str>, Option<&str>) {
        let location = &self.location;
        (location.u_id.as_deref(), location.name.as_deref(), location.country_code.as_deref())
    }

    /// The organization the token is of, and when it expires.
    pub fn token(&self) -> &SToken {
        &self.credential.token
    }

    /// When the last sync completed.
    pub fn last_synced_at(&self) -> Option<Millis> {
        self.schedule.last_synced_at
    }

    /// The mirror's records were written up to date (`complete`) or not: whether the account
    /// record must say so (it is written again). Call when writing the account's mirror records.
    pub fn note_mirror_stored(&mut self, complete: bool) -> bool {
        let complete = complete && self.schedule.last_synced_at.is_some();
        let changed = self.schedule.mirror_stored != complete;
        self.schedule.mirror_stored = complete;
        changed
    }

    /// Progress of the sync running: (kind, pages done, pages known).
    pub fn sync_progress(&self) -> Option<(SyncKind, u32, u32)> {
        self.schedule.progress()
    }

    fn test_result(&self, ok: bool, message: String) -> Event {
        Event::TestResult { account_id: self.id.clone(), ok, message, location_name: self.location.name.clone() }
    }

    // ----------------------------------------------------------------- time

    /// Time-driven changes: expiry warnings, expiry, and starting due syncs. Call on every
    /// scheduling pass.
    pub fn tick(&mut self, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        self.check_expiry(env, fx);
        if self.is_stopped() || !self.location.managed_by_us() || self.schedule.is_running() {
            return;
        }
        if self.mirror.take_counts_stale() {
            self.schedule.delta_soon(env.now); // a freed license to count
        }
        let confirming = self.licenses.next_confirmation().is_some_and(|at| at <= env.now);
        let overlapped = self.licenses.has_operations_at_apple();
        if let Some(kind) = self.schedule.start_due(env.now, confirming, overlapped) {
            self.mirror.begin_journal();
            fx.event(Event::SyncStarted { account_id: self.id.clone(), kind });
        }
    }

    fn check_expiry(&mut self, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        match self.credential.check(env.now) {
            Some(credential::Check::Expired(reason)) => self.stop(reason, env, fx),
            Some(credential::Check::Warn(threshold_days)) => {
                fx.record_changed();
                let expires_at = self.credential.token.expires_at;
                fx.event(Event::TokenExpiring { account_id: self.id.clone(), threshold_days, expires_at });
            }
            None => {}
        }
    }

    /// Whether the account wants to send something now (or as soon as its gate opens).
    fn wants_to_send(&self, now: Millis, config: &EngineConfig, rate_limit: u32) -> bool {
        self.location.wants_to_send()
            || (self.location.managed_by_us() && (self.licenses.has_queued() || self.licenses.check_queued()))
            || self.next_poll_at(now, rate_limit).is_some_and(|at| at <= now)
            || self.schedule.wants_page(config.max_pages_in_flight as usize)
    }

    /// Whether license decisions can be made: ours, synced at least once, no full refresh running.
    pub fn can_plan(&self) -> bool {
        !self.is_stopped() && self.location.managed_by_us() && self.schedule.allows_plan()
    }

    /// When the account next needs the engine, and why. Call to schedule the engine's next wake-up.
    pub fn next_due(&self, now: Millis, config: &EngineConfig, limits: &Limits) -> Option<(Millis, &'static str)> {
        if self.credential.problem.is_some() {
            return None;
        }
        let rate_limit = limits.max_request_per_second;
        let mut due = vec![(self.credential.next_check(), "token expiry")];
        if let Some(at) = self.credential.next_warning() {
            due.push((at, "token expiry warning"));
        }
        if !self.is_stopped() {
            let blocked_until = self.gate.blocked_until();
            let gate = blocked_until.max(self.gate.next_free(now, rate_limit));
            let gate_reason = if blocked_until > now { "backoff ends" } else { "rate limit window" };
            if self.wants_to_send(now, config, rate_limit) {
                due.push((gate.max(now), gate_reason));
            } else if self.location.managed_by_us() && !self.schedule.is_running() {
                let (at, reason) = self.schedule.next_sync(now);
                due.push((at.max(blocked_until), reason));
                if let Some(at) = self.licenses.next_confirmation() {
                    due.push((at.max(blocked_until), "sync to confirm unanswered assignments"));
                }
            }
            if let Some(at) = self.next_poll_at(now, rate_limit) {
                due.push((at.max(gate), "event status poll"));
            }
            if self.licenses.wants_plan() && self.can_plan() && !self.licenses.has_queued() {
                // No window yet: the next pass opens one.
                let closes_at = self.licenses.coalescing_closes_at(&CoalescePolicy::new(config, limits)).unwrap_or(now);
                due.push((closes_at.max(blocked_until), "coalescing"));
            }
        }
        due.into_iter().min_by_key(|(at, _)| *at)
    }

    /// The earliest time at which a scheduling pass (tick, planning, sending) or the passing of
    /// time may change the account or its status, unless an input changes it first: `now` or
    /// earlier when one may now, `Millis::MAX` when only an input can. It may be early, never late,
    /// and it is not later than [`Account::next_due`]'s next change. Call after every change to
    /// know when to visit the account next.
    pub fn next_visit(&self, now: Millis, config: &EngineConfig, limits: &Limits) -> Millis {
        let mut at = Millis::MAX;
        let mut due = |when: Millis| at = at.min(when);
        if self.credential.problem.is_none() {
            due(self.credential.next_check());
            if let Some(warning) = self.credential.next_warning() {
                due(warning);
            }
        }
        let stopped = self.is_stopped();
        let managed = self.location.managed_by_us();
        if !stopped && managed && !self.schedule.is_running() {
            if self.mirror.counts_stale() {
                due(now);
            }
            due(self.schedule.next_start_at());
            if let Some(confirmation) = self.licenses.next_confirmation() {
                due(confirmation);
            }
        }
        let blocked_until = self.gate.blocked_until();
        if self.licenses.wants_plan() {
            if !self.licenses.waiting_work_noted() {
                due(now);
            } else if self.can_plan() && !self.licenses.has_queued() {
                if let Some(closes_at) = self.licenses.coalescing_closes_at(&CoalescePolicy::new(config, limits)) {
                    due(closes_at.max(blocked_until));
                }
            }
        }
        if !stopped {
            let rate_limit = limits.max_request_per_second;
            let open = blocked_until.max(self.gate.next_free(now, rate_limit));
            let wants = self.location.wants_to_send() || (managed && self.licenses.has_queued());
            if wants || self.schedule.wants_page(config.max_pages_in_flight as usize) {
                due(open);
            }
            // A poll coming due also changes what `next_due` says.
            if let Some(poll_at) = self.next_poll_at(now, rate_limit) {
                due(if poll_at > now { poll_at } else { open });
            }
        }
        // The status shown changes when a backoff ends.
        if blocked_until > now {
            due(blocked_until);
        }
        at
    }

    /// The engine's clock was set back to `now` after a glitch (one `now` far ahead): deadlines computed
    /// on the glitched clock come back within their own intervals, and what it recorded becomes `now`.
    pub fn clock_rewound(&mut self, now: Millis, config: &EngineConfig, fx: &mut AccountEffects<'_>) {
        self.schedule.clock_rewound(now, config);
        let retry_after_changed = self.gate.clock_rewound(now, config.backoff_max_ms);
        let warning_changed = self.credential.clock_rewound(now);
        if retry_after_changed || warning_changed {
            fx.record_changed();
        }
        self.licenses.clock_rewound(now, config.unconfirmed_settle_ms, fx);
    }

    // ----------------------------------------------------------------- requests

    /// Until when the account may not send (`Retry-After`, backoff), and why: for a preview's
    /// estimate of how long its requests take.
    pub fn blocked_until(&self) -> (Millis, &str) {
        (self.gate.blocked_until(), self.gate.reason())
    }

    /// Whether the account may send a request now (its own gates; the caller checks nothing else).
    pub fn may_send(&self, now: Millis, rate_limit: u32) -> bool {
        !self.is_stopped() && self.gate.may_send(now, rate_limit)
    }

    /// The next request the account wants sent, recorded as sent at `env.now`.
    /// Call only when [`Account::may_send`] is true.
    pub fn next_request(&mut self, env: &Env<'_>, fx: &mut AccountEffects<'_>) -> Option<AccountRequest> {
        let request = match self.location.next_request(&self.id, env) {
            Some(request) => request,
            None => match self.next_license_request(env, fx) {
                Some(request) => request,
                None => self.schedule.next_page_request(env)?,
            },
        };
        self.gate.sent(env.now);
        Some(request)
    }

    /// Stops every request for good (until the token is replaced): the token can't be used.
    fn stop(&mut self, reason: String, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        if self.location.test_running() {
            fx.event(self.test_result(false, reason.clone()));
        }
        self.credential.problem = Some(reason);
        self.halt_work(env, fx);
    }

    /// Drops all queued work; answers still in flight are ignored when they arrive.
    fn halt_work(&mut self, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        self.location.halt();
        self.schedule.abandon_run();
        self.licenses.requests_abandoned(env.config.unconfirmed_settle_ms);
        fx.record_changed();
    }
}
