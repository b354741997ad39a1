//! The service-config fetch: `GET /service/config` at start and every
//! `serviceConfigIntervalMs`; its URLs and limits replace the defaults. Failures back off with
//! the same [`Backoff`] value type the accounts use; `Retry-After` is honoured.

use std::collections::BTreeMap;

use super::requests::InFlight;
use super::Engine;
use crate::apple::outcome::{classify, HttpAnswer, Outcome};
use crate::apple::service_config::ServiceConfigResponse;
use crate::base::backoff::Backoff;
use crate::base::time::{format_utc, Millis};
use crate::contract::config::EngineConfig;
use crate::contract::event::Event;
use crate::contract::output::Method;

/// When the service config is fetched next, and the failures since the last success.
#[derive(Debug)]
pub(super) struct ServiceFetch {
    next_at: Millis,
    in_flight: bool,
    backoff: Backoff,
}

impl ServiceFetch {
    /// Fetched at once.
    pub(super) fn new(now: Millis) -> Self {
        Self { next_at: now, in_flight: false, backoff: Backoff::default() }
    }

    /// When the engine must wake up for the fetch: when it is due, or, while one is in flight,
    /// an interval from `now`.
    pub(super) fn wakeup(&self, now: Millis, config: &EngineConfig) -> Millis {
        if self.in_flight { now + config.service_config_interval_ms } else { self.next_at }
    }

    /// The clock was set back to `now` after a glitch.
    pub(super) fn clock_rewound(&mut self, now: Millis, config: &EngineConfig) {
        self.next_at = self.next_at.min(now + config.service_config_interval_ms);
        self.backoff.clock_rewound(now);
    }
}

impl Engine {
    /// Issues the fetch when it is due and none is in flight.
    pub(super) fn fetch_service_config_if_due(&mut self, now: Millis) {
        if now >= self.service_fetch.next_at && !self.service_fetch.in_flight {
            self.service_fetch.in_flight = true;
            let url = self.config.service_config_url.clone();
            self.issue(None, InFlight::ServiceConfig { sent_at: now }, "serviceConfig", Method::Get, url, None, BTreeMap::new());
        }
    }

    /// The answer to the fetch sent at `sent_at` (or its network error).
    pub(super) fn service_config_answered(&mut self, answer: Result<HttpAnswer<'_>, &str>, sent_at: Millis) {
        let now = self.clock.now();
        self.service_fetch.in_flight = false;
        let outcome = match answer {
            Ok(answer) => match classify(answer.status, answer.headers, answer.body, now).outcome {
                Outcome::Success => match serde_json::from_str::<ServiceConfigResponse>(answer.body) {
                    Ok(response) => {
                        let before = self.service.clone();
                        self.service.apply(&response);
                        if self.service != before {
                            // Every account's deadlines depend on the limits.
                            self.accounts.touch_all();
                            self.effects.event(Event::ServiceConfigUpdated { limits: self.service.limits.raw.clone() });
                        }
                        self.service_fetch.backoff.succeeded();
                        self.service_fetch.next_at = now + self.config.service_config_interval_ms;
                        return;
                    }
                    Err(e) => Outcome::Transient { reason: format!("unreadable service config: {e}") },
                },
                other => other,
            },
            Err(message) => Outcome::Transient { reason: format!("network error: {message}") },
        };
        let (until, reason) = match outcome {
            Outcome::RetryAfter { until, reason } => (until, reason),
            Outcome::Transient { reason } | Outcome::TokenInvalid { reason, .. } | Outcome::Rejected { reason, .. } => {
                let policy = self.config.backoff();
                let backoff = &mut self.service_fetch.backoff;
                // One fetch is in flight at a time, sent after the last failure: every failure escalates.
                let delay = backoff.failed(sent_at, now, &policy, &mut self.rng).unwrap_or_else(|| policy.ceiling(backoff.failures()));
                (now + delay, reason)
            }
            Outcome::Success => unreachable!("handled above"),
        };
        self.service_fetch.next_at = until;
        self.effects.event(Event::Backoff { account_id: None, until, reason: format!("Service config retried at {}: {reason}", format_utc(until)) });
    }
}
