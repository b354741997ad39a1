//! What an answer to one of the account's requests means. First what holds whatever the request
//! was for — a `Retry-After` deadline, a stopped account ignoring answers, another MDM's
//! `mdmInfo`, backoff on failures, a stopped token — then, per purpose, the part of the account
//! that sent it: the location (`ownership.rs`), the sync (`schedule.rs`) or the license work
//! (`license_work.rs`).

use serde::Deserialize;

use crate::account::Account;
use crate::account::license_work::LicenseRequest;
use crate::account::ownership::LocationRequest;
use crate::account::schedule::ReadPage;
use crate::account::sync::PageRequest;
use crate::apple::outcome::{classify, classify_envelope, Classified, HttpAnswer, Outcome};
use crate::base::time::Millis;
use crate::contract::event::Event;
use crate::effects::{AccountEffects, Env};

/// What an account request is for; kept by the engine until the answer arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// About the location: client config, a claim, the administrator's Test.
    Location(LocationRequest),
    /// A page of sync run `run`.
    Page { run: u64, page: PageRequest },
    /// License work: a submission or a `/status` poll.
    License(LicenseRequest),
}

impl From<LocationRequest> for Purpose {
    fn from(request: LocationRequest) -> Self {
        Purpose::Location(request)
    }
}

impl From<LicenseRequest> for Purpose {
    fn from(request: LicenseRequest) -> Self {
        Purpose::License(request)
    }
}

impl Purpose {
    /// The request's `purpose` in the output (for logs and metrics).
    pub fn name(&self) -> &'static str {
        match self {
            Purpose::Location(request) => request.name(),
            Purpose::Page { page, .. } => page.resource.purpose(),
            Purpose::License(request) => request.name(),
        }
    }
}

const TEST: Purpose = Purpose::Location(LocationRequest::Test);

impl Account {
    /// Handles Apple's answer to a request this account sent at `sent_at`. Call for every answer
    /// to one of its requests. A page's body is read once: its envelope (`mdmInfo`,
    /// `errorNumber`) comes with its records.
    pub fn handle_response(
        &mut self,
        purpose: Purpose,
        sent_at: Millis,
        answer: HttpAnswer<'_>,
        env: &Env<'_>,
        fx: &mut AccountEffects<'_>,
        rng: &mut fastrand::Rng,
    ) {
        let mut page = match &purpose {
            Purpose::Page { page, .. } if (200..300).contains(&answer.status) => ReadPage::parse(page.resource, answer.body).ok(),
            _ => None,
        };
        let classified = match page.as_mut() {
            Some(read) => classify_envelope(answer.status, answer.headers, Some(read.take_envelope()), env.now),
            None => classify(answer.status, answer.headers, answer.body, env.now),
        };
        self.handle_answer(purpose, sent_at, classified, answer.body, page, env, fx, rng);
    }

