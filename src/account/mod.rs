//! One Apps and Books account (one sToken, one location): ownership, sync schedule,
//! backoff, and the requests it wants to send next.
//!
//! The account never sends anything itself. The engine asks it for its next request when
//! the account may send (not stopped, not inside a backoff window, under the rate limit),
//! and hands it every answer.

pub mod sync;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Deserialize;

use crate::account::sync::{PageMeta, PageRequest, Resource, SyncRun};
use crate::apple::{Limits, ServiceConfig};
use crate::apple::errors::{EVENT_NOT_FOUND, INVALID_VERSION_ID, PAGE_INDEX_OUT_OF_RANGE};
use crate::apple::notification::{AssetManagement, UserManagement};
use crate::apple::outcome::{classify, classify_envelope, Classified, HttpAnswer, Outcome};
use crate::apple::token::SToken;
use crate::apple::wire::{self, ClaimRequest, ClientConfig, Envelope, EventResponse, MdmInfo, Page, StatusResponse, NOTIFICATION_TYPES};
use crate::base::backoff::RateLimiter;
use crate::base::time::{format_utc, Millis, DAY};
use crate::contract::config::EngineConfig;
use crate::contract::event::Event;
use crate::contract::output::Method;
use crate::facts::Facts;
use crate::licenses::{LicenseCtx, Licenses};
use crate::licenses::coalesce::CoalescePolicy;
use crate::mirror::Mirror;
use crate::persist::{AccountRecord, DurableAccount, Ownership};
use crate::vocab::{AccountStatus, Cursors, OperationKind, SyncKind};

/// What `encodeURIComponent` leaves alone; everything else in an account id is percent-encoded
/// in the notification URL (a path segment: a space must be `%20`, not `+`).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// How far apart two readings of the clock past the token's expiry must be before the account stops.
const EXPIRY_CONFIRM_AFTER: Millis = crate::base::time::MINUTE;

/// A Retry-After deadline further than this from `now` after the clock was set back was computed on the
/// glitched clock (Apple asks for seconds or minutes): it is brought back to this.
const RETRY_AFTER_AFTER_REWIND: Millis = crate::base::time::HOUR;

/// Expiry warnings, in days before `expDate`.
pub const EXPIRY_WARNING_DAYS: [u32; 4] = [30, 15, 7, 1];


/// What an account request is for; kept by the engine until the answer arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    ReadClientConfig,
    Claim,
    Test,
    Page { run: u64, page: PageRequest },
    /// Sending an operation (associate, disassociate, revoke, create users).
    Submit { op: u64, kind: OperationKind },
    /// Asking `/status` about an operation's event.
    Poll { op: u64 },
}

impl Purpose {
    pub fn name(&self) -> &'static str {
        match self {
            Purpose::ReadClientConfig => "clientConfig",
            Purpose::Claim => "claimOwnership",
            Purpose::Test => "testAccount",
            Purpose::Page { page, .. } => page.resource.purpose(),
            Purpose::Submit { kind, .. } => kind.purpose(),
            Purpose::Poll { .. } => "eventStatus",
        }
    }
}

/// A request an account wants sent; the engine adds the id and headers.
#[derive(Debug, Clone)]
pub struct AccountRequest {
    pub purpose: Purpose,
    pub method: Method,
    pub url: String,
    pub body: Option<String>,
}

/// Where the account is in verifying or claiming ownership of its location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    NeedRead,
    Reading,
    NeedClaim,
    Claiming,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestState {
    Idle,
    Queued,
    InFlight,
}

/// What the engine lends an account while it works.
pub struct Ctx<'a> {
    pub now: Millis,
    pub config: &'a EngineConfig,
    pub service: &'a ServiceConfig,
    pub rng: &'a mut fastrand::Rng,
    pub events: &'a mut Vec<Event>,
    /// The license removal notification toggle.
    pub notify_users: bool,
}

#[derive(Debug)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub token: SToken,
    /// Everything the store keeps about the account besides id, name and token.
    pub durable: DurableAccount,
    pub mirror: Mirror,
    /// License decisions and the operations in flight at Apple.
    pub licenses: Licenses,
    check: Option<Check>,
    next_full_at: Millis,
    next_delta_at: Millis,
    refresh_requested: bool,
    sync: Option<SyncRun>,
    /// When the current (or last) sync started.
    sync_started_at: Millis,
    /// Whether an operation of ours was at Apple during the current sync.
    sync_overlapped: bool,
    next_run_id: u64,
    test: TestState,
    backoff_until: Millis,
    backoff_reason: String,
    failures: u32,
    /// When the last failure that escalated the backoff was handled. Requests sent before it
    /// were already in flight during the same trouble: their failures don't escalate again.
    last_failure_at: Option<Millis>,
    rate: RateLimiter,
    /// `/status` polls alone: while license requests wait, polls take at most a third of the rate.
    poll_rate: RateLimiter,
    /// When the engine's clock first read the token's expiry as passed: the token stops only when a
    /// second reading, at least [`EXPIRY_CONFIRM_AFTER`] later, agrees (one glitched `now` is not enough).
    expiry_seen_at: Option<Millis>,
    /// Set when something durable changed; the engine writes the record and clears it.
    pub dirty: bool,
    /// The status last reported to the host.
    pub reported: Option<(AccountStatus, String)>,
}

