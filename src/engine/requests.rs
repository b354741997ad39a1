//! The request table: every request the engine issues gets an id and is remembered until its
//! answer (or network error) arrives, which is then routed to what sent it — an account (with
//! the request's purpose and the time it left) or the service-config fetch. Answers to unknown
//! ids are counted and dropped.

use std::collections::BTreeMap;

use super::Engine;
use crate::account::Purpose;
use crate::apple::outcome::HttpAnswer;
use crate::base::time::Millis;
use crate::contract::output::{Method, Output, Request};
use crate::effects::Env;

/// What an in-flight request is for.
#[derive(Debug, Clone)]
pub(super) enum InFlight {
    ServiceConfig { sent_at: Millis },
    Account { account_id: String, purpose: Purpose, sent_at: Millis },
}

impl Engine {
    /// Queues a request for the host, remembering what it is for.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn issue(
        &mut self,
        account_id: Option<String>,
        in_flight: InFlight,
        purpose: &'static str,
        method: Method,
        url: String,
        body: Option<String>,
        mut headers: BTreeMap<String, String>,
    ) {
        let id = self.next_request_id;
        self.next_request_id += 1;
        self.in_flight.insert(id, in_flight);
        self.stats.requests_issued += 1;
        headers.insert("accept".to_owned(), "application/json".to_owned());
        self.outputs.push_back(Output::Request(Request { id, account_id, purpose, method, url, headers, body }));
    }

    /// What the request `id` was for, if the engine knows it (counted either way).
    pub(super) fn take_in_flight(&mut self, id: u64) -> Option<InFlight> {
        let found = self.in_flight.remove(&id);
        match found {
            Some(_) => self.stats.responses_handled += 1,
            None => self.stats.unknown_responses += 1,
        }
        found
    }

    /// Answers to an account's requests still in flight will count as unknown.
    pub(super) fn forget_in_flight(&mut self, account_id: &str) {
        self.in_flight.retain(|_, f| !matches!(f, InFlight::Account { account_id: a, .. } if a == account_id));
    }

    /// Hands an answer (or the network error instead) to what sent the request.
    pub(super) fn dispatch_answer(&mut self, request: InFlight, answer: Result<HttpAnswer<'_>, &str>) {
        let now = self.clock.now();
        match request {
            InFlight::ServiceConfig { sent_at } => self.service_config_answered(answer, sent_at),
            InFlight::Account { account_id, purpose, sent_at } => {
                let Some(account) = self.accounts.get_mut(&account_id) else { return };
                let env = Env::new(now, &self.config, &self.service, self.notify_users);
                let mut fx = self.effects.account(&account_id);
                match answer {
                    Ok(answer) => account.handle_response(purpose, sent_at, answer, &env, &mut fx, &mut self.rng),
                    Err(message) => account.handle_network_error(purpose, sent_at, message, &env, &mut fx, &mut self.rng),
                }
            }
        }
    }
}