    /// Handles a classified answer; `page` is its body already read as a page, if it is one.
    #[allow(clippy::too_many_arguments)]
    fn handle_answer(
        &mut self,
        purpose: Purpose,
        sent_at: Millis,
        answer: Classified,
        body: &str,
        page: Option<ReadPage<'_>>,
        env: &Env<'_>,
        fx: &mut AccountEffects<'_>,
        rng: &mut fastrand::Rng,
    ) {
        if let Outcome::RetryAfter { until, .. } = &answer.outcome {
            // Apple's deadline holds for the account whatever its state: a stopped account may be
            // restarted (new token, Reclaim Ownership) inside it.
            if self.gate.retry_after(*until) {
                fx.record_changed();
            }
        }
        if self.is_stopped() {
            if purpose == TEST {
                self.location.test_answered();
            }
            return;
        }
        if let Purpose::Page { run, .. } = &purpose {
            if !self.schedule.is_current(*run) {
                return; // an answer for a run that was abandoned
            }
        }
        if let Some(info) = answer.mdm_info.as_ref().filter(|info| info.id != env.config.mdm_info.id) {
            if self.location.claim_requested && purpose != Purpose::Location(LocationRequest::Claim) {
                // The administrator's claim is on its way: this answer shows the location before it.
                if purpose == TEST && self.location.test_running() {
                    self.location.test_answered();
                    let message = format!("The location is managed by another MDM ({}); claiming it for this MDM", info.name);
                    fx.event(self.test_result(false, message));
                }
                return;
            }
            self.lose_ownership(info.clone(), env, fx);
            return;
        }
        match answer.outcome {
            Outcome::Success => {
                self.gate.succeeded();
                // Another MDM's mdmInfo was handled above: any mdmInfo left is ours.
                let ours = answer.mdm_info.is_some();
                let was_owner = self.location.managed_by_us();
                let read = match &purpose {
                    Purpose::Location(request) => self.location_succeeded(*request, body, ours, fx),
                    Purpose::Page { page: request, .. } => self.page_succeeded(request, body, page, env, fx),
                    Purpose::License(request) => self.license_succeeded(*request, body, env, fx),
                };
                match read {
                    Err(problem) => {
                        if let Purpose::License(request) = purpose {
                            self.license_unanswered(request, env); // accepted, but without a readable eventId to follow
                        }
                        self.failed_transiently(&purpose, sent_at, format!("unreadable answer from Apple: {problem}"), env, fx, rng);
                        self.report_failure(&purpose, None, "unreadable answer from Apple", fx);
                    }
                    Ok(()) if was_owner && !ours && purpose != Purpose::Location(LocationRequest::Claim) => self.verify_ownership_again(),
                    Ok(()) => {}
                }
            }
            Outcome::RetryAfter { until, reason } => {
                self.gate.asked_to_wait(until, &reason);
                self.retry(&purpose);
                self.push_backoff_event(fx);
            }
            Outcome::Transient { reason } => self.failed_transiently(&purpose, sent_at, reason, env, fx, rng),
            // Sent with a token replaced since: says nothing about the new one; sent again with it.
            Outcome::TokenInvalid { .. } if self.credential.sent_with_older_token(sent_at) => self.retry(&purpose),
            // A running Test learns the reason from `stop`, once.
            Outcome::TokenInvalid { reason, .. } => self.stop(reason, env, fx),
            Outcome::Rejected { error_number, reason } => {
                let handled = match &purpose {
                    Purpose::Location(request) => self.location_rejected(*request, &reason, fx),
                    Purpose::Page { page, .. } => self.page_rejected(page, error_number, env, fx),
                    Purpose::License(request) => self.license_rejected(*request, error_number, &reason, env, fx),
                };
                if !handled {
                    self.report_failure(&purpose, error_number, &reason, fx);
                    self.failed_transiently(&purpose, sent_at, reason, env, fx, rng);
                }
            }
        }
    }

    /// A request sent at `sent_at` got no answer at all. Call for every network error of one of
    /// the account's requests.
    pub fn handle_network_error(
        &mut self,
        purpose: Purpose,
        sent_at: Millis,
        message: &str,
        env: &Env<'_>,
        fx: &mut AccountEffects<'_>,
        rng: &mut fastrand::Rng,
    ) {
        if self.is_stopped() {
            if purpose == TEST {
                self.location.test_answered();
            }
            return;
        }
        if let Purpose::License(request) = purpose {
            self.license_unanswered(request, env);
        }
        self.failed_transiently(&purpose, sent_at, format!("network error: {message}"), env, fx, rng);
    }

    /// `requestFailed` for a request of the account.
    pub(super) fn report_failure(&self, purpose: &Purpose, error_number: Option<i64>, message: &str, fx: &mut AccountEffects<'_>) {
        fx.event(Event::RequestFailed {
            account_id: Some(self.id.clone()),
            purpose: purpose.name().to_owned(),
            error_number,
            message: message.to_owned(),
        });
    }

    /// The request is retried, after a backoff (unless a failure of the same incident backed off already).
    fn failed_transiently(
        &mut self,
        purpose: &Purpose,
        sent_at: Millis,
        reason: String,
        env: &Env<'_>,
        fx: &mut AccountEffects<'_>,
        rng: &mut fastrand::Rng,
    ) {
        self.retry(purpose);
        if self.gate.failed(sent_at, env.now, &reason, &env.config.backoff(), rng) {
            self.push_backoff_event(fx);
        }
    }

    fn push_backoff_event(&self, fx: &mut AccountEffects<'_>) {
        fx.event(Event::Backoff { account_id: Some(self.id.clone()), until: self.gate.blocked_until(), reason: self.gate.reason().to_owned() });
    }

    /// Puts a request whose answer was a retryable failure back in line, in the part that sent it.
    fn retry(&mut self, purpose: &Purpose) {
        match purpose {
            Purpose::Location(request) => self.location.retry(*request),
            Purpose::Page { run, page } => self.schedule.retry(*run, page),
            Purpose::License(request) => self.license_retry(*request),
        }
    }
}

/// Reads an answer's body.
pub(super) fn parse<'a, T: Deserialize<'a>>(body: &'a str) -> Result<T, String> {
    serde_json::from_str(body).map_err(|e| e.to_string())
}