impl Account {
    /// A newly added account: it starts by reading the location's client config.
    pub fn new(id: String, name: String, token: SToken, config: &EngineConfig) -> Self {
        Self::with_durable(id, name, token, DurableAccount::default(), config)
    }

    fn with_durable(id: String, name: String, token: SToken, durable: DurableAccount, config: &EngineConfig) -> Self {
        let check = match durable.ownership {
            _ if durable.claim_requested => Some(Check::NeedClaim),
            Ownership::Unknown => Some(Check::NeedRead),
            Ownership::Ours | Ownership::Other(_) => None,
        };
        Self {
            id,
            name,
            token,
            durable,
            mirror: Mirror::default(),
            licenses: Licenses::default(),
            check,
            next_full_at: 0,
            next_delta_at: 0,
            refresh_requested: false,
            sync: None,
            sync_started_at: 0,
            sync_overlapped: false,
            next_run_id: 1,
            test: TestState::Idle,
            backoff_until: 0,
            backoff_reason: String::new(),
            failures: 0,
            last_failure_at: None,
            rate: RateLimiter::new(config.rate_limit_margin_ms),
            poll_rate: RateLimiter::new(config.rate_limit_margin_ms),
            expiry_seen_at: None,
            dirty: true,
            reported: None,
        }
    }

    /// Rebuilds an account from its stored record at `now` (its mirror records are loaded into
    /// it next). The previous instance may have sent requests in the last second, which Apple
    /// still counts: the rate window starts full. With a complete stored mirror the account
    /// catches up with a delta sync; otherwise it starts with a full refresh.
    pub fn restore(record: AccountRecord, token: SToken, config: &EngineConfig, now: Millis) -> Self {
        let mut account = Self::with_durable(record.account_id, record.name, token, record.durable, config);
        account.dirty = false;
        if account.durable.mirror_stored {
            // The mirror comes from the store: catch up with a delta sync, keep the refresh schedule.
            account.next_full_at = account.durable.last_full_refresh_at.unwrap_or(0) + config.full_refresh_interval_ms;
        }
        for _ in 0..Limits::default().max_request_per_second {
            account.rate.record(now);
        }
        // Releases are decided in memory and planned when the coalescing window closes: one decided
        // just before a crash is not in the store. The first plan releases whatever of ours no policy
        // wants (a Reconcile), so none is lost.
        account.licenses.request_reconcile();
        account
    }

    pub fn to_record(&self) -> AccountRecord {
        AccountRecord {
            account_id: self.id.clone(),
            name: self.name.clone(),
            token: self.token.bearer().clone(),
            durable: self.durable.clone(),
        }
    }

    // ----------------------------------------------------------------- commands

    /// Replaces the token (the way out of *token invalid*) and verifies ownership again.
    /// A token for another organization starts the account from scratch.
    pub fn replace_token(&mut self, token: SToken) {
        if token.org_name != self.token.org_name {
            self.mirror.clear();
            self.durable.cursors = Cursors::default();
            self.durable.last_synced_at = None;
            self.durable.location_name = None;
            self.durable.country_code = None;
            self.durable.u_id = None;
            self.durable.retry_after_until = 0;
            self.backoff_until = 0;
            self.failures = 0;
        }
        self.token = token;
        self.durable.token_problem = None;
        self.durable.warned_threshold = None;
        self.durable.ownership = Ownership::Unknown;
        self.durable.claim_requested = false;
        self.check = Some(Check::NeedRead);
        self.sync = None;
        self.dirty = true;
    }

    /// Queues a connectivity test. When requests are stopped, answers at once instead.
    pub fn request_test(&mut self, events: &mut Vec<Event>) {
        if let Some(reason) = self.stop_reason() {
            events.push(self.test_result(false, format!("Not contacting Apple: {reason}")));
        } else if self.test == TestState::Idle {
            self.test = TestState::Queued;
        }
    }

    pub fn request_refresh(&mut self) -> Result<(), String> {
        if let Some(reason) = self.stop_reason() {
            return Err(format!("cannot refresh: {reason}"));
        }
        self.refresh_requested = true;
        Ok(())
    }

    pub fn reclaim_ownership(&mut self) -> Result<(), String> {
        if self.durable.token_problem.is_some() {
            return Err("the token is invalid; replace it before reclaiming ownership".to_owned());
        }
        if !matches!(self.durable.ownership, Ownership::Other(_)) {
            return Err("the location is not owned by another MDM".to_owned());
        }
        self.check = Some(Check::NeedClaim);
        self.durable.claim_requested = true;
        self.dirty = true;
        Ok(())
    }

    // ----------------------------------------------------------------- state

