//! Simulated-time scenario harness: the engine, a fake Apple, a store, and a clock that
//! jumps straight to the next thing that happens. No sleeps.
#![allow(dead_code)] // each test file uses a different part of the harness

pub mod fake_apple;

use std::collections::BTreeMap;

use fake_apple::{make_token, FakeApple, Org, SERVICE_CONFIG_URL};
use vpp_license_engine::{
    AccountStatus, AccountView, Engine, EngineConfig, Event, Input, MdmInfo, Output, PersistOp, Request, StoredRecord,
};

/// 2026-11-23T00:00:00Z
pub const START: u64 = 1_795_392_000_000;
pub const DAY: u64 = 86_400_000;

/// The adam id of the fake Apple's `i`-th generated app.
pub fn app(i: usize) -> String {
    format!("{}", 400_000_000 + i)
}

pub fn our_mdm() -> MdmInfo {
    MdmInfo { id: "our-mdm-id".into(), name: "Our MDM".into(), metadata: "1.0".into() }
}

pub fn config() -> EngineConfig {
    EngineConfig { service_config_url: SERVICE_CONFIG_URL.to_owned(), seed: 7, ..EngineConfig::new(our_mdm()) }
}

/// Something that happened, in order.
#[derive(Debug, Clone)]
pub enum Trace {
    Sent { at: u64, request: Request },
    Answered { at: u64, id: u64, status: u16, headers: BTreeMap<String, String>, body: String },
    Emitted { at: u64, event: Event },
    /// A notification Apple delivered, and the status the engine answered.
    Notified { at: u64, body: String, status: u16 },
}

/// The notification bearer the harness configures.
pub const NOTIFICATION_TOKEN: &str = "notification-secret-0123456789";

pub struct Harness {
    pub engine: Engine,
    pub apple: FakeApple,
    pub now: u64,
    pub latency: u64,
    pub trace: Vec<Trace>,
    pub store: BTreeMap<String, serde_json::Value>,
    /// Bytes written to the store (keys and JSON values of puts, keys of deletes), and in how many outputs.
    pub persisted_bytes: usize,
    pub persist_outputs: usize,
    /// Deliver Apple's notifications to the engine (else only `/status` polling confirms).
    pub notifications: bool,
    /// HTTP statuses the engine answered to notifications.
    pub notification_answers: Vec<u16>,
    accounts_by_token: BTreeMap<String, String>,
    in_flight: Vec<(u64, Request)>,
}

impl Harness {
    pub fn new() -> Self {
        Self::with_config(config())
    }

    pub fn with_config(config: EngineConfig) -> Self {
        Self {
            engine: Engine::new(config, START).unwrap(),
            apple: FakeApple::new(),
            now: START,
            latency: 0,
            trace: Vec::new(),
            store: BTreeMap::new(),
            persisted_bytes: 0,
            persist_outputs: 0,
            notifications: false,
            notification_answers: Vec::new(),
            accounts_by_token: BTreeMap::new(),
            in_flight: Vec::new(),
        }
    }

    /// A harness whose engine subscribes to notifications and gets them delivered.
    pub fn with_notifications() -> Self {
        let mut h = Self::new();
        h.notifications = true;
        h.engine = Engine::new(h.engine_config(), START).unwrap();
        h
    }

    /// Registers a location at the fake Apple and returns its sToken text.
    pub fn org(&mut self, name: &str, org: Org) -> String {
        let token = make_token(name, &format!("secret-of-{name}"), START + 365 * DAY);
        self.apple.orgs.insert(token.clone(), org);
        token
    }

    /// Tells the harness which account a token belongs to (for notification delivery), when
    /// the account comes from a restored store instead of `add_account`.
    pub fn add_account_mapping(&mut self, id: &str, token: &str) {
        self.accounts_by_token.insert(token.to_owned(), id.to_owned());
    }

    /// The configuration the harness built its engine with.
    pub fn engine_config(&self) -> EngineConfig {
        let mut c = config();
        if self.notifications {
            c.notifications = Some(vpp_license_engine::NotificationConfig {
                url: "https://mdm.test/apple".into(),
                auth_token: vpp_license_engine::secret::Secret::new(NOTIFICATION_TOKEN.into()),
            });
        }
        c
    }

    pub fn add_account(&mut self, id: &str, token: &str) {
        self.accounts_by_token.insert(token.to_owned(), id.to_owned());
        self.input(Input::AddAccount { account_id: id.into(), name: format!("Account {id}"), token: token.into() }).unwrap();
    }

    pub fn input(&mut self, input: Input) -> Result<(), vpp_license_engine::EngineError> {
        self.engine.handle_input(input, self.now)
    }

