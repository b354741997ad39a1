//! Apple's notifications: checked, de-duplicated and handed to the account they name.

use std::collections::{HashSet, VecDeque};

use super::Engine;
use crate::apple::notification::{bearer_matches, parse};
use crate::base::time::Millis;
use crate::effects::Env;

/// HTTP statuses answered to Apple's notification POSTs.
const NOTIFICATION_ACCEPTED: u16 = 200;
const NOTIFICATION_MALFORMED: u16 = 400;
const NOTIFICATION_UNAUTHORIZED: u16 = 401;
const NOTIFICATION_UNKNOWN_ACCOUNT: u16 = 404;

/// How many notification ids are remembered for de-duplication (Apple delivers "up to three times").
const DEDUPE_CAPACITY: usize = 10_000;

impl Engine {
    /// Handles a notification Apple POSTed for `account_id` and returns the HTTP status to
    /// answer. Call from the notification endpoint with the request's `Authorization` header and
    /// body; then drain [`Engine::poll_output`]. A forged, malformed or duplicated notification
    /// changes nothing.
    pub fn handle_notification(&mut self, account_id: &str, authorization: Option<&str>, body: &str, now: Millis) -> u16 {
        let now = self.advance_clock(now);
        let Some(config) = &self.config.notifications else { return NOTIFICATION_UNKNOWN_ACCOUNT };
        if !bearer_matches(authorization, &config.auth_token) {
            return NOTIFICATION_UNAUTHORIZED;
        }
        let Some(account) = self.accounts.get(account_id) else { return NOTIFICATION_UNKNOWN_ACCOUNT };
        let Ok(parsed) = parse(body) else { return NOTIFICATION_MALFORMED };
        let (location, _, _) = account.location();
        if location.is_some_and(|ours| parsed.u_id.as_deref().is_some_and(|theirs| theirs != ours)) {
            return NOTIFICATION_MALFORMED; // another location's notification
        }
        if self.notifications_seen.seen(&parsed.notification_id) {
            return NOTIFICATION_ACCEPTED;
        }
        self.notifications_seen.remember(parsed.notification_id);
        let account = self.accounts.get_mut(account_id).expect("checked above");
        if !account.is_stopped() {
            let env = Env::new(now, &self.config, &self.service, self.notify_users);
            account.notification(parsed.notification, &env, &mut self.effects.account(account_id));
        }
        self.emit_events();
        self.settle(false);
        NOTIFICATION_ACCEPTED
    }
}

/// Remembers the last [`DEDUPE_CAPACITY`] notification ids.
#[derive(Debug, Default)]
pub struct Deduper {
    seen: HashSet<String>,
    order: VecDeque<String>,
}

impl Deduper {
    pub fn seen(&self, id: &str) -> bool {
        self.seen.contains(id)
    }

    pub fn remember(&mut self, id: String) {
        if self.seen.insert(id.clone()) {
            self.order.push_back(id);
            if self.order.len() > DEDUPE_CAPACITY {
                if let Some(oldest) = self.order.pop_front() {
                    self.seen.remove(&oldest);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn deduper_forgets_the_oldest_beyond_capacity() {
        let mut d = Deduper::default();
        for i in 0..=DEDUPE_CAPACITY {
            d.remember(i.to_string());
        }
        assert!(!d.seen("0"));
        assert!(d.seen("1") && d.seen(&DEDUPE_CAPACITY.to_string()));
    }
}
