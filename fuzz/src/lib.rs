//! What the fuzz targets share: a scripted world (the engine with one account against the tests'
//! fake Apple, in simulated time) and the text framing of fuzz inputs.
//!
//! Inputs are framed like an HTTP message so that seeds stay readable: a first line of words,
//! optional `Name: value` header lines, a blank line, then the body. Any bytes are a valid input:
//! a missing part takes its default.

use std::collections::BTreeMap;

use serde_json::json;
use vpp_license_engine::{
    AppPolicy, Engine, EngineConfig, Input, LicenseType, MdmInfo, NotificationConfig, Output, PersistOp, PricingParam,
    Request, StoredRecord,
};

#[path = "../../tests/support/fake_apple.rs"]
#[allow(dead_code, clippy::new_without_default)] // the scenario tests' fake, of which the targets use part
pub mod fake_apple;

use fake_apple::{make_token, FakeApple, Org, SERVICE_CONFIG_URL};

/// 2026-11-23T00:00:00Z, the scenario tests' start.
pub const START: u64 = 1_795_392_000_000;
pub const SECOND: u64 = 1_000;
pub const MINUTE: u64 = 60 * SECOND;
pub const HOUR: u64 = 60 * MINUTE;
pub const DAY: u64 = 24 * HOUR;
/// The bearer Apple presents with notifications in this world.
pub const NOTIFICATION_SECRET: &str = "fuzz-notification-secret-0123";
/// The one account of the world.
pub const ACCOUNT: &str = "a1";
/// Outputs one drain may produce before the engine counts as looping.
const MAX_OUTPUTS_PER_DRAIN: usize = 100_000;
/// Consecutive timeouts at or before `now` that did nothing before the engine counts as spinning.
const MAX_IDLE_WAKEUPS: usize = 1_000;
/// `Number.MAX_SAFE_INTEGER`: the JS binding cannot hand a larger number to the host.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Asserts that the JS binding can hand `output` to the host: every number in it is one that
/// JavaScript represents exactly (else `pollOutput` throws `ENCODE_FAILED` and the output is lost).
pub fn assert_reaches_javascript(output: &Output) {
    fn check(value: &serde_json::Value) {
        match value {
            serde_json::Value::Number(n) => {
                assert!(n.as_u64().is_none_or(|n| n <= MAX_SAFE_INTEGER), "a number JavaScript cannot represent: {n}");
            }
            serde_json::Value::Array(items) => items.iter().for_each(check),
            serde_json::Value::Object(fields) => fields.values().for_each(check),
            _ => {}
        }
    }
    check(&serde_json::to_value(output).expect("outputs serialize"));
}

/// A fuzz input split into its first line's words, its headers and its body.
#[derive(Debug, Clone, Default)]
pub struct Framed {
    pub words: Vec<String>,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl Framed {
    /// Splits `data` (lossily decoded as UTF-8) into the first line's words, the `Name: value` lines
    /// after it (up to a blank line, which is dropped, or a line of another shape), and the rest as body.
    pub fn parse(data: &[u8]) -> Self {
        let text = String::from_utf8_lossy(data);
        let mut lines = text.split_inclusive('\n');
        let words = lines.next().unwrap_or("").split_whitespace().map(str::to_owned).collect();
        let mut headers = BTreeMap::new();
        let mut body = String::new();
        for line in lines.by_ref() {
            let header = line.split_once(':').filter(|(name, _)| !name.is_empty() && !name.contains(char::is_whitespace));
            match header {
                _ if line.trim().is_empty() => break,
                Some((name, value)) => {
                    headers.insert(name.to_owned(), value.trim().to_owned());
                }
                None => {
                    body.push_str(line);
                    break;
                }
            }
        }
        body.extend(lines);
        Self { words, headers, body }
    }

    /// The `index`-th word, if present.
    pub fn word(&self, index: usize) -> Option<&str> {
        self.words.get(index).map(String::as_str)
    }
}

/// An answer the world gives instead of Apple's, to the `occurrence`-th request with `purpose`.
#[derive(Debug, Clone)]
pub struct Intercept {
    pub purpose: String,
    pub occurrence: usize,
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    seen: usize,
    pub fired: bool,
}

impl Intercept {
    pub fn new(purpose: &str, occurrence: usize, status: u16, headers: BTreeMap<String, String>, body: String) -> Self {
        Self { purpose: purpose.to_owned(), occurrence: occurrence.max(1), status, headers, body, seen: 0, fired: false }
    }

