//! Simulated-time scenario harness: the engine, a fake Apple, a store, and a clock that
//! jumps straight to the next thing that happens. No sleeps.
#![allow(dead_code)] // each test file uses a different part of the harness

pub mod fake_apple;
pub mod scenario;

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
    /// The engine never got an answer to this request (it got a network error, or it was
    /// restarted first). `status` is Apple's answer, 0 if the request never reached Apple.
    Lost { at: u64, id: u64, status: u16 },
    /// A record written (`put`) or deleted, when `Harness::trace_store` is on.
    Stored { at: u64, key: String, put: bool },
}

/// The length of a value's JSON text, without building the text.
fn json_len(value: &serde_json::Value) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0 += bytes.len();
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    serde_json::to_writer(&mut count, value).expect("a JSON value always serializes");
    count.0
}

/// The notification bearer the harness configures.
pub const NOTIFICATION_TOKEN: &str = "notification-secret-0123456789";

pub struct Harness {
    pub engine: Engine,
    /// The configuration the engine was built with (and is restored with).
    pub config: EngineConfig,
    pub apple: FakeApple,
    pub now: u64,
    pub latency: u64,
    /// Each request's latency is `latency` plus up to this much more (answers overtake each other).
    pub latency_jitter: u64,
    /// Draws the latency jitter.
    pub rng: fastrand::Rng,
    pub trace: Vec<Trace>,
    pub store: BTreeMap<String, serde_json::Value>,
    /// Also trace every record written or deleted (`Trace::Stored`).
    pub trace_store: bool,
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
            engine: Engine::new(config.clone(), START).unwrap(),
            config,
            apple: FakeApple::new(),
            now: START,
            latency: 0,
            latency_jitter: 0,
            rng: fastrand::Rng::with_seed(1),
            trace: Vec::new(),
            store: BTreeMap::new(),
            trace_store: false,
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
        h.config = h.engine_config();
        h.engine = Engine::new(h.config.clone(), START).unwrap();
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
                    let jitter = if self.latency_jitter > 0 { self.rng.u64(..=self.latency_jitter) } else { 0 };
                    self.in_flight.push((self.now + self.latency + jitter, request));
                }
                Output::Event { event } => self.trace.push(Trace::Emitted { at: self.now, event }),
                Output::Persist { ops } => self.store_ops(ops),
                Output::Timeout { at } => return at,
            }
        }
    }

    /// The host's clock reads `ahead` in the future once: the engine is called at that time, and every
    /// request it sends then fails (the host is offline, say: Apple never sees them). Its records are stored.
    pub fn clock_glitch(&mut self, ahead: u64) {
        let at = self.now + ahead;
        self.engine.handle_input(Input::Timeout, at).unwrap();
        loop {
            match self.engine.poll_output(at) {
                Output::Request(request) => {
                    let input = Input::NetworkError { id: request.id, message: "offline".into() };
                    self.engine.handle_input(input, at).unwrap();
                }
                Output::Event { event } => self.trace.push(Trace::Emitted { at: self.now, event }),
                Output::Persist { ops } => self.store_ops(ops),
                Output::Timeout { .. } => return,
            }
        }
    }

    fn store_ops(&mut self, ops: Vec<PersistOp>) {
        self.persist_outputs += 1;
        for op in ops {
            match op {
                PersistOp::Put { key, value } => {
                    if self.trace_store {
                        self.trace.push(Trace::Stored { at: self.now, key: key.clone(), put: true });
                    }
                    let value = serde_json::to_value(value).unwrap();
                    self.persisted_bytes += key.len() + json_len(&value);
                    self.store.insert(key, value);
                }
                PersistOp::Delete { key } => {
                    if self.trace_store {
                        self.trace.push(Trace::Stored { at: self.now, key: key.clone(), put: false });
                    }
                    self.persisted_bytes += key.len();
                    self.store.remove(&key);
                }
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
            if answer.lost {
                self.trace.push(Trace::Lost { at: self.now, id: request.id, status: answer.status });
                let input = Input::NetworkError { id: request.id, message: "connection reset (simulated)".into() };
                self.engine.handle_input(input, self.now).unwrap();
                continue;
            }
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
            for (bearer, body) in self.apple.take_notifications(self.now) {
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
        self.run(end, false);
    }

    /// Runs the world like [`Harness::run_until`], but stops as soon as a request is in flight
    /// (sent, not answered yet); returns whether one is.
    pub fn run_until_request_in_flight(&mut self, end: u64) -> bool {
        self.run(end, true)
    }

    fn run(&mut self, end: u64, stop_in_flight: bool) -> bool {
        loop {
            let timeout = self.drain();
            if stop_in_flight && !self.in_flight.is_empty() {
                return true;
            }
            if self.deliver_due() {
                continue;
            }
            let next_answer = self.in_flight.iter().map(|(at, _)| *at).min().unwrap_or(u64::MAX);
            let next_event = if self.notifications { self.apple.next_activity_at() } else { u64::MAX };
            let next = timeout.min(next_answer).min(next_event);
            if next > end {
                self.now = self.now.max(end);
                self.drain();
                return !self.in_flight.is_empty();
            }
            self.now = next.max(self.now);
            self.engine.handle_input(Input::Timeout, self.now).unwrap();
        }
    }

    /// Stops the engine as a crash would and starts a new one from the store with
    /// [`Engine::restore`]. Its requests in flight are lost: `reached_apple` decides, for each,
    /// whether Apple handled it anyway.
    pub fn restart(&mut self, mut reached_apple: impl FnMut(&Request) -> bool) -> Result<(), vpp_license_engine::EngineError> {
        for (_, request) in std::mem::take(&mut self.in_flight) {
            let status = if reached_apple(&request) { self.apple.answer(&request, self.now).status } else { 0 };
            self.trace.push(Trace::Lost { at: self.now, id: request.id, status });
        }
        self.engine = Engine::restore(self.config.clone(), self.stored_records(), self.now)?;
        Ok(())
    }

    /// Everything that happened since the last call (the trace starts over).
    pub fn take_trace(&mut self) -> Vec<Trace> {
        std::mem::take(&mut self.trace)
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
