//! The account's credential: its sToken, why the token can't be used (a stored, terminal state
//! until it is replaced), and the expiry warnings given.

use crate::apple::token::SToken;
use crate::base::time::{format_utc, Millis, DAY, MINUTE};

/// Expiry warnings, in days before `expDate`.
pub const EXPIRY_WARNING_DAYS: [u32; 4] = [30, 15, 7, 1];

/// How far apart two readings of the clock past the token's expiry must be before the account stops.
const EXPIRY_CONFIRM_AFTER: Millis = MINUTE;

/// What the clock says about the token.
pub enum Check {
    /// Expired (confirmed by two readings): the account stops, with this reason.
    Expired(String),
    /// A warning threshold (days before expiry) was crossed: `tokenExpiring`.
    Warn(u32),
}

#[derive(Debug, Clone)]
pub struct Credential {
    pub token: SToken,
    /// Why the token can't be used; `Some` stops all requests until it is replaced (durable).
    pub problem: Option<String>,
    /// The last expiry warning given, in days (durable).
    pub warned_threshold: Option<u32>,
    /// When the engine's clock first read the token's expiry as passed: the token stops only when a
    /// second reading, at least [`EXPIRY_CONFIRM_AFTER`] later, agrees (one glitched `now` is not enough).
    expiry_seen_at: Option<Millis>,
    /// When the token was last replaced: Apple's word on a request sent before (with the old token)
    /// says nothing about this one. Not stored: requests in flight do not survive a restart.
    replaced_at: Option<Millis>,
}

impl Credential {
    /// The credential of a new or restored account.
    pub fn new(token: SToken, problem: Option<String>, warned_threshold: Option<u32>) -> Self {
        Self { token, problem, warned_threshold, expiry_seen_at: None, replaced_at: None }
    }

    /// A new token (the way out of *token invalid*) at `now`: usable until shown otherwise, warned of nothing.
    pub fn replace(&mut self, token: SToken, now: Millis) {
        self.token = token;
        self.replaced_at = Some(now);
        self.problem = None;
        self.warned_threshold = None;
        self.expiry_seen_at = None;
    }

    /// Whether a request sent at `sent_at` may have carried a token replaced since (sent in the
    /// millisecond of the replacement counts: it may have gone just before).
    pub fn sent_with_older_token(&self, sent_at: Millis) -> bool {
        self.replaced_at.is_some_and(|at| sent_at <= at)
    }

    /// Reads the clock against the token's expiry. Call on every scheduling pass.
    pub fn check(&mut self, now: Millis) -> Option<Check> {
        if self.problem.is_some() {
            return None;
        }
        let expires_at = self.token.expires_at;
        if now >= expires_at {
            // A terminal, stored state: not on the word of a single reading of the clock.
            match self.expiry_seen_at {
                None => self.expiry_seen_at = Some(now),
                Some(seen) if now >= seen + EXPIRY_CONFIRM_AFTER => {
                    return Some(Check::Expired(format!("The token expired on {}. Upload a new token.", format_utc(expires_at))));
                }
                Some(_) => {}
            }
            return None;
        }
        self.expiry_seen_at = None;
        let crossed = crossed_threshold(expires_at - now);
        let days = crossed.filter(|&d| self.warned_threshold.is_none_or(|w| d < w))?;
        self.warned_threshold = Some(days);
        Some(Check::Warn(days))
    }

    /// When the clock must be read next for the token's expiry.
    pub fn next_check(&self) -> Millis {
        self.expiry_seen_at.map_or(self.token.expires_at, |seen| seen + EXPIRY_CONFIRM_AFTER)
    }

    /// When the next expiry warning falls due, if one is left.
    pub fn next_warning(&self) -> Option<Millis> {
        EXPIRY_WARNING_DAYS
            .iter()
            .filter(|&&days| self.warned_threshold.is_none_or(|w| days < w))
            .map(|&days| self.token.expires_at.saturating_sub(u64::from(days) * DAY))
            .min()
    }

    /// The clock was set back to `now` after a glitch: warnings given for a day the clock had not
    /// really reached are given again when it does. Returns whether the stored warning changed.
    pub fn clock_rewound(&mut self, now: Millis) -> bool {
        self.expiry_seen_at = None;
        self.replaced_at = self.replaced_at.map(|at| at.min(now));
        let crossed = crossed_threshold(self.token.expires_at.saturating_sub(now));
        if self.warned_threshold.is_some_and(|warned| crossed.is_none_or(|c| warned < c)) {
            self.warned_threshold = crossed;
            return true;
        }
        false
    }
}

/// The smallest warning threshold `remaining` time before expiry has crossed.
fn crossed_threshold(remaining: Millis) -> Option<u32> {
    EXPIRY_WARNING_DAYS.iter().copied().filter(|&days| remaining <= u64::from(days) * DAY).min()
}