    /// Why the account sends nothing at all, if it doesn't.
    fn stop_reason(&self) -> Option<String> {
        if let Some(problem) = &self.durable.token_problem {
            return Some(problem.clone());
        }
        match (&self.durable.ownership, self.check) {
            (Ownership::Other(info), None) => Some(format!(
                "Owned by another MDM ({}). Choose Reclaim Ownership to manage it here; no requests are sent until then.",
                info.name
            )),
            _ => None,
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stop_reason().is_some()
    }

    pub fn blocked_until(&self) -> Millis {
        self.durable.retry_after_until.max(self.backoff_until)
    }

    pub fn status(&self, now: Millis) -> (AccountStatus, String) {
        if let Some(problem) = &self.durable.token_problem {
            return (AccountStatus::TokenInvalid, problem.clone());
        }
        if let Some(reason) = self.stop_reason() {
            return (AccountStatus::OwnedByOtherMdm, reason);
        }
        if self.blocked_until() > now {
            return (AccountStatus::BackingOff, self.backoff_reason.clone());
        }
        match (self.check, &self.sync) {
            (Some(Check::NeedClaim | Check::Claiming), _) => {
                (AccountStatus::Checking, "Claiming the location for this MDM".to_owned())
            }
            (Some(_), _) => (AccountStatus::Checking, "Checking which MDM manages the location".to_owned()),
            (None, Some(run)) if run.kind == SyncKind::Full => {
                (AccountStatus::Syncing, "Full refresh of licenses in progress".to_owned())
            }
            _ => (AccountStatus::Active, "Managed by this MDM".to_owned()),
        }
    }

    pub fn other_mdm_name(&self) -> Option<String> {
        match &self.durable.ownership {
            Ownership::Other(info) => Some(info.name.clone()),
            _ => None,
        }
    }

    pub fn sync_progress(&self) -> Option<(SyncKind, u32, u32)> {
        self.sync.as_ref().map(|run| {
            let (done, total) = run.progress();
            (run.kind, done, total)
        })
    }

    fn test_result(&self, ok: bool, message: String) -> Event {
        Event::TestResult { account_id: self.id.clone(), ok, message, location_name: self.durable.location_name.clone() }
    }

    // ----------------------------------------------------------------- time

    /// Time-driven changes: expiry warnings, expiry, and starting due syncs.
    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        self.check_expiry(ctx);
        if self.is_stopped() || self.check.is_some() || self.durable.ownership != Ownership::Ours || self.sync.is_some() {
            return;
        }
        if self.mirror.take_counts_stale() {
            self.next_delta_at = self.next_delta_at.min(ctx.now); // a freed license to count
        }
        let confirming = self.licenses.next_confirmation().is_some_and(|at| at <= ctx.now);
        let kind = if self.refresh_requested || ctx.now >= self.next_full_at {
            SyncKind::Full
        } else if ctx.now >= self.next_delta_at || confirming {
            if self.durable.cursors.allow_delta() { SyncKind::Delta } else { SyncKind::Full }
        } else {
            return;
        };
        if kind == SyncKind::Full {
            self.refresh_requested = false;
        }
        self.sync = Some(SyncRun::new(self.next_run_id, kind, &self.durable.cursors));
        self.sync_started_at = ctx.now;
        self.sync_overlapped = self.licenses.has_operations_at_apple();
        self.mirror.begin_journal();
        self.next_run_id += 1;
        ctx.events.push(Event::SyncStarted { account_id: self.id.clone(), kind });
    }

    fn check_expiry(&mut self, ctx: &mut Ctx<'_>) {
        if self.durable.token_problem.is_some() {
            return;
        }
        let expires_at = self.token.expires_at;
        if ctx.now >= expires_at {
            // A terminal, stored state: not on the word of a single reading of the clock.
            match self.expiry_seen_at {
                None => self.expiry_seen_at = Some(ctx.now),
                Some(seen) if ctx.now >= seen + EXPIRY_CONFIRM_AFTER => {
                    self.stop(format!("The token expired on {}. Upload a new token.", format_utc(expires_at)), ctx);
                }
                Some(_) => {}
            }
            return;
        }
        self.expiry_seen_at = None;
        let remaining = expires_at - ctx.now;
        let crossed = EXPIRY_WARNING_DAYS.iter().copied().filter(|&days| remaining <= u64::from(days) * DAY).min();
        if let Some(days) = crossed.filter(|&d| self.durable.warned_threshold.is_none_or(|w| d < w)) {
            self.durable.warned_threshold = Some(days);
            self.dirty = true;
            ctx.events.push(Event::TokenExpiring { account_id: self.id.clone(), threshold_days: days, expires_at });
        }
    }

    fn next_expiry_warning(&self) -> Option<Millis> {
        EXPIRY_WARNING_DAYS
            .iter()
            .filter(|&&days| self.durable.warned_threshold.is_none_or(|w| days < w))
            .map(|&days| self.token.expires_at.saturating_sub(u64::from(days) * DAY))
            .min()
    }

    fn wants_to_send(&self, now: Millis, config: &EngineConfig, rate_limit: u32) -> bool {
        self.test == TestState::Queued
            || matches!(self.check, Some(Check::NeedRead | Check::NeedClaim))
            || (self.manages_licenses() && self.licenses.has_queued())
            || self.next_poll_at(now, rate_limit).is_some_and(|at| at <= now)
            || self.sync.as_ref().is_some_and(|run| run.wants_page(config.max_pages_in_flight as usize))
    }

    /// When the next `/status` poll may go: when an event is due and, while license requests
    /// wait to be sent, the polls' third of the rate allows one (polls never starve sends).
    fn next_poll_at(&self, now: Millis, rate_limit: u32) -> Option<Millis> {
        let due = self.licenses.next_poll_at().filter(|_| self.manages_licenses())?;
        let share = if self.licenses.sends_waiting() { self.poll_rate.next_free(now, (rate_limit / 3).max(1)) } else { now };
        Some(due.max(share))
    }

