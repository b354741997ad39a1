//! Sending operations: which operation to submit or event to poll next, and what happens to an
//! operation when its request gets no usable answer, is retried, or Apple accepts it.

use crate::apple::limits::POLL_INTERVAL;
use crate::base::time::Millis;
use crate::effects::AccountEffects;
use crate::licenses::Licenses;
use crate::licenses::operations::{Operation, OperationState};
use crate::vocab::OperationKind;

impl Licenses {
    /// An operation to submit now, marked as sent at `now`. Call when the account may send and
    /// manages its licenses. An association's record is written again (with the time) before the
    /// request leaves: after a crash it may have reached Apple.
    pub fn next_submission(&mut self, now: Millis, fx: &mut AccountEffects<'_>) -> Option<&Operation> {
        let id = self.ops.first_queued()?;
        let kind = self.ops.update(id, |op| {
            op.state = OperationState::Submitting { sent_at: now };
            op.kind
        })?;
        if kind == OperationKind::Associate {
            fx.changes().operations.insert(id);
        }
        self.ops.get(id)
    }

    /// An event to poll now, marked as being polled. Call when [`Licenses::next_poll_at`] has come.
    pub fn next_poll(&mut self, now: Millis) -> Option<(u64, String)> {
        let id = self.ops.poll_due(now)?;
        self.ops.update(id, |op| match &mut op.state {
            OperationState::Pending { event_id, polling, .. } => {
                *polling = true;
                Some((id, event_id.clone()))
            }
            _ => None,
        })?
    }

    /// The next time an event is due for polling.
    pub fn next_poll_at(&self) -> Option<Millis> {
        self.ops.next_poll_at()
    }

    /// Whether an operation was sent to Apple and is not finished.
    pub fn has_operations_at_apple(&self) -> bool {
        self.ops.any_sent()
    }

    /// The earliest time a sync must start to settle unconfirmed associations.
    pub fn next_confirmation(&self) -> Option<Millis> {
        self.ops.next_confirmation()
    }

    /// Apple accepted a submission: its event is polled from now on.
    pub fn submitted(&mut self, op_id: u64, event_id: String, now: Millis, fx: &mut AccountEffects<'_>) {
        let pending = OperationState::Pending { event_id, submitted_at: now, next_poll_at: now + POLL_INTERVAL, polling: false };
        if self.ops.update(op_id, |op| op.state = pending).is_some() {
            fx.changes().operations.insert(op_id);
        }
    }

    /// A submission got no usable answer (network error, unreadable acceptance, abandoned):
    /// Apple may have acted on it. An association becomes unconfirmed until a sync starting
    /// `settle` after it was sent; releases and user creation are sent again (Apple counts
    /// nothing twice for those).
    pub fn unanswered(&mut self, op_id: u64, settle: Millis) {
        self.ops.update(op_id, |op| {
            let OperationState::Submitting { sent_at } = op.state else { return };
            op.state = if op.kind == OperationKind::Associate {
                OperationState::Unconfirmed { sent_at, confirm_after: sent_at + settle }
            } else {
                OperationState::Queued
            };
        });
    }

    /// A submission or poll failed in a way worth retrying (Apple answered with an error):
    /// try again when the account may send.
    pub fn retry(&mut self, op_id: u64, was_poll: bool) {
        self.ops.update(op_id, |op| match &mut op.state {
            OperationState::Pending { polling, .. } if was_poll => *polling = false,
            OperationState::Submitting { .. } => op.state = OperationState::Queued,
            _ => {}
        });
    }

    /// The account stopped sending (ownership lost, token invalid): answers to requests in flight
    /// will be ignored. Each submission in flight goes the way of [`Licenses::unanswered`].
    pub fn requests_abandoned(&mut self, settle: Millis) {
        self.checks.requests_abandoned();
        let submitting: Vec<u64> =
            self.ops.values().filter(|op| matches!(op.state, OperationState::Submitting { .. })).map(|op| op.id).collect();
        for op_id in submitting {
            self.unanswered(op_id, settle);
        }
        let polling: Vec<u64> =
            self.ops.values().filter(|op| matches!(op.state, OperationState::Pending { polling: true, .. })).map(|op| op.id).collect();
        for op_id in polling {
            self.ops.update(op_id, |op| {
                if let OperationState::Pending { polling, .. } = &mut op.state {
                    *polling = false;
                }
            });
        }
    }

    /// The clock was set back to `now` after a glitch: times recorded on the glitched clock become
    /// `now`, and deadlines come back within their intervals (a poll in 30 s, a settle in `settle`).
    pub fn clock_rewound(&mut self, now: Millis, settle: Millis, fx: &mut AccountEffects<'_>) {
        self.planner.clock_rewound(now);
        let ids: Vec<u64> = self.ops.values().map(|op| op.id).collect();
        for id in ids {
            let changed = self.ops.update(id, |op| {
                let before = op.state.clone();
                match &mut op.state {
                    OperationState::Queued => {}
                    OperationState::Submitting { sent_at } => *sent_at = (*sent_at).min(now),
                    OperationState::Pending { submitted_at, next_poll_at, .. } => {
                        *submitted_at = (*submitted_at).min(now);
                        *next_poll_at = (*next_poll_at).min(now + POLL_INTERVAL);
                    }
                    OperationState::Unconfirmed { sent_at, confirm_after } => {
                        *sent_at = (*sent_at).min(now);
                        *confirm_after = (*confirm_after).min(now + settle);
                    }
                }
                op.state != before
            });
            if changed == Some(true) {
                fx.changes().operations.insert(id);
            }
        }
    }
}
