//! "COMPLETE is not proof" (fleetdm/fleet#20449, #50909): a device reports that an install failed
//! because it found no license (`installFailed` with `reason: "licenseNotFound"`). Instead of
//! reclaiming, the pair is checked with Apple (a filtered `GET /assignments`): if Apple does not
//! show it, it is associated again; if Apple shows it, the host hears of the install error and the
//! license stays. A second report for the same pair within a day releases it.

use std::collections::{BTreeMap, BTreeSet};

use crate::base::time::{Millis, DAY};
use crate::contract::event::Event;
use crate::effects::AccountEffects;
use crate::licenses::Licenses;
use crate::mirror::Mirror;
use crate::vocab::AssignmentKey;

/// The `installFailed` reason that asks for a check with Apple.
pub const LICENSE_NOT_FOUND: &str = "licenseNotFound";

/// How long a report of a pair counts: a second one within it releases the pair.
const REPORT_WINDOW: Millis = DAY;

/// Pairs to check with Apple, and the reports of the last day.
#[derive(Debug, Clone, Default)]
pub struct Checks {
    /// When a device last reported each pair's license not found (within [`REPORT_WINDOW`]).
    reported: BTreeMap<AssignmentKey, Millis>,
    /// Pairs waiting to be checked.
    queued: BTreeSet<AssignmentKey>,
    /// Pairs whose check is at Apple.
    in_flight: BTreeSet<AssignmentKey>,
}

impl Checks {
    /// Whether a check waits to be sent.
    pub fn any_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Every check in flight goes back in line (the account stopped; answers will be ignored).
    pub fn requests_abandoned(&mut self) {
        self.queued.append(&mut self.in_flight);
    }
}

impl Licenses {
    /// A device reported `key`'s license not found at `now`. The first report checks the pair with
    /// Apple; a second one within a day releases it (as a failed install does) with `assignmentFailed`.
    pub fn license_not_found(&mut self, key: AssignmentKey, now: Millis, mirror: &Mirror, fx: &mut AccountEffects<'_>) {
        let checks = &mut self.checks;
        checks.reported.retain(|_, at| now < at.saturating_add(REPORT_WINDOW));
        if checks.reported.remove(&key).is_some() {
            checks.queued.remove(&key);
            let message = "The install failed again with licenseNotFound within a day; the license is released".to_owned();
            fx.event(Event::assignment_failed(fx.account_id(), mirror.pair(&key), None, message));
            self.hold(key, "the installation failed twice: license not found", fx);
            return;
        }
        checks.reported.insert(key, now);
        if !checks.in_flight.contains(&key) {
            checks.queued.insert(key);
        }
    }

    /// The next pair to check with Apple (marked in flight).
    pub fn next_check(&mut self) -> Option<AssignmentKey> {
        let key = self.checks.queued.pop_first()?;
        self.checks.in_flight.insert(key);
        Some(key)
    }

    /// Apple answered the check of `key`: `shown` when it lists the assignment. Shown, the license
    /// stays and the host hears of the install error; not shown, the pair leaves the mirror and
    /// the provenance, and planning associates it again (`licenseReady` follows Apple's confirmation).
    pub fn checked(&mut self, key: AssignmentKey, shown: bool, mirror: &mut Mirror, fx: &mut AccountEffects<'_>) {
        if !self.checks.in_flight.remove(&key) {
            return;
        }
        if shown {
            let message = "The install failed with licenseNotFound, but Apple shows the license assigned; the license is kept".to_owned();
            fx.event(Event::assignment_failed(fx.account_id(), mirror.pair(&key), None, message));
            return;
        }
        mirror.remove_assignment(&key, &mut fx.changes().mirror);
        self.ours.forget(&key, fx);
        self.planner.replan(key.target);
    }

    /// The check of `key` is to be sent again (a transient failure).
    pub fn check_again(&mut self, key: AssignmentKey) {
        if self.checks.in_flight.remove(&key) {
            self.checks.queued.insert(key);
        }
    }

    /// Apple refused the check of `key`: it is dropped (the pair stays as it is; a second report
    /// within the day still releases it).
    pub fn check_refused(&mut self, key: AssignmentKey) {
        self.checks.in_flight.remove(&key);
    }
}