    /// Whether the license work waiting is to be planned now. Call on every scheduling pass while
    /// [`Licenses::wants_plan`]: it feeds the coalescing window. Work waits for the window to
    /// close, and keeps collecting while the account may not send or has planned requests the
    /// rate limiter holds back.
    pub fn license_plan_due(&mut self, now: Millis, policy: &CoalescePolicy) -> bool {
        self.licenses.note_waiting_work(now);
        self.can_plan()
            && self.blocked_until() <= now
            && !self.licenses.has_queued()
            && self.licenses.coalescing_closes_at(policy).is_some_and(|at| at <= now)
    }

    /// Whether license operations may be sent: the location is ours and verified.
    fn manages_licenses(&self) -> bool {
        self.durable.ownership == Ownership::Ours && self.check.is_none()
    }

    /// Whether license decisions can be made: ours, synced at least once, no full refresh running.
    pub fn can_plan(&self) -> bool {
        !self.is_stopped()
            && self.manages_licenses()
            && self.durable.last_synced_at.is_some()
            && !self.sync.as_ref().is_some_and(|run| run.kind == SyncKind::Full)
    }

    /// When the account next needs the engine, and why.
    pub fn next_due(&self, now: Millis, config: &EngineConfig, limits: &Limits) -> Option<(Millis, &'static str)> {
        if self.durable.token_problem.is_some() {
            return None;
        }
        let rate_limit = limits.max_request_per_second;
        let expiry = self.expiry_seen_at.map_or(self.token.expires_at, |seen| seen + EXPIRY_CONFIRM_AFTER);
        let mut due = vec![(expiry, "token expiry")];
        if let Some(at) = self.next_expiry_warning() {
            due.push((at, "token expiry warning"));
        }
        if !self.is_stopped() {
            let gate = self.blocked_until().max(self.rate.next_free(now, rate_limit));
            let gate_reason = if self.blocked_until() > now { "backoff ends" } else { "rate limit window" };
            if self.wants_to_send(now, config, rate_limit) {
                due.push((gate.max(now), gate_reason));
            } else if self.check.is_none() && self.durable.ownership == Ownership::Ours && self.sync.is_none() {
                let (at, reason) = if self.refresh_requested || self.next_full_at <= self.next_delta_at {
                    (if self.refresh_requested { now } else { self.next_full_at }, "full refresh")
                } else {
                    (self.next_delta_at, "delta sync")
                };
                due.push((at.max(self.blocked_until()), reason));
                if let Some(at) = self.licenses.next_confirmation() {
                    due.push((at.max(self.blocked_until()), "sync to confirm unanswered assignments"));
                }
            }
            if let Some(at) = self.next_poll_at(now, rate_limit) {
                due.push((at.max(gate), "event status poll"));
            }
            if self.licenses.wants_plan() && self.can_plan() && !self.licenses.has_queued() {
                // No window yet: the next pass opens one.
                let closes_at = self.licenses.coalescing_closes_at(&CoalescePolicy::new(config, limits)).unwrap_or(now);
                due.push((closes_at.max(self.blocked_until()), "coalescing"));
            }
        }
        due.into_iter().min_by_key(|(at, _)| *at)
    }

    /// The engine's clock was set back to `now` after a glitch (one `now` far ahead): deadlines computed
    /// on the glitched clock come back within their own intervals, and what it recorded becomes `now`.
    pub fn clock_rewound(&mut self, now: Millis, config: &EngineConfig) {
        self.next_full_at = self.next_full_at.min(now + config.full_refresh_interval_ms);
        self.next_delta_at = self.next_delta_at.min(now + config.delta_sync_interval_ms);
        self.sync_started_at = self.sync_started_at.min(now);
        self.backoff_until = self.backoff_until.min(now + config.backoff_max_ms);
        self.last_failure_at = self.last_failure_at.map(|at| at.min(now));
        if self.durable.retry_after_until > now + RETRY_AFTER_AFTER_REWIND {
            self.durable.retry_after_until = now + RETRY_AFTER_AFTER_REWIND;
            self.dirty = true;
        }
        self.rate.forget_after(now);
        self.poll_rate.forget_after(now);
        self.expiry_seen_at = None;
        // Warnings given for a day the clock had not really reached are given again when it does.
        let remaining = self.token.expires_at.saturating_sub(now);
        let crossed = EXPIRY_WARNING_DAYS.iter().copied().filter(|&days| remaining <= u64::from(days) * DAY).min();
        if self.durable.warned_threshold.is_some_and(|warned| crossed.is_none_or(|c| warned < c)) {
            self.durable.warned_threshold = crossed;
            self.dirty = true;
        }
        self.licenses.clock_rewound(now, config.unconfirmed_settle_ms);
    }

    // ----------------------------------------------------------------- requests

    /// Whether the account may send a request now (its own gates; the caller checks nothing else).
    pub fn may_send(&self, now: Millis, rate_limit: u32) -> bool {
        !self.is_stopped() && self.blocked_until() <= now && self.rate.next_free(now, rate_limit) <= now
    }

