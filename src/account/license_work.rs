//! The account's side of its license work: when planning runs (the coalescing window, the gates),
//! which operation is submitted or which event is polled next (polls take at most a third of the
//! rate while license requests wait), Apple's answers to those requests, the notifications
//! about licenses and users, and the checks with Apple of pairs a device found no license for.
//! What the work means is decided by [`crate::licenses::Licenses`].

use crate::account::{Account, AccountRequest, Purpose};
use crate::account::answers::parse;
use crate::apple::errors::EVENT_NOT_FOUND;
use crate::apple::notification::Notification;
use crate::apple::wire::{Assignment, EventResponse, Page, StatusResponse};
use crate::base::time::Millis;
use crate::contract::output::Method;
use crate::effects::{AccountEffects, Env};
use crate::facts::Facts;
use crate::licenses::coalesce::CoalescePolicy;
use crate::vocab::{AssignmentKey, OperationKind};

/// A request about license work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LicenseRequest {
    /// Sending an operation (associate, disassociate, revoke, create users).
    Submit { op: u64, kind: OperationKind },
    /// Asking `/status` about an operation's event.
    Poll { op: u64 },
    /// Asking Apple (`GET /assignments`, filtered) whether it holds a pair a device found no license for.
    Check { key: AssignmentKey },
}

impl LicenseRequest {
    /// The request's `purpose` in the output.
    pub fn name(self) -> &'static str {
        match self {
            LicenseRequest::Submit { kind, .. } => kind.purpose(),
            LicenseRequest::Poll { .. } => "eventStatus",
            LicenseRequest::Check { .. } => "checkAssignment",
        }
    }
}

impl Account {
    /// Whether the license work waiting is to be planned now. Call on every scheduling pass while
    /// [`crate::licenses::Licenses::wants_plan`]: it feeds the coalescing window. Work waits for
    /// the window to close, and keeps collecting while the account may not send or has planned
    /// requests the rate limiter holds back.
    pub fn license_plan_due(&mut self, now: Millis, policy: &CoalescePolicy) -> bool {
        self.licenses.note_waiting_work(now);
        self.can_plan()
            && self.gate.blocked_until() <= now
            && !self.licenses.has_queued()
            && self.licenses.coalescing_closes_at(policy).is_some_and(|at| at <= now)
    }

    /// Plans license operations from the account's policies and the facts. Call when
    /// [`Account::license_plan_due`].
    pub fn plan_licenses(&mut self, facts: &Facts, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        self.licenses.plan(facts, &mut self.mirror, env, fx);
    }

    /// When the next `/status` poll may go: when an event is due and, while license requests
    /// wait to be sent, the polls' third of the rate allows one (polls never starve sends).
    pub(super) fn next_poll_at(&self, now: Millis, rate_limit: u32) -> Option<Millis> {
        let due = self.licenses.next_poll_at().filter(|_| self.location.managed_by_us())?;
        let share = if self.licenses.sends_waiting() { self.gate.next_poll_free(now, rate_limit) } else { now };
        Some(due.max(share))
    }

    /// The next submission or poll, if one may go now (marked as sent).
    pub(super) fn next_license_request(&mut self, env: &Env<'_>, fx: &mut AccountEffects<'_>) -> Option<AccountRequest> {
        if !self.location.managed_by_us() {
            return None;
        }
        let urls = &env.service.urls;
        if let Some(op) = self.licenses.next_submission(env.now, fx) {
            self.schedule.operation_sent();
            let url = match op.kind {
                OperationKind::Associate => &urls.associate_assets,
                OperationKind::Disassociate => &urls.disassociate_assets,
                OperationKind::Revoke => &urls.revoke_assets,
                OperationKind::CreateUsers => &urls.create_users,
            };
            let purpose = LicenseRequest::Submit { op: op.id, kind: op.kind }.into();
            return Some(AccountRequest { purpose, method: Method::Post, url: url.clone(), body: Some(op.body(&self.mirror)) });
        }
        if let Some(key) = self.licenses.next_check() {
            let pair = self.mirror.pair(&key);
            let mut query = form_urlencoded::Serializer::new(String::new());
            match (&pair.serial_number, &pair.client_user_id) {
                (Some(serial), _) => query.append_pair("serialNumber", serial),
                (_, user) => query.append_pair("clientUserId", user.as_deref().unwrap_or_default()),
            };
            let query = query.append_pair("adamId", &pair.adam_id).append_pair("pricingParam", pair.pricing_param.name()).finish();
            let url = format!("{}?{query}", urls.get_assignments);
            return Some(AccountRequest { purpose: LicenseRequest::Check { key }.into(), method: Method::Get, url, body: None });
        }
        if self.next_poll_at(env.now, env.service.limits.max_request_per_second).is_none_or(|at| at > env.now) {
            return None;
        }
        let (op, event_id) = self.licenses.next_poll(env.now)?;
        self.gate.polled(env.now);
        let query = form_urlencoded::Serializer::new(String::new()).append_pair("eventId", &event_id).finish();
        let url = format!("{}?{query}", urls.event_status);
        Some(AccountRequest { purpose: Purpose::License(LicenseRequest::Poll { op }), method: Method::Get, url, body: None })
    }

