//! Exponential backoff with jitter ([`BackoffPolicy`], and the value type [`Backoff`] that counts
//! one requester's consecutive failures: an account, the service-config fetch), and the
//! per-account request rate limit.

use std::collections::VecDeque;

use crate::base::time::{Millis, SECOND};

/// Capped exponential backoff with "equal jitter": the n-th consecutive failure waits a
/// random time in `[d/2, d]` where `d = min(max, base · 2^(n-1))`. Jitter comes from the
/// engine's seeded generator, so a run is reproducible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    pub base: Millis,
    pub max: Millis,
}

impl BackoffPolicy {
    /// The delay before retrying after `failures` consecutive failures (`failures >= 1`).
    pub fn delay(&self, failures: u32, rng: &mut fastrand::Rng) -> Millis {
        let ceiling = self.ceiling(failures);
        let floor = ceiling / 2;
        rng.u64(floor..=ceiling)
    }

    /// The largest delay the n-th failure can get.
    pub fn ceiling(&self, failures: u32) -> Millis {
        let doublings = failures.saturating_sub(1).min(63);
        self.base.saturating_mul(1u64 << doublings).min(self.max)
    }
}

/// Consecutive failures of one requester, and when the last one escalated the delay. A pure
/// value: the time comes in as an argument, randomness from the caller's seeded generator.
///
/// Requests sent before the last escalation were already in flight during the same trouble:
/// their failures don't escalate again (parallel requests failing from one incident count once).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backoff {
    failures: u32,
    last_failure_at: Option<Millis>,
}

impl Backoff {
    /// A request sent at `sent_at` failed at `now`: the delay before trying again, or `None` when
    /// a failure of the same incident escalated already.
    pub fn failed(&mut self, sent_at: Millis, now: Millis, policy: &BackoffPolicy, rng: &mut fastrand::Rng) -> Option<Millis> {
        if self.last_failure_at.is_some_and(|last| sent_at < last) {
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        self.last_failure_at = Some(now);
        Some(policy.delay(self.failures, rng))
    }

    /// A request succeeded: the next failure waits the shortest delay again.
    pub fn succeeded(&mut self) {
        self.failures = 0;
        self.last_failure_at = None;
    }

    /// The consecutive failures counted.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Counts from zero again (a new token for another organization), keeping the incident.
    pub fn restart_count(&mut self) {
        self.failures = 0;
    }

    /// The clock was set back to `now` after a glitch: a failure recorded later happened now.
    pub fn clock_rewound(&mut self, now: Millis) {
        self.last_failure_at = self.last_failure_at.map(|at| at.min(now));
    }
}

/// Keeps an account under `maxRequestPerSecond`: at most `limit` requests in any sliding
/// window of one second plus a safety margin, over the send times.
///
/// Apple counts requests when they arrive, not when they were sent: a burst that is delayed on
/// the way and the next burst that is not would land in one of Apple's seconds. The margin
/// absorbs that jitter.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    window: Millis,
    sent: VecDeque<Millis>,
}

impl RateLimiter {
    pub fn new(margin: Millis) -> Self {
        Self { window: SECOND + margin, sent: VecDeque::new() }
    }

    /// The earliest time a request may be sent, `now` if one may go right away.
    pub fn next_free(&self, now: Millis, limit: u32) -> Millis {
        let in_window = self.sent.len() - self.sent.partition_point(|&at| at + self.window <= now);
        let limit = limit.max(1) as usize;
        if in_window < limit {
            now
        } else {
            self.sent[self.sent.len() - limit] + self.window
        }
    }

    /// Forgets every send recorded.
    pub fn clear(&mut self) {
        self.sent.clear();
    }

    /// Forgets sends recorded after `now` (the clock was set back after a glitch).
    pub fn forget_after(&mut self, now: Millis) {
        self.sent.retain(|&at| at <= now);
    }

    /// Records a request sent at `now`. Call only when [`RateLimiter::next_free`] returned `now`.
    pub fn record(&mut self, now: Millis) {
        while self.sent.front().is_some_and(|&at| at + self.window <= now) {
            self.sent.pop_front();
        }
        self.sent.push_back(now);
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn ceiling_doubles_until_the_cap() {
        let policy = BackoffPolicy { base: 1_000, max: 10_000 };
        let ceilings: Vec<_> = (1..=6).map(|n| policy.ceiling(n)).collect();
        assert_eq!(ceilings, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        assert_eq!(policy.ceiling(500), 10_000);
    }

    #[test]
    fn jittered_delay_stays_between_half_and_full_ceiling() {
        let policy = BackoffPolicy { base: 1_000, max: 300_000 };
        let mut rng = fastrand::Rng::with_seed(9);
        for n in 1..20 {
            let d = policy.delay(n, &mut rng);
            assert!(d >= policy.ceiling(n) / 2 && d <= policy.ceiling(n), "{n}: {d}");
        }
    }

    #[test]
    fn failures_of_one_incident_escalate_once_and_success_starts_over() {
        let policy = BackoffPolicy { base: 1_000, max: 60_000 };
        let mut rng = fastrand::Rng::with_seed(1);
        let mut backoff = Backoff::default();
        assert!(backoff.failed(0, 100, &policy, &mut rng).is_some());
        assert_eq!(backoff.failed(50, 120, &policy, &mut rng), None, "sent before the escalation: the same incident");
        let delay = backoff.failed(2_000, 2_100, &policy, &mut rng).unwrap();
        assert_eq!(backoff.failures(), 2);
        assert!((1_000..=2_000).contains(&delay), "{delay}");
        backoff.succeeded();
        assert_eq!(backoff, Backoff::default());
    }

    #[test]
    fn rate_limiter_allows_limit_per_sliding_second_plus_margin() {
        let mut limiter = RateLimiter::new(0);
        assert_eq!(limiter.next_free(0, 3), 0);
        for _ in 0..3 {
            assert_eq!(limiter.next_free(100, 3), 100);
            limiter.record(100);
        }
        assert_eq!(limiter.next_free(100, 3), 1_100);
        assert_eq!(limiter.next_free(1_100, 3), 1_100);

        let mut margined = RateLimiter::new(250);
        margined.record(0);
        assert_eq!(margined.next_free(1_000, 1), 1_250);
    }
}