    /// The next request the account wants sent, recorded as sent at `now`.
    /// Call only when [`Account::may_send`] is true.
    pub fn next_request(&mut self, ctx: &Ctx<'_>) -> Option<AccountRequest> {
        let urls = &ctx.service.urls;
        let request = if self.test == TestState::Queued {
            self.test = TestState::InFlight;
            get(Purpose::Test, &urls.client_config)
        } else if self.check == Some(Check::NeedRead) {
            self.check = Some(Check::Reading);
            get(Purpose::ReadClientConfig, &urls.client_config)
        } else if self.check == Some(Check::NeedClaim) {
            self.check = Some(Check::Claiming);
            let notifications = ctx.config.notifications.as_ref();
            let claim = ClaimRequest {
                mdm_info: &ctx.config.mdm_info,
                notification_url: notifications.map(|n| {
                    let id = utf8_percent_encode(&self.id, PATH_SEGMENT);
                    format!("{}/{id}", n.url.trim_end_matches('/'))
                }),
                notification_auth_token: notifications.map(|n| n.auth_token.expose()),
                notification_types: notifications.map(|_| NOTIFICATION_TYPES),
            };
            let body = serde_json::to_string(&claim).expect("a claim request always serializes");
            AccountRequest { purpose: Purpose::Claim, method: Method::Post, url: urls.client_config.clone(), body: Some(body) }
        } else if let Some(request) = self.next_license_request(ctx) {
            request
        } else {
            let run = self.sync.as_mut()?;
            let page = run.next_page(ctx.config.max_pages_in_flight as usize)?;
            let base = match page.resource {
                Resource::Assets => &urls.get_assets,
                Resource::Assignments => &urls.get_assignments,
                Resource::Users => &urls.get_users,
            };
            let mut query = form_urlencoded::Serializer::new(String::new());
            query.append_pair("pageIndex", &page.page_index.to_string());
            if let Some(since) = &page.since_version_id {
                query.append_pair("sinceVersionId", since);
            }
            let url = format!("{base}{}{}", if base.contains('?') { '&' } else { '?' }, query.finish());
            AccountRequest { purpose: Purpose::Page { run: run.id, page }, method: Method::Get, url, body: None }
        };
        self.rate.record(ctx.now);
        Some(request)
    }

    fn next_license_request(&mut self, ctx: &Ctx<'_>) -> Option<AccountRequest> {
        if !self.manages_licenses() {
            return None;
        }
        let urls = &ctx.service.urls;
        if let Some(op) = self.licenses.next_submission(ctx.now) {
            self.sync_overlapped |= self.sync.is_some();
            let url = match op.kind {
                OperationKind::Associate => &urls.associate_assets,
                OperationKind::Disassociate => &urls.disassociate_assets,
                OperationKind::Revoke => &urls.revoke_assets,
                OperationKind::CreateUsers => &urls.create_users,
            };
            let purpose = Purpose::Submit { op: op.id, kind: op.kind };
            return Some(AccountRequest { purpose, method: Method::Post, url: url.clone(), body: Some(op.body(&self.mirror)) });
        }
        if self.next_poll_at(ctx.now, ctx.service.limits.max_request_per_second).is_none_or(|at| at > ctx.now) {
            return None;
        }
        let (op, event_id) = self.licenses.next_poll(ctx.now)?;
        self.poll_rate.record(ctx.now);
        let query = form_urlencoded::Serializer::new(String::new()).append_pair("eventId", &event_id).finish();
        Some(get(Purpose::Poll { op }, &format!("{}?{query}", urls.event_status)))
    }

    /// Plans license operations from the account's policies and the facts.
    pub fn plan_licenses(&mut self, facts: &Facts, ctx: &mut Ctx<'_>) {
        let mut license_ctx = license_ctx(&self.id, ctx);
        self.licenses.plan(facts, &mut self.mirror, &mut license_ctx);
    }

    /// Applies an `ASSET_MANAGEMENT` notification.
    pub fn asset_management(&mut self, notification: &AssetManagement, ctx: &mut Ctx<'_>) {
        let mut license_ctx = license_ctx(&self.id, ctx);
        self.licenses.asset_management(notification, &mut self.mirror, &mut license_ctx);
    }

    /// Applies a `USER_MANAGEMENT` notification.
    pub fn user_management(&mut self, notification: &UserManagement, ctx: &mut Ctx<'_>) {
        let mut license_ctx = license_ctx(&self.id, ctx);
        self.licenses.user_management(notification, &mut self.mirror, &mut license_ctx);
        if std::mem::take(&mut self.licenses.users_changed) {
            self.next_delta_at = ctx.now; // fetch the new users' invitation codes
        }
    }

    // ----------------------------------------------------------------- answers

    /// Handles Apple's answer to a request this account sent at `sent_at`. A page's body is
    /// read once: its envelope (`mdmInfo`, `errorNumber`) comes with its records.
    pub fn handle_response(&mut self, purpose: Purpose, sent_at: Millis, answer: HttpAnswer<'_>, ctx: &mut Ctx<'_>) {
        let mut page = match &purpose {
            Purpose::Page { page, .. } if (200..300).contains(&answer.status) => ReadPage::parse(page.resource, answer.body).ok(),
            _ => None,
        };
        let classified = match page.as_mut() {
            Some(read) => classify_envelope(answer.status, answer.headers, Some(read.take_envelope()), ctx.now),
            None => classify(answer.status, answer.headers, answer.body, ctx.now),
        };
        self.handle_answer(purpose, sent_at, classified, answer.body, page, ctx);
    }