    fn take(&mut self, request: &Request) -> Option<Input> {
        if self.fired || request.purpose != self.purpose {
            return None;
        }
        self.seen += 1;
        if self.seen < self.occurrence {
            return None;
        }
        self.fired = true;
        Some(Input::Response { id: request.id, status: self.status, headers: self.headers.clone(), body: self.body.clone() })
    }
}

/// The engine, the fake Apple and a store, driven in simulated time. Every request is answered at
/// once, by the intercept if it matches, else by the fake Apple.
pub struct World {
    pub engine: Engine,
    pub apple: FakeApple,
    pub now: u64,
    pub token: String,
    pub store: BTreeMap<String, serde_json::Value>,
    pub intercept: Option<Intercept>,
    /// The purposes of every request sent, in order.
    pub sent: Vec<&'static str>,
}

/// The engine configuration of the world: the fake Apple's URL, notifications subscribed.
pub fn world_config() -> EngineConfig {
    let mdm = MdmInfo { id: "fuzz-mdm".into(), name: "Fuzz MDM".into(), metadata: "1.0".into() };
    EngineConfig {
        service_config_url: SERVICE_CONFIG_URL.to_owned(),
        seed: 11,
        notifications: Some(NotificationConfig {
            url: "https://mdm.test/apple".into(),
            auth_token: vpp_license_engine::secret::Secret::new(NOTIFICATION_SECRET.into()),
        }),
        ..EngineConfig::new(mdm)
    }
}

impl World {
    /// A world whose location has 3 apps (50 licenses each, 4 assigned by someone else), 3
    /// registered users and no owner yet; the account is not added yet.
    pub fn new() -> Self {
        let mut apple = FakeApple::new();
        let mut org = Org::generated("Fuzz School", 3, 4, 3);
        for asset in &mut org.assets {
            asset["totalCount"] = json!(50);
            asset["availableCount"] = json!(50 - asset["assignedCount"].as_i64().unwrap_or(0));
        }
        let token = make_token("Fuzz School", "fuzz-secret", START + 365 * DAY);
        apple.orgs.insert(token.clone(), org);
        Self {
            engine: Engine::new(world_config(), START).expect("valid config"),
            apple,
            now: START,
            token,
            store: BTreeMap::new(),
            intercept: None,
            sent: Vec::new(),
        }
    }

    /// Feeds an input at the current time. Commands may be refused (e.g. a refresh while the
    /// account is stopped): that is the engine's answer, not a failure of the world.
    pub fn input(&mut self, input: Input) -> bool {
        self.engine.handle_input(input, self.now).is_ok()
    }

    /// Drains outputs, answering requests at once; returns the next timeout.
    pub fn drain(&mut self) -> u64 {
        for _ in 0..MAX_OUTPUTS_PER_DRAIN {
            let output = self.engine.poll_output(self.now);
            assert_reaches_javascript(&output);
            match output {
                Output::Request(request) => {
                    self.sent.push(request.purpose);
                    let answer = match self.intercept.as_mut().and_then(|i| i.take(&request)) {
                        Some(answer) => answer,
                        None => {
                            let a = self.apple.answer(&request, self.now);
                            Input::Response { id: request.id, status: a.status, headers: a.headers, body: a.body }
                        }
                    };
                    self.engine.handle_input(answer, self.now).expect("an answer is never refused");
                }
                Output::Event { .. } => {}
                Output::Persist { ops } => apply(&mut self.store, ops),
                Output::Timeout { at } => return at,
            }
        }
        panic!("the engine produced {MAX_OUTPUTS_PER_DRAIN} outputs without a timeout");
    }

    /// Runs until `now + duration`, jumping from one engine timeout to the next.
    pub fn run_for(&mut self, duration: u64) {
        let end = self.now.saturating_add(duration);
        let mut idle = 0;
        loop {
            let at = self.drain();
            if at > end {
                self.now = end;
                self.drain();
                return;
            }
            if at <= self.now {
                idle += 1;
                assert!(idle < MAX_IDLE_WAKEUPS, "the engine keeps asking to be woken at {at} (now {})", self.now);
                self.now += 1;
            } else {
                idle = 0;
                self.now = at;
            }
            self.engine.handle_input(Input::Timeout, self.now).expect("a timeout is never refused");
        }
    }

