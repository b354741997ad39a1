//! Whether and when an account may send: Apple's `Retry-After` deadline (stored, so a restart
//! honours it), the exponential backoff after failures, and the rate limits (all requests, and
//! the share `/status` polls may take while license requests wait).

use crate::base::backoff::{Backoff, BackoffPolicy, RateLimiter};
use crate::base::time::{format_utc, Millis, HOUR};

/// A Retry-After deadline further than this from `now` after the clock was set back was computed on the
/// glitched clock (Apple asks for seconds or minutes): it is brought back to this.
const RETRY_AFTER_AFTER_REWIND: Millis = HOUR;

#[derive(Debug, Clone)]
pub struct Gate {
    /// A `Retry-After` deadline still in force (durable).
    pub retry_after_until: Millis,
    backoff: Backoff,
    /// No request before this, after failures.
    backoff_until: Millis,
    /// Why the account waits (status hover text and `backoff` events).
    reason: String,
    rate: RateLimiter,
    /// `/status` polls alone: while license requests wait, polls take at most a third of the rate.
    poll_rate: RateLimiter,
}

impl Gate {
    /// A gate with no backoff and an empty rate window; `retry_after_until` as stored.
    pub fn new(retry_after_until: Millis, rate_limit_margin: Millis) -> Self {
        Self {
            retry_after_until,
            backoff: Backoff::default(),
            backoff_until: 0,
            reason: String::new(),
            rate: RateLimiter::new(rate_limit_margin),
            poll_rate: RateLimiter::new(rate_limit_margin),
        }
    }

    /// No request before this.
    pub fn blocked_until(&self) -> Millis {
        self.retry_after_until.max(self.backoff_until)
    }

    /// Why the account waits.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// Whether a request may go at `now` under `rate_limit` requests per second.
    pub fn may_send(&self, now: Millis, rate_limit: u32) -> bool {
        self.blocked_until() <= now && self.rate.next_free(now, rate_limit) <= now
    }

    /// The earliest time the rate limit lets a request go.
    pub fn next_free(&self, now: Millis, rate_limit: u32) -> Millis {
        self.rate.next_free(now, rate_limit)
    }

    /// The earliest time a `/status` poll may go while license requests wait.
    pub fn next_poll_free(&self, now: Millis, rate_limit: u32) -> Millis {
        self.poll_rate.next_free(now, (rate_limit / 3).max(1))
    }

    /// A request leaves at `now`.
    pub fn sent(&mut self, now: Millis) {
        self.rate.record(now);
    }

    /// A `/status` poll leaves at `now` (also counted by [`Gate::sent`]).
    pub fn polled(&mut self, now: Millis) {
        self.poll_rate.record(now);
    }

    /// Restored at `now`: the previous instance may have sent `count` requests in the last second,
    /// which Apple still counts.
    pub fn fill_rate_window(&mut self, now: Millis, count: u32) {
        for _ in 0..count {
            self.rate.record(now);
        }
    }

    /// No request of the previous holder counts any more (see [`crate::account::Account::adopted`]).
    pub fn clear_rate_window(&mut self) {
        self.rate.clear();
        self.poll_rate.clear();
    }

    /// Apple's `Retry-After` deadline holds whatever the account's state; returns whether it moved
    /// (the account record is written again).
    pub fn retry_after(&mut self, until: Millis) -> bool {
        let later = until > self.retry_after_until;
        if later {
            self.retry_after_until = until;
        }
        later
    }

    /// Apple asked to wait until `until`.
    pub fn asked_to_wait(&mut self, until: Millis, reason: &str) {
        self.reason = format!("Apple asked to wait until {} ({reason})", format_utc(until));
    }

    /// A request sent at `sent_at` failed at `now` for `reason`: backs off, unless a failure of
    /// the same incident did already. Returns whether it escalated (a `backoff` event is due).
    pub fn failed(&mut self, sent_at: Millis, now: Millis, reason: &str, policy: &BackoffPolicy, rng: &mut fastrand::Rng) -> bool {
        let Some(delay) = self.backoff.failed(sent_at, now, policy, rng) else { return false };
        self.backoff_until = self.backoff_until.max(now + delay);
        self.reason = format!(
            "Retrying after {} consecutive failures, at {}: {reason}",
            self.backoff.failures(),
            format_utc(self.backoff_until)
        );
        true
    }

    /// A request succeeded.
    pub fn succeeded(&mut self) {
        self.backoff.succeeded();
    }

    /// The account starts over with another organization's token: no deadline of the old one holds.
    pub fn start_over(&mut self) {
        self.retry_after_until = 0;
        self.backoff_until = 0;
        self.backoff.restart_count();
    }

    /// The clock was set back to `now` after a glitch; returns whether the stored deadline moved.
    pub fn clock_rewound(&mut self, now: Millis, backoff_max: Millis) -> bool {
        self.backoff_until = self.backoff_until.min(now + backoff_max);
        self.backoff.clock_rewound(now);
        self.rate.forget_after(now);
        self.poll_rate.forget_after(now);
        if self.retry_after_until > now + RETRY_AFTER_AFTER_REWIND {
            self.retry_after_until = now + RETRY_AFTER_AFTER_REWIND;
            return true;
        }
        false
    }
}