    /// Handles a classified answer; `page` is its body already read as a page, if it is one.
    fn handle_answer(&mut self, purpose: Purpose, sent_at: Millis, answer: Classified, body: &str, page: Option<ReadPage<'_>>, ctx: &mut Ctx<'_>) {
        if let Outcome::RetryAfter { until, .. } = &answer.outcome {
            // Apple's deadline holds for the account whatever its state: a stopped account may be
            // restarted (new token, Reclaim Ownership) inside it.
            if *until > self.durable.retry_after_until {
                self.durable.retry_after_until = *until;
                self.dirty = true;
            }
        }
        if self.is_stopped() {
            if purpose == Purpose::Test {
                self.test = TestState::Idle;
            }
            return;
        }
        if let Purpose::Page { run, .. } = &purpose {
            if self.sync.as_ref().is_none_or(|r| r.id != *run) {
                return; // an answer for a run that was abandoned
            }
        }
        if let Some(info) = answer.mdm_info.as_ref().filter(|info| info.id != ctx.config.mdm_info.id) {
            if self.durable.claim_requested && purpose != Purpose::Claim {
                // The administrator's claim is on its way: this answer shows the location before it.
                if purpose == Purpose::Test && self.test != TestState::Idle {
                    self.test = TestState::Idle;
                    let message = format!("The location is managed by another MDM ({}); claiming it for this MDM", info.name);
                    ctx.events.push(self.test_result(false, message));
                }
                return;
            }
            self.lose_ownership(info.clone(), ctx);
            return;
        }
        match answer.outcome {
            Outcome::Success => {
                self.failures = 0;
                self.last_failure_at = None;
                // Another MDM's mdmInfo was handled above: any mdmInfo left is ours.
                let ours = answer.mdm_info.is_some();
                let was_owner = self.durable.ownership == Ownership::Ours && self.check.is_none();
                match self.succeeded(&purpose, body, page, ours, ctx) {
                    Err(problem) => {
                        if let Purpose::Submit { op, .. } = purpose {
                            // Accepted, but without a readable eventId to follow.
                            self.licenses.unanswered(op, ctx.config.unconfirmed_settle_ms);
                        }
                        self.failed_transiently(&purpose, sent_at, format!("unreadable answer from Apple: {problem}"), ctx);
                        self.report_failure(&purpose, None, "unreadable answer from Apple", ctx);
                    }
                    Ok(()) if was_owner && !ours && purpose != Purpose::Claim => self.verify_ownership_again(),
                    Ok(()) => {}
                }
            }
            Outcome::RetryAfter { until, reason } => {
                self.backoff_reason = format!("Apple asked to wait until {} ({reason})", format_utc(until));
                self.requeue(&purpose);
                self.push_backoff_event(ctx);
            }
            Outcome::Transient { reason } => self.failed_transiently(&purpose, sent_at, reason, ctx),
            Outcome::TokenInvalid { reason, .. } => {
                if purpose == Purpose::Test {
                    ctx.events.push(self.test_result(false, reason.clone()));
                }
                self.stop(reason, ctx);
            }
            Outcome::Rejected { error_number, reason } => self.rejected(&purpose, sent_at, error_number, reason, ctx),
        }
    }

    /// A request sent at `sent_at` got no answer at all.
    pub fn handle_network_error(&mut self, purpose: Purpose, sent_at: Millis, message: &str, ctx: &mut Ctx<'_>) {
        if self.is_stopped() {
            if purpose == Purpose::Test {
                self.test = TestState::Idle;
            }
            return;
        }
        if let Purpose::Submit { op, .. } = purpose {
            self.licenses.unanswered(op, ctx.config.unconfirmed_settle_ms);
        }
        self.failed_transiently(&purpose, sent_at, format!("network error: {message}"), ctx);
    }

    fn succeeded(&mut self, purpose: &Purpose, body: &str, page: Option<ReadPage<'_>>, ours: bool, ctx: &mut Ctx<'_>) -> Result<(), String> {
        match purpose {
            Purpose::ReadClientConfig => {
                let config: ClientConfig = parse(body)?;
                self.apply_client_config(config);
                if ours {
                    self.become_owner(ctx, false);
                } else {
                    self.check = Some(Check::NeedClaim);
                }
            }
            Purpose::Claim => {
                let config: ClientConfig = parse(body)?;
                self.apply_client_config(config);
                self.become_owner(ctx, true);
            }
            Purpose::Test => {
                let config: ClientConfig = parse(body)?;
                self.apply_client_config(config);
                self.test = TestState::Idle;
                let location = self.durable.location_name.clone().unwrap_or_else(|| "(unnamed)".to_owned());
                let owner = if ours { "managed by this MDM" } else { "not claimed by any MDM yet" };
                ctx.events.push(self.test_result(true, format!("Token valid; reached Apple; location {location} is {owner}")));
            }
            Purpose::Page { page: request, .. } => {
                let read = match page {
                    Some(read) => read,
                    None => ReadPage::parse(request.resource, body)?,
                };
                self.page_arrived(request, read, ctx);
            }
            Purpose::Submit { op, .. } => {
                let accepted: EventResponse = parse(body)?;
                self.licenses.submitted(*op, accepted.event_id, ctx.now);
            }
            Purpose::Poll { op } => {
                let status: StatusResponse = parse(body)?;
                let mut license_ctx = license_ctx(&self.id, ctx);
                self.licenses.status(*op, status, &mut self.mirror, &mut license_ctx);
                if std::mem::take(&mut self.licenses.users_changed) {
                    self.next_delta_at = ctx.now; // fetch the new users' invitation codes
                }
            }
        }
        Ok(())
    }