    /// Adds the account and lets it claim the location and sync.
    pub fn add_account(&mut self) {
        let token = self.token.clone();
        self.input(Input::AddAccount { account_id: ACCOUNT.into(), name: "Fuzz".into(), token });
        self.run_for(2 * MINUTE);
    }

    /// Device licenses of app 0 for two enrolled devices and of app 2 for a third, user licenses
    /// of app 1 for a registered user and a new one (registered at Apple first): associate, create
    /// users, status polling.
    pub fn assign(&mut self) {
        for serial in ["FUZZ1", "FUZZ2", "FUZZ3"] {
            self.input(Input::DeviceEnrolled { serial_number: serial.into(), client_user_id: None, shared_ipad: false, enrollment_id: None, user_enrollment: false, platform: None });
        }
        let user = Input::UserAdded { client_user_id: "fuzz-user".into(), email: Some("fuzz@school.test".into()), managed_apple_id: None };
        self.input(user);
        self.input(policy("devices", 0, LicenseType::Device, &["FUZZ1", "FUZZ2"]));
        self.input(policy("more-devices", 2, LicenseType::Device, &["FUZZ3"]));
        self.input(policy("users", 1, LicenseType::User, &["user-0", "fuzz-user"]));
        self.run_for(2 * MINUTE);
    }

    /// A removed app (disassociate), two retirements of devices holding different apps (one
    /// revoke instead of two disassociates), Test and Refresh, then a delta sync.
    pub fn release_and_resync(&mut self) {
        self.input(Input::AppRemoved { serial_number: "FUZZ2".into(), adam_id: app(0) });
        self.run_for(MINUTE);
        self.input(Input::DeviceRetired { serial_number: "FUZZ1".into() });
        self.input(Input::DeviceRetired { serial_number: "FUZZ3".into() });
        self.run_for(2 * MINUTE);
        self.input(Input::TestAccount { account_id: ACCOUNT.into() });
        self.input(Input::Refresh { account_id: ACCOUNT.into() });
        self.run_for(2 * MINUTE);
        self.run_for(31 * MINUTE);
    }

    /// Every record the store holds, for `Engine::restore`.
    pub fn records(&self) -> Vec<StoredRecord> {
        records(&self.store)
    }

    /// Checks that the engine still answers every read and accepts commands, and that no
    /// request is left unanswered (the world answers each at once).
    pub fn assert_still_works(&mut self) {
        let stats = self.engine.stats();
        assert_eq!(stats.requests_in_flight, 0, "requests in flight after every one was answered");
        assert_eq!(self.engine.accounts().len(), 1);
        self.engine.app_counts(ACCOUNT).expect("app counts");
        self.engine.pending_operations(ACCOUNT).expect("pending operations");
        assert!(self.input(Input::TestAccount { account_id: ACCOUNT.into() }), "Test refused");
        self.run_for(MINUTE);
        Engine::restore(world_config(), self.records(), self.now).expect("restore from the engine's own records");
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

/// The adam id of the fake Apple's `i`-th generated app.
pub fn app(i: usize) -> String {
    format!("{}", 400_000_000 + i)
}

fn policy(id: &str, app_index: usize, license_type: LicenseType, targets: &[&str]) -> Input {
    Input::SetPolicy {
        policy: AppPolicy {
            policy_id: id.into(),
            name: id.into(),
            account_id: ACCOUNT.into(),
            adam_id: app(app_index),
            pricing_param: PricingParam::Stdq,
            license_type,
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
        },
    }
}

/// Applies one `persist` output to a key-value store, as a host does.
pub fn apply(store: &mut BTreeMap<String, serde_json::Value>, ops: Vec<PersistOp>) {
    for op in ops {
        match op {
            PersistOp::Put { key, value } => {
                store.insert(key, serde_json::to_value(value).expect("records serialize"));
            }
            PersistOp::Delete { key } => {
                store.remove(&key);
            }
        }
    }
}

/// A store's contents as `Engine::restore` takes them.
pub fn records(store: &BTreeMap<String, serde_json::Value>) -> Vec<StoredRecord> {
    store.iter().map(|(key, value)| StoredRecord { key: key.clone(), value: value.clone() }).collect()
}