    /// Apple answered a license request.
    pub(super) fn license_succeeded(&mut self, request: LicenseRequest, body: &str, env: &Env<'_>, fx: &mut AccountEffects<'_>) -> Result<(), String> {
        match request {
            LicenseRequest::Submit { op, .. } => {
                let accepted: EventResponse = parse(body)?;
                self.licenses.submitted(op, accepted.event_id, env.now, fx);
            }
            LicenseRequest::Poll { op } => {
                let status: StatusResponse = parse(body)?;
                let registered = self.licenses.status(op, status, &mut self.mirror, env, fx);
                self.users_registered(registered, env.now);
            }
            LicenseRequest::Check { key } => {
                let page: Page<Assignment<'_>> = parse(body)?;
                let shown = page.records.iter().any(|a| self.mirror.key_of(a) == Some(key));
                self.licenses.checked(key, shown, &mut self.mirror, fx);
            }
        }
        Ok(())
    }

    /// Apple refused a license request; whether that was handled here (else it is retried with backoff).
    pub(super) fn license_rejected(
        &mut self,
        request: LicenseRequest,
        error_number: Option<i64>,
        reason: &str,
        env: &Env<'_>,
        fx: &mut AccountEffects<'_>,
    ) -> bool {
        match (request, error_number) {
            (LicenseRequest::Submit { op, .. }, _) => {
                self.report_failure(&Purpose::License(request), error_number, reason, fx);
                let registered = self.licenses.refused(op, error_number, reason, &mut self.mirror, fx);
                self.users_registered(registered, env.now);
                true
            }
            (LicenseRequest::Poll { op }, Some(EVENT_NOT_FOUND)) => {
                self.licenses.retry(op, false);
                true
            }
            (LicenseRequest::Poll { .. }, _) => false,
            (LicenseRequest::Check { key }, _) => {
                self.report_failure(&Purpose::License(request), error_number, reason, fx);
                self.licenses.check_refused(key);
                true
            }
        }
    }

    /// A license request went without a usable answer: Apple may have acted on a submission.
    pub(super) fn license_unanswered(&mut self, request: LicenseRequest, env: &Env<'_>) {
        if let LicenseRequest::Submit { op, .. } = request {
            self.licenses.unanswered(op, env.config.unconfirmed_settle_ms);
        }
    }

    /// Puts a license request whose answer was a retryable failure back in line.
    pub(super) fn license_retry(&mut self, request: LicenseRequest) {
        match request {
            LicenseRequest::Submit { op, .. } => self.licenses.retry(op, false),
            LicenseRequest::Poll { op } => self.licenses.retry(op, true),
            LicenseRequest::Check { key } => self.licenses.check_again(key),
        }
    }

    /// Applies a notification Apple sent about this account. Call unless the account is stopped.
    pub fn notification(&mut self, notification: Notification, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        match notification {
            Notification::Test | Notification::Ignored => {}
            Notification::AssetManagement(management) => {
                let registered = self.licenses.asset_management(&management, &mut self.mirror, env, fx);
                self.users_registered(registered, env.now);
            }
            Notification::AssetCount(count) => {
                let asset = self.mirror.intern_asset(&count.adam_id, count.pricing_param);
                self.mirror.apply_count_delta(&asset, count.count_delta, &mut fx.changes().mirror);
                self.licenses.counts_changed(&self.mirror);
            }
            Notification::UserManagement(management) => {
                let registered = self.licenses.user_management(&management, &mut self.mirror, fx);
                self.users_registered(registered, env.now);
            }
            Notification::UsersAssociated(users) => self.licenses.users_updated(&users, &mut self.mirror, fx),
        }
    }

    /// A device reported that installing `adam_id` failed for want of a license (`installFailed`,
    /// `licenseNotFound`). Each pair of the app that the device (or its `user`) holds here, as far
    /// as the account knows, is checked with Apple; a pair it lacks is planned again.
    pub fn license_not_found(&mut self, serial: &str, user: Option<&str>, adam_id: &str, now: Millis, fx: &mut AccountEffects<'_>) {
        let mut targets = vec![self.mirror.intern_device(serial)];
        targets.extend(user.map(|u| self.mirror.intern_user(u)));
        for target in targets {
            for asset in self.mirror.assets_of_app(adam_id) {
                let key = AssignmentKey { asset, target };
                if self.mirror.has_assignment(&key) || self.licenses.ours().contains(&key) {
                    self.licenses.license_not_found(key, now, &self.mirror, fx);
                } else {
                    self.licenses.replan(target);
                }
            }
        }
    }

    /// Users were registered: a users delta sync reads their invitation codes.
    fn users_registered(&mut self, registered: bool, now: Millis) {
        if registered {
            self.schedule.delta_now(now);
        }
    }
}