    fn apply_client_config(&mut self, config: ClientConfig) {
        if config.location_name.is_some() {
            self.durable.location_name = config.location_name;
        }
        if config.country_code.is_some() {
            self.durable.country_code = config.country_code;
        }
        if config.u_id.is_some() {
            self.durable.u_id = config.u_id;
        }
        self.dirty = true;
    }

    fn become_owner(&mut self, ctx: &mut Ctx<'_>, claimed_now: bool) {
        let first_time = self.durable.ownership != Ownership::Ours;
        self.durable.ownership = Ownership::Ours;
        self.durable.claim_requested = false;
        self.check = None;
        self.dirty = true;
        if claimed_now {
            ctx.events.push(Event::OwnershipClaimed { account_id: self.id.clone() });
        }
        if first_time || self.durable.last_synced_at.is_none() {
            self.refresh_requested = true;
        }
    }

    fn page_arrived(&mut self, page: &PageRequest, read: ReadPage<'_>, ctx: &mut Ctx<'_>) {
        let Some(run) = self.sync.as_mut() else { return };
        let meta = match read {
            ReadPage::Assets(parsed) => {
                for asset in &parsed.records {
                    self.mirror.stage_asset(&mut run.staged, asset);
                }
                meta_of(parsed)
            }
            ReadPage::Assignments(parsed) => {
                for assignment in &parsed.records {
                    self.mirror.stage_assignment(&mut run.staged, assignment);
                }
                meta_of(parsed)
            }
            ReadPage::Users(parsed) => {
                for user in &parsed.records {
                    self.mirror.stage_user(&mut run.staged, user);
                }
                meta_of(parsed)
            }
        };
        run.page_received(page.resource, page.page_index, meta);
        self.after_page(ctx);
    }

    fn after_page(&mut self, ctx: &mut Ctx<'_>) {
        let Some(run) = self.sync.as_ref() else { return };
        let (pages_done, pages_total) = run.progress();
        ctx.events.push(Event::SyncProgress { account_id: self.id.clone(), kind: run.kind, pages_done, pages_total });
        if run.is_complete() {
            self.finish_sync(ctx);
        }
    }

    fn finish_sync(&mut self, ctx: &mut Ctx<'_>) {
        let Some(run) = self.sync.take() else { return };
        let cursors = run.cursors();
        let kind = run.kind;
        let mut trustworthy = false;
        match kind {
            // Apple pages by index: an event of ours completing mid-traversal shifts later pages,
            // so such a traversal may miss assignments that exist. Nothing is removed on its word.
            SyncKind::Full if self.sync_overlapped => self.mirror.merge(run.staged),
            SyncKind::Full => {
                self.licenses.forget_pool_refusals();
                let held_before = self.licenses.ours_held(&self.mirror);
                self.mirror.replace(run.staged);
                self.licenses.prune_ours(&held_before, &mut self.mirror, &mut license_ctx(&self.id, ctx));
                trustworthy = true;
                self.next_full_at = ctx.now + ctx.config.full_refresh_interval_ms;
                self.durable.last_full_refresh_at = Some(ctx.now);
            }
            SyncKind::Delta => self.mirror.merge(run.staged),
        }
        self.durable.cursors = Cursors {
            assignments: cursors.assignments.or(self.durable.cursors.assignments.take()),
            users: cursors.users.or(self.durable.cursors.users.take()),
        };
        self.next_delta_at = ctx.now + ctx.config.delta_sync_interval_ms;
        self.durable.last_synced_at = Some(ctx.now);
        let mut license_ctx = license_ctx(&self.id, ctx);
        self.licenses.settle_unconfirmed(self.sync_started_at, trustworthy, &mut self.mirror, &mut license_ctx);
        self.licenses.counts_changed(&self.mirror);
        self.dirty = true;
        let (assets, assignments, users) = self.mirror.counts();
        ctx.events.push(Event::SyncCompleted { account_id: self.id.clone(), kind, assets, assignments, users });
    }

    fn rejected(&mut self, purpose: &Purpose, sent_at: Millis, error_number: Option<i64>, reason: String, ctx: &mut Ctx<'_>) {
        match (purpose, error_number) {
            (Purpose::Page { page, .. }, Some(PAGE_INDEX_OUT_OF_RANGE)) => {
                if let Some(run) = self.sync.as_mut() {
                    run.page_beyond_end(page.resource, page.page_index);
                }
                self.after_page(ctx);
            }
            (Purpose::Page { .. }, Some(INVALID_VERSION_ID)) => {
                // The delta cursor is no longer valid: start over with a full refresh.
                self.sync = None;
                self.durable.cursors = Cursors::default();
                self.refresh_requested = true;
                self.dirty = true;
            }
            (Purpose::Test, _) => {
                self.test = TestState::Idle;
                ctx.events.push(self.test_result(false, reason));
            }
            (Purpose::Submit { op, .. }, _) => {
                self.report_failure(purpose, error_number, &reason, ctx);
                let mut license_ctx = license_ctx(&self.id, ctx);
                self.licenses.refused(*op, error_number, &reason, &mut self.mirror, &mut license_ctx);
            }
            (Purpose::Poll { op }, Some(EVENT_NOT_FOUND)) => self.licenses.retry(*op, false),
            _ => {
                self.report_failure(purpose, error_number, &reason, ctx);
                if matches!(purpose, Purpose::Page { .. }) {
                    // Abandon this run; it starts again once the backoff has passed.
                    let kind = self.sync.take().map(|run| run.kind);
                    self.refresh_requested |= kind == Some(SyncKind::Full);
                }
                self.failed_transiently(purpose, sent_at, reason, ctx);
            }
        }
    }