    /// Drains outputs; returns the engine's next timeout.
    fn drain(&mut self) -> u64 {
        loop {
            match self.engine.poll_output(self.now) {
                Output::Request(request) => {
                    self.trace.push(Trace::Sent { at: self.now, request: request.clone() });
                    self.in_flight.push((self.now + self.latency, request));
                }
                Output::Event { event } => self.trace.push(Trace::Emitted { at: self.now, event }),
                Output::Persist { ops } => {
                    self.persist_outputs += 1;
                    for op in ops {
                        match op {
                            PersistOp::Put { key, value } => {
                                let value = serde_json::to_value(value).unwrap();
                                self.persisted_bytes += key.len() + value.to_string().len();
                                self.store.insert(key, value);
                            }
                            PersistOp::Delete { key } => {
                                self.persisted_bytes += key.len();
                                self.store.remove(&key);
                            }
                        }
                    }
                }
                Output::Timeout { at } => return at,
            }
        }
    }

    /// Answers every request due by now; returns whether any was answered.
    fn deliver_due(&mut self) -> bool {
        let due: Vec<(u64, Request)> = {
            let (due, later) = std::mem::take(&mut self.in_flight).into_iter().partition(|(at, _)| *at <= self.now);
            self.in_flight = later;
            due
        };
        for (_, request) in &due {
            let answer = self.apple.answer(request, self.now);
            self.trace.push(Trace::Answered {
                at: self.now,
                id: request.id,
                status: answer.status,
                headers: answer.headers.clone(),
                body: answer.body.clone(),
            });
            let input = Input::Response { id: request.id, status: answer.status, headers: answer.headers, body: answer.body };
            self.engine.handle_input(input, self.now).unwrap();
        }
        let mut delivered = !due.is_empty();
        if self.notifications {
            for (bearer, body) in self.apple.complete_due(self.now) {
                let account = self.accounts_by_token.get(&bearer).cloned().unwrap_or_default();
                let auth = format!("Bearer {NOTIFICATION_TOKEN}");
                let status = self.engine.handle_notification(&account, Some(&auth), &body, self.now);
                self.notification_answers.push(status);
                self.trace.push(Trace::Notified { at: self.now, body, status });
                delivered = true;
            }
        }
        delivered
    }

    /// Runs the world until `end` (simulated ms), jumping between events.
    pub fn run_until(&mut self, end: u64) {
        loop {
            let timeout = self.drain();
            if self.deliver_due() {
                continue;
            }
            let next_answer = self.in_flight.iter().map(|(at, _)| *at).min().unwrap_or(u64::MAX);
            let next_event = if self.notifications {
                self.apple.events.values().filter(|e| e.outcome.is_none()).map(|e| e.complete_at).min().unwrap_or(u64::MAX)
            } else {
                u64::MAX
            };
            let next = timeout.min(next_answer).min(next_event);
            if next > end {
                self.now = self.now.max(end);
                self.drain();
                return;
            }
            self.now = next.max(self.now);
            self.engine.handle_input(Input::Timeout, self.now).unwrap();
        }
    }

    pub fn run_for(&mut self, duration: u64) {
        self.run_until(self.now + duration);
    }

    // ---------------------------------------------------------------- queries

    pub fn requests(&self) -> Vec<(u64, &Request)> {
        self.trace
            .iter()
            .filter_map(|t| match t {
                Trace::Sent { at, request } => Some((*at, request)),
                _ => None,
            })
            .collect()
    }

    pub fn requests_for(&self, account_id: &str) -> Vec<(u64, &Request)> {
        self.requests().into_iter().filter(|(_, r)| r.account_id.as_deref() == Some(account_id)).collect()
    }

    pub fn events(&self) -> Vec<&Event> {
        self.trace
            .iter()
            .filter_map(|t| match t {
                Trace::Emitted { event, .. } => Some(event),
                _ => None,
            })
            .collect()
    }

    pub fn account(&self, id: &str) -> AccountView {
        self.engine.accounts().into_iter().find(|a| a.account_id == id).expect("account exists")
    }

    pub fn status(&self, id: &str) -> AccountStatus {
        self.account(id).status
    }

    pub fn stored_records(&self) -> Vec<StoredRecord> {
        self.store.iter().map(|(key, value)| StoredRecord { key: key.clone(), value: value.clone() }).collect()
    }

    /// The path (after `/mdm/v2/`) and query of a request.
    pub fn endpoint(request: &Request) -> String {
        request.url.rsplit("/mdm/v2/").next().unwrap_or("").to_owned()
    }
}
