//! Coalescing: license work from inputs that arrive close together is planned, and sent, as if
//! it had arrived in one input.
//!
//! MDM servers report the world one event at a time (a device enrolls, a student joins a
//! group, a device retires). Planning after each such input would cost one Apple request per
//! event. Instead, the first change that creates license work opens a *window*; every change
//! that arrives while it is open joins it, and the account plans once when it closes:
//!
//! * at the latest `coalesceMs` after it opened (the longest any change waits for company),
//! * earlier, once no new work arrived for `coalesceQuietMs` (a lone change leaves promptly),
//! * at once when the waiting work already fills a request to Apple's limits.
//!
//! While the account may not send (Retry-After, backoff) or still has planned requests waiting
//! for the rate limiter, the window stays open and keeps collecting. Pairs already in a request
//! stay there; new ones go to the next plan. An association and a release of the same pair
//! inside one window cancel out, because only the final desired state is planned.

use crate::apple::Limits;
use crate::base::time::Millis;
use crate::contract::config::EngineConfig;

/// The window's settings, from [`crate::EngineConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoalescePolicy {
    /// The longest a change waits (`coalesceMs`; 0 = plan at once).
    pub max_wait: Millis,
    /// The window closes once no new work arrived for this long (`coalesceQuietMs`).
    pub quiet: Millis,
    /// Work items that fill one request (the smaller of Apple's per-request target limits).
    pub fills_request: usize,
}

impl CoalescePolicy {
    /// The window `config` describes, under Apple's per-request `limits`.
    pub fn new(config: &EngineConfig, limits: &Limits) -> Self {
        Self {
            max_wait: config.coalesce_ms,
            quiet: config.coalesce_quiet_ms,
            fills_request: limits.max_serial_numbers.min(limits.max_client_user_ids) as usize,
        }
    }
}

/// One open window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Window {
    opened_at: Millis,
    changed_at: Millis,
    /// The amount of waiting work last seen (it grows with every change that joins).
    work: usize,
}

/// The coalescing window of one account's license work.
#[derive(Debug, Clone, Default)]
pub struct Coalescer {
    window: Option<Window>,
}

impl Coalescer {
    /// License work is waiting at `now`, `work` items of it. Opens the window on the first call
    /// after [`Coalescer::close`]; a grown amount counts as a new change (the quiet time restarts).
    pub fn note_waiting(&mut self, now: Millis, work: usize) {
        match &mut self.window {
            None => self.window = Some(Window { opened_at: now, changed_at: now, work }),
            Some(window) if window.work != work => {
                window.work = work;
                window.changed_at = now;
            }
            Some(_) => {}
        }
    }

    /// Whether a window is open and saw `work` items last.
    pub fn saw(&self, work: usize) -> bool {
        self.window.is_some_and(|window| window.work == work)
    }

    /// When the open window closes (`None` if none is open); at once if its work fills a request.
    pub fn closes_at(&self, policy: &CoalescePolicy) -> Option<Millis> {
        let window = self.window?;
        if window.work >= policy.fills_request.max(1) {
            return Some(window.opened_at);
        }
        let quiet = policy.quiet.min(policy.max_wait);
        Some((window.opened_at + policy.max_wait).min(window.changed_at + quiet))
    }

    /// The clock was set back to `now` after a glitch: a window opened "later" opens now.
    pub fn rewound(&mut self, now: Millis) {
        if let Some(window) = &mut self.window {
            window.opened_at = window.opened_at.min(now);
            window.changed_at = window.changed_at.min(now);
        }
    }

    /// The waiting work was planned: the next change opens a new window.
    pub fn close(&mut self) {
        self.window = None;
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    const POLICY: CoalescePolicy = CoalescePolicy { max_wait: 5_000, quiet: 1_000, fills_request: 1_000 };

    #[test]
    fn a_lone_change_waits_the_quiet_time() {
        let mut c = Coalescer::default();
        assert_eq!(c.closes_at(&POLICY), None);
        c.note_waiting(100, 1);
        assert_eq!(c.closes_at(&POLICY), Some(1_100));
        c.note_waiting(900, 1); // nothing new
        assert_eq!(c.closes_at(&POLICY), Some(1_100));
    }

    #[test]
    fn a_steady_trickle_waits_at_most_the_longest_wait() {
        let mut c = Coalescer::default();
        for i in 0..400 {
            c.note_waiting(i * 20, i as usize + 1);
        }
        assert_eq!(c.closes_at(&POLICY), Some(5_000), "opened at 0, never quiet");
    }

    #[test]
    fn work_that_fills_a_request_goes_at_once() {
        let mut c = Coalescer::default();
        c.note_waiting(10, 3);
        c.note_waiting(20, 1_000);
        assert_eq!(c.closes_at(&POLICY), Some(10));
    }

    #[test]
    fn zero_sends_at_once_and_close_starts_a_new_window() {
        let now = CoalescePolicy { max_wait: 0, quiet: 1_000, fills_request: 1_000 };
        let mut c = Coalescer::default();
        c.note_waiting(50, 1);
        assert_eq!(c.closes_at(&now), Some(50));
        c.close();
        assert_eq!(c.closes_at(&now), None);
        c.note_waiting(70, 1);
        assert_eq!(c.closes_at(&POLICY), Some(1_070));
    }
}