    fn report_failure(&self, purpose: &Purpose, error_number: Option<i64>, message: &str, ctx: &mut Ctx<'_>) {
        ctx.events.push(Event::RequestFailed {
            account_id: Some(self.id.clone()),
            purpose: purpose.name().to_owned(),
            error_number,
            message: message.to_owned(),
        });
    }

    fn failed_transiently(&mut self, purpose: &Purpose, sent_at: Millis, reason: String, ctx: &mut Ctx<'_>) {
        self.requeue(purpose);
        if self.last_failure_at.is_some_and(|last| sent_at < last) {
            return; // already backing off for the trouble this request ran into
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure_at = Some(ctx.now);
        let delay = ctx.config.backoff().delay(self.failures, ctx.rng);
        self.backoff_until = self.backoff_until.max(ctx.now + delay);
        self.backoff_reason = format!(
            "Retrying after {} consecutive failures, at {}: {reason}",
            self.failures,
            format_utc(self.backoff_until)
        );
        self.push_backoff_event(ctx);
    }

    fn push_backoff_event(&self, ctx: &mut Ctx<'_>) {
        ctx.events.push(Event::Backoff {
            account_id: Some(self.id.clone()),
            until: self.blocked_until(),
            reason: self.backoff_reason.clone(),
        });
    }

    /// Puts a request whose answer was a retryable failure back in line.
    fn requeue(&mut self, purpose: &Purpose) {
        match purpose {
            Purpose::ReadClientConfig => self.check = Some(Check::NeedRead),
            Purpose::Claim => self.check = Some(Check::NeedClaim),
            Purpose::Test => self.test = TestState::Queued,
            Purpose::Page { run, page } => {
                if let Some(sync) = self.sync.as_mut().filter(|s| s.id == *run) {
                    sync.page_failed(page.resource, page.page_index);
                }
            }
            Purpose::Submit { op, .. } => self.licenses.retry(*op, false),
            Purpose::Poll { op } => self.licenses.retry(*op, true),
        }
    }

    /// Apple echoes `mdmInfo` in every answer once set; an answer without it means someone
    /// cleared it. Read the client config again (and claim if the location is unclaimed), then
    /// start the interrupted refresh over.
    fn verify_ownership_again(&mut self) {
        self.check = Some(Check::NeedRead);
        if self.sync.take().is_some() {
            self.refresh_requested = true;
        }
    }

    fn lose_ownership(&mut self, info: MdmInfo, ctx: &mut Ctx<'_>) {
        if self.test != TestState::Idle {
            ctx.events.push(self.test_result(false, format!("The location is managed by another MDM ({})", info.name)));
        }
        ctx.events.push(Event::OwnershipLost {
            account_id: self.id.clone(),
            owner_name: info.name.clone(),
            owner_id: info.id.clone(),
        });
        self.durable.ownership = Ownership::Other(info);
        self.durable.claim_requested = false;
        self.halt_work(ctx);
    }

    fn stop(&mut self, reason: String, ctx: &mut Ctx<'_>) {
        if self.test != TestState::Idle {
            ctx.events.push(self.test_result(false, reason.clone()));
        }
        self.durable.token_problem = Some(reason);
        self.halt_work(ctx);
    }

    /// Drops all queued work; answers still in flight are ignored when they arrive.
    fn halt_work(&mut self, ctx: &Ctx<'_>) {
        self.check = None;
        self.sync = None;
        self.test = TestState::Idle;
        self.licenses.requests_abandoned(ctx.config.unconfirmed_settle_ms);
        self.dirty = true;
    }
}

fn license_ctx<'a>(account_id: &'a str, ctx: &'a mut Ctx<'_>) -> LicenseCtx<'a> {
    LicenseCtx {
        account_id,
        now: ctx.now,
        limits: &ctx.service.limits,
        low_license_threshold: ctx.config.low_license_threshold,
        notify_users: ctx.notify_users,
        invitation_url: &ctx.service.urls.invitation_email,
        events: ctx.events,
    }
}

fn get(purpose: Purpose, url: &str) -> AccountRequest {
    AccountRequest { purpose, method: Method::Get, url: url.to_owned(), body: None }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a str) -> Result<T, String> {
    serde_json::from_str(body).map_err(|e| e.to_string())
}

/// A page body read once, records and envelope.
enum ReadPage<'a> {
    Assets(Page<wire::Asset>),
    Assignments(Page<wire::Assignment<'a>>),
    Users(Page<wire::User>),
}

impl<'a> ReadPage<'a> {
    fn parse(resource: Resource, body: &'a str) -> Result<Self, String> {
        Ok(match resource {
            Resource::Assets => ReadPage::Assets(parse(body)?),
            Resource::Assignments => ReadPage::Assignments(parse(body)?),
            Resource::Users => ReadPage::Users(parse(body)?),
        })
    }

    fn take_envelope(&mut self) -> Envelope {
        match self {
            ReadPage::Assets(page) => page.take_envelope(),
            ReadPage::Assignments(page) => page.take_envelope(),
            ReadPage::Users(page) => page.take_envelope(),
        }
    }
}

fn meta_of<T>(page: Page<T>) -> PageMeta {
    PageMeta { next_page_index: page.next_page_index, total_pages: page.total_pages, version_id: page.version_id }
}
