//! Deterministic simulation: a seeded random workload against the fake Apple, with faults
//! injected at random and the engine restarted from its store at random points.
//!
//! * Workload: device-license policies on four revocable apps (one with a scarce pool) and one
//!   non-revocable app, user-license policies on a book and an app; scope changes, enrollments,
//!   retirements, removed and failed installs, installs, users added and removed, admin
//!   reclaims, Reconcile, and now and then a Clean Up. Another MDM holds a few assignments,
//!   some on our devices. Some devices are user-enrolled (BYOD) — four always, four now and
//!   then — and some are Apple TVs, which one of the apps does not support: device policies
//!   scope them like any other device. One step in twenty is a burst of facts given one input at a time,
//!   10–150 ms apart, as MDM servers report them.
//! * Trickle workload (a second test): twin locations, one receiving bursts of facts one input at
//!   a time, the other the same facts at once; the license requests of the first are measured
//!   against the second's (the lower bound) and printed.
//! * Faults: 503 + Retry-After, 429 (9646), 500, lost answers (Apple handled the request, the
//!   engine got a network error), unreachable Apple, slow, stuck, failed and partly failed
//!   events, dropped, duplicated and delayed (reordered) notifications, answers overtaking each
//!   other, another MDM taking the location, the token expiring (then replaced), and restarts
//!   from the stored records (requests in flight lost, handled by Apple or not).
//! * Invariants, after every step, from what Apple saw and answered (never from the engine's
//!   own account of itself): see [`Checker`]; among them, no association ever carries a device
//!   that is always user-enrolled, nor an Apple TV with the app that does not support it. Once the faults stop, the desired state must be
//!   reached within [`CONVERGENCE_BOUND`] of simulated time, with nothing left pending.
//!
//! `SIM_SEEDS=N SIM_STEPS=M cargo test --release --test simulation -- --nocapture` runs more
//! seeds (in parallel, `SIM_THREADS` to choose); `SIM_SEED=<seed>` replays one. A failure
//! prints the seed, the step and the command that replays it. The summary line counts seeds,
//! steps, faults by kind and restarts.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use serde_json::{json, Value};
use support::fake_apple::{make_token, EventFault, Fault, Flood, NotificationFault, Org, TokenState};
use support::scenario::take_back;
use support::{app, Harness, Trace, DAY, START};
use vpp_license_engine::{AccountStatus, AppPolicy, Event, ExplainQuery, Input, LicenseType, PricingParam};

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;
const HOUR: u64 = 60 * MINUTE;
const DEVICES: usize = 40;
const USERS: usize = 12;
/// Apple's `maxRequestPerSecond` in the fake's service config.
const RATE_LIMIT: usize = 15;

/// Assets of the simulated location, by index (adam id `app(i)`): 0–3 revocable apps
/// (device licenses), 4 a non-revocable app (device licenses), 5 a book and 6 a revocable app
/// (user licenses).
const ASSETS: usize = 7;
const SCARCE_APP: usize = 2;
const SCARCE_POOL: i64 = 14;
const NON_REVOCABLE_APP: usize = 4;
const BOOK: usize = 5;
const FIRST_USER_ASSET: usize = 5;
/// The device app that supports iOS only (the others support tvOS too).
const IOS_ONLY_APP: usize = 3;
/// Devices from this one on are always user-enrolled (BYOD); enrolled so before the workload starts.
const FIRST_BYOD: usize = 36;
/// These devices are enrolled as user-enrolled or not, as each enrollment chooses.
const SOMETIMES_BYOD: std::ops::Range<usize> = 32..FIRST_BYOD;
/// Never released by the engine: a license of these stays once assigned.
const NEVER_RELEASED: [usize; 2] = [NON_REVOCABLE_APP, BOOK];

/// Once faults stop: a Reconcile runs every 24 h, and a release nominated before a restart is
/// only remembered by it.
const CONVERGENCE_BOUND: u64 = DAY + 2 * HOUR;

/// Another MDM's assignments: (asset, serial number). Some on devices outside our fleet, some on ours.
const FOREIGN: [(usize, &str); 8] = [
    (0, "OTHER0"),
    (1, "OTHER1"),
    (SCARCE_APP, "OTHER2"),
    (0, "SIM005"),
    (SCARCE_APP, "SIM010"),
    (SCARCE_APP, "SIM011"),
    (1, "SIM020"),
    (NON_REVOCABLE_APP, "SIM030"),
];

fn serial(i: usize) -> String {
    format!("SIM{i:03}")
}

fn user(i: usize) -> String {
    format!("simuser-{i}")
}

fn is_user_asset(asset: usize) -> bool {
    asset >= FIRST_USER_ASSET
}

/// Apple's name of a device's platform: one device in ten is an Apple TV (enrolled so before the
/// workload starts), the others iPhones and iPads.
fn platform(device: usize) -> &'static str {
    if device % 10 == 7 { "tvOS" } else { "iOS" }
}

/// Whether the device can't use a device license of `asset` (it is known as user-enrolled, or
/// the app does not support its platform).
fn ineligible(asset: usize, device: usize, byod: &BTreeSet<usize>) -> bool {
    byod.contains(&device) || (asset == IOS_ONLY_APP && platform(device) == "tvOS")
}

/// A `deviceEnrolled` input with the device's platform.
fn enrolled(d: usize, user_enrollment: bool, enrollment_id: Option<String>) -> Input {
    let platform = Some(platform(d).to_owned());
    Input::DeviceEnrolled { serial_number: serial(d), client_user_id: None, shared_ipad: false, enrollment_id, user_enrollment, platform }
}

/// A device or a user of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Device(usize),
    User(usize),
}

impl Target {
    /// Parses an assignment's target, if it is one of the workload's.
    fn of(assignment: &Value) -> Option<Self> {
        if let Some(serial) = assignment["serialNumber"].as_str() {
            return serial.strip_prefix("SIM")?.parse().ok().map(Target::Device);
        }
        assignment["clientUserId"].as_str()?.strip_prefix("simuser-")?.parse().ok().map(Target::User)
    }
}

/// An (asset index, target) pair of the workload.
type Pair = (usize, Target);

/// The pair an event names, if it is one of the workload's.
fn pair_of(adam_id: &str, serial_number: Option<&str>, client_user_id: Option<&str>) -> Option<Pair> {
    let asset = asset_of(&json!({ "adamId": adam_id }))?;
    Target::of(&json!({ "serialNumber": serial_number, "clientUserId": client_user_id })).map(|t| (asset, t))
}

/// How long a wanted pair may go unlicensed without a word: a coalescing window, the rate limit,
/// Apple's answer.
const SILENCE_GRACE: u64 = 2 * MINUTE;

fn asset_of(assignment: &Value) -> Option<usize> {
    assignment["adamId"].as_str()?.parse::<usize>().ok()?.checked_sub(400_000_000)
}

/// What the workload asked for, kept by the simulation to know the desired state.
#[derive(Default)]
struct Model {
    /// asset → targets in scope (device indices for device assets, user indices for user assets).
    policies: BTreeMap<usize, BTreeSet<usize>>,
    retired: BTreeSet<usize>,
    removed_users: BTreeSet<usize>,
    /// (asset, device) pairs held back by a removed app, a failed install or an admin reclaim.
    held: BTreeSet<(usize, usize)>,
    /// Devices last enrolled as user-enrolled (BYOD).
    byod: BTreeSet<usize>,
    /// When each (asset, device) pair last failed to install with `licenseNotFound`: sent at most
    /// once in two days per pair, so that the engine only checks with Apple (the pair stays wanted).
    not_found_at: BTreeMap<(usize, usize), u64>,
}

impl Model {
    fn wanted(&self) -> BTreeSet<Pair> {
        let mut wanted = BTreeSet::new();
        for (&asset, targets) in &self.policies {
            for &t in targets {
                if is_user_asset(asset) {
                    if !self.removed_users.contains(&t) {
                        wanted.insert((asset, Target::User(t)));
                    }
                } else if !self.retired.contains(&t) && !self.held.contains(&(asset, t)) && !ineligible(asset, t, &self.byod) {
                    wanted.insert((asset, Target::Device(t)));
                }
            }
        }
        wanted
    }
}

/// The invariants, checked incrementally over the trace (each entry once) and Apple's logs.
#[derive(Default)]
struct Checker {
    /// Deadline of the latest 503 + Retry-After the engine received.
    retry_after_until: u64,
    /// The engine received an answer carrying the other MDM's `mdmInfo` to a request sent since
    /// the last Reclaim Ownership, and no Reclaim Ownership followed.
    taken_over: bool,
    /// The engine received a 401 for its current token, and no replacement token followed.
    token_rejected: bool,
    /// Administrator interventions so far (a new token, Reclaim Ownership), and after how many each
    /// request in flight was sent: a 401 for a token already replaced says nothing about the new
    /// one, and the other MDM's `mdmInfo` answered to a request sent before Reclaim Ownership is
    /// what the administrator has just overruled.
    epoch: u64,
    sent_in: HashMap<u64, u64>,
    /// Send times of the account's requests in the last second.
    window: VecDeque<u64>,
    /// A Clean Up was requested: other MDMs' assignments may be released from now on.
    cleaned_up: bool,
}

impl Checker {
    fn entry(&mut self, entry: &Trace) {
        match entry {
            Trace::Sent { at, request } if request.account_id.is_some() => {
                self.sent_in.insert(request.id, self.epoch);
                assert!(*at >= self.retry_after_until, "request at {at} inside the Retry-After window ending {}: {request:?}", self.retry_after_until);
                assert!(!self.taken_over, "a request was sent while another MDM owns the location: {request:?}");
                assert!(!self.token_rejected, "a request was sent after Apple rejected the token: {request:?}");
                while self.window.front().is_some_and(|&t| t + SECOND <= *at) {
                    self.window.pop_front();
                }
                self.window.push_back(*at);
                assert!(self.window.len() <= RATE_LIMIT, "{} requests within one second, the last at {at}", self.window.len());
                if request.purpose == "associateAssets" {
                    let body: Value = serde_json::from_str(request.body.as_deref().unwrap_or("{}")).unwrap();
                    let assets: Vec<usize> = body["assets"].as_array().into_iter().flatten().filter_map(asset_of).collect();
                    for device in body["serialNumbers"].as_array().into_iter().flatten().filter_map(|s| Target::of(&json!({ "serialNumber": s }))) {
                        let Target::Device(d) = device else { continue };
                        // Known from the start: the engine never had a reason to send them.
                        assert!(d < FIRST_BYOD, "an association carries a device that is always user-enrolled: {body}");
                        assert!(
                            !(platform(d) == "tvOS" && assets.contains(&IOS_ONLY_APP)),
                            "an association gives an Apple TV an app that does not support tvOS: {body}"
                        );
                    }
                }
                if request.purpose == "disassociateAssets" {
                    let body: Value = serde_json::from_str(request.body.as_deref().unwrap_or("{}")).unwrap();
                    for asset in body["assets"].as_array().into_iter().flatten() {
                        let index = asset_of(asset);
                        assert!(
                            !index.is_some_and(|i| NEVER_RELEASED.contains(&i)),
                            "a disassociate of a book or non-revocable asset: {body}"
                        );
                    }
                }
            }
            Trace::Answered { at, id, status, headers, body } => {
                // Apple's word, not the engine's: a 5xx with Retry-After forbids requests until then.
                let deadline = headers.get("Retry-After").and_then(|v| match v.parse::<u64>() {
                    Ok(seconds) => Some(at + seconds * SECOND),
                    Err(_) => parse_http_date(v),
                });
                if let Some(deadline) = deadline.filter(|_| *status >= 500) {
                    self.retry_after_until = self.retry_after_until.max(deadline);
                }
                let current = self.sent_in.remove(id) == Some(self.epoch);
                if *status == 401 && current {
                    self.token_rejected = true;
                }
                if body.contains("\"rival\"") && current {
                    self.taken_over = true;
                }
                check_error_numbers(body);
            }
            Trace::Notified { body, .. } => check_error_numbers(body),
            Trace::Lost { id, .. } => {
                self.sent_in.remove(id);
            }
            _ => {}
        }
    }

    /// The administrator uploaded a new token.
    fn token_replaced(&mut self) {
        self.token_rejected = false;
        self.epoch += 1;
    }

    /// The administrator chose Reclaim Ownership.
    fn ownership_reclaimed(&mut self) {
        self.taken_over = false;
        self.epoch += 1;
    }
}

/// One trace entry, on one line (`SIM_TRACE=1`).
fn print_entry(entry: &Trace) {
    let short = |text: &str| text.chars().take(400).collect::<String>();
    match entry {
        Trace::Sent { at, request } => {
            let path = Harness::endpoint(request);
            eprintln!("{} → #{} {} {path} {}", at - START, request.id, request.purpose, short(request.body.as_deref().unwrap_or("")));
        }
        Trace::Answered { at, id, status, body, headers } => eprintln!("{} ← #{id} {status} {headers:?} {}", at - START, short(body)),
        Trace::Lost { at, id, status } => eprintln!("{} ✗ #{id} answer lost (Apple: {status})", at - START),
        Trace::Notified { at, body, status } => eprintln!("{} ⇐ notification ({status}) {}", at - START, short(body)),
        Trace::Emitted { at, event } => eprintln!("{} event {event:?}", at - START),
        Trace::Stored { at, key, put } => eprintln!("{} store {} {key}", at - START, if *put { "put" } else { "delete" }),
    }
}

const HTTP_DATE: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT");

/// `at` (Unix ms) as an HTTP-date (seconds are cut off, as the format has none smaller).
fn http_date(at: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp((at / SECOND) as i64).unwrap();
    at.format(HTTP_DATE).unwrap()
}

fn parse_http_date(text: &str) -> Option<u64> {
    let parsed = time::PrimitiveDateTime::parse(text, HTTP_DATE).ok()?.assume_utc();
    Some(parsed.unix_timestamp() as u64 * SECOND)
}

/// Error numbers Apple must never have to answer to this engine. (9709 is injected as Apple's refusal
/// while its counts show licenses; asking for more than the pool holds is caught by the fake's pool check.)
fn check_error_numbers(body: &str) {
    let never = [
        (9706, "a non-revocable asset was disassociated"),
        (9707, "a device license was asked for a non-device-assignable asset"),
        (9700, "a request exceeded Apple's limits (9700)"),
        (9701, "a request exceeded Apple's limits (9701)"),
        (9702, "a request exceeded Apple's limits (9702)"),
        (9714, "a request exceeded Apple's limits (9714)"),
    ];
    for (number, what) in never {
        assert!(!body.contains(&format!("\"errorNumber\":{number}")), "{what}: {body}");
    }
}

/// Counters of one or more runs.
#[derive(Debug, Default)]
struct Stats {
    seeds: u64,
    steps: u64,
    faults: BTreeMap<String, u64>,
    requests: u64,
    /// Bursts of facts given one input at a time.
    trickle_bursts: u64,
    /// Checks that found a wanted pair the engine believed Apple held while Apple did not.
    mirror_behind: u64,
    /// `assignmentFailed` events for devices that can't use a device license (user-enrolled, Apple TVs).
    ineligible_told: u64,
    /// The slowest convergence after the faults stopped: (simulated ms, seed).
    slowest: (u64, u64),
}

impl Stats {
    fn add(&mut self, other: Stats) {
        self.seeds += other.seeds;
        self.steps += other.steps;
        for (kind, n) in other.faults {
            *self.faults.entry(kind).or_default() += n;
        }
        self.requests += other.requests;
        self.trickle_bursts += other.trickle_bursts;
        self.mirror_behind += other.mirror_behind;
        self.ineligible_told += other.ineligible_told;
        self.slowest = self.slowest.max(other.slowest);
    }

    fn faults_total(&self) -> u64 {
        self.faults.values().sum()
    }
}

struct Sim {
    h: Harness,
    /// The location's current token (replaced after it expires).
    token: String,
    tokens_issued: u32,
    rng: fastrand::Rng,
    model: Model,
    checker: Checker,
    /// Faults the simulation itself injects (Apple's own are in its fault log).
    faults: BTreeMap<String, u64>,
    requests: u64,
    trickle_bursts: u64,
    mirror_behind: u64,
    ineligible_told: u64,
    /// When each wanted pair became wanted (no silent holds).
    wanted_since: BTreeMap<Pair, u64>,
    /// When the engine last emitted an event naming each pair (`assignmentFailed`), and each asset's
    /// last `insufficientLicenses`.
    named_at: BTreeMap<Pair, u64>,
    short_at: BTreeMap<usize, u64>,
    /// Pairs reported `licenseReady` and not released, re-enrolled or reported `licenseNotFound` since:
    /// reported ready once.
    ready: BTreeSet<Pair>,
    /// Enrollment ids handed out (re-enrollments), and the devices the host reported enrolled.
    enrollments: u64,
    enrolled: BTreeSet<usize>,
    /// Another MDM's assignments, as (adamId, serial number).
    foreign: BTreeSet<(String, String)>,
    /// `SIM_TRACE=1`: print every input, request, answer, notification and event (for replays).
    verbose: bool,
    /// Apple's fault counts when last printed (`SIM_TRACE=1`).
    printed_faults: BTreeMap<String, u64>,
}

impl Sim {
    fn new(seed: u64) -> Self {
        let mut h = Harness::with_notifications();
        h.trace_store = std::env::var("SIM_TRACE").is_ok_and(|v| v == "1");
        h.rng = fastrand::Rng::with_seed(seed ^ 0x5eed);
        let mut org = Org::generated("SIM", ASSETS, 0, 0);
        for (i, asset) in org.assets.iter_mut().enumerate() {
            asset["totalCount"] = json!(if i == SCARCE_APP { SCARCE_POOL } else { 1_000 });
            asset["revocable"] = json!(!NEVER_RELEASED.contains(&i));
            asset["supportedPlatforms"] = if i == IOS_ONLY_APP { json!(["iOS"]) } else { json!(["iOS", "tvOS"]) };
            if i == BOOK {
                asset["productType"] = json!("Book");
                asset["deviceAssignable"] = json!(false);
            }
        }
        let mut foreign = BTreeSet::new();
        for (asset, device) in FOREIGN {
            org.add_assignment(&app(asset), device);
            foreign.insert((app(asset), device.to_owned()));
        }
        org.recount();
        h.apple.event_delay = 3 * SECOND;
        h.latency = 200;
        h.latency_jitter = 400;
        let token = h.org("SIMORG", org);
        h.add_account("a1", &token);
        for u in 0..USERS {
            let (email, managed_apple_id) = if u % 2 == 0 { (None, Some(format!("{}@managed.test", user(u)))) } else { (Some(format!("{}@school.test", user(u))), None) };
            h.input(Input::UserAdded { client_user_id: user(u), email, managed_apple_id }).unwrap();
        }
        // The devices whose eligibility the engine must know before any policy scopes them.
        let mut enrolled_early = BTreeSet::new();
        let mut byod = BTreeSet::new();
        for d in (0..DEVICES).filter(|&d| d >= FIRST_BYOD || platform(d) == "tvOS") {
            h.input(enrolled(d, d >= FIRST_BYOD, None)).unwrap();
            enrolled_early.insert(d);
            if d >= FIRST_BYOD {
                byod.insert(d);
            }
        }
        h.run_for(MINUTE);
        Self {
            h,
            token,
            tokens_issued: 1,
            rng: fastrand::Rng::with_seed(seed),
            model: Model { byod, ..Model::default() },
            checker: Checker::default(),
            faults: BTreeMap::new(),
            requests: 0,
            trickle_bursts: 0,
            mirror_behind: 0,
            ineligible_told: 0,
            wanted_since: BTreeMap::new(),
            named_at: BTreeMap::new(),
            short_at: BTreeMap::new(),
            ready: BTreeSet::new(),
            enrollments: 0,
            enrolled: enrolled_early,
            foreign,
            verbose: std::env::var("SIM_TRACE").is_ok_and(|v| v == "1"),
            printed_faults: BTreeMap::new(),
        }
    }

    /// Feeds a workload input (printed with `SIM_TRACE=1`).
    fn input(&mut self, input: Input) -> Result<(), vpp_license_engine::EngineError> {
        if self.verbose {
            eprintln!("{} input {input:?}", self.h.now - START);
        }
        self.h.input(input)
    }

    fn count(&mut self, kind: &str) {
        *self.faults.entry(kind.to_owned()).or_default() += 1;
        if self.verbose {
            eprintln!("{} fault: {kind}", self.h.now - START);
        }
    }

    fn policy_input(&self, asset: usize) -> Input {
        let (license_type, name): (LicenseType, fn(usize) -> String) =
            if is_user_asset(asset) { (LicenseType::User, user) } else { (LicenseType::Device, serial) };
        Input::SetPolicy {
            policy: AppPolicy {
                policy_id: format!("p{asset}"),
                name: format!("Policy {asset}"),
                account_id: "a1".into(),
                adam_id: app(asset),
                pricing_param: PricingParam::Stdq,
                license_type,
                targets: self.model.policies[&asset].iter().map(|t| name(*t)).collect(),
            },
        }
    }

    fn step(&mut self) {
        match self.rng.u32(..100) {
            80..=84 => self.trickle(),
            roll => self.act(roll),
        }
        self.administrator();
        let advance = self.rng.u64(..90 * SECOND);
        self.h.run_for(advance);
        self.check_invariants();
    }

    /// A burst of facts as an MDM server reports them: scope changes, enrollments, retirements,
    /// removed and failed installs, one input each, 10–150 ms apart (coalescing joins them).
    fn trickle(&mut self) {
        for _ in 0..self.rng.usize(5..=30) {
            let roll = self.rng.u32(12..=52);
            self.act(roll);
            let gap = self.rng.u64(10..=150);
            self.h.run_for(gap);
            self.check_invariants();
        }
        self.trickle_bursts += 1;
    }

    /// One workload command (or fault) chosen by `roll` (0..100).
    fn act(&mut self, roll: u32) {
        let a = self.rng.usize(..ASSETS);
        let device_app = self.rng.usize(..FIRST_USER_ASSET);
        let d = self.rng.usize(..DEVICES);
        let u = self.rng.usize(..USERS);
        match roll {
            0..=11 => {
                let count = if is_user_asset(a) { USERS } else { DEVICES };
                let targets: BTreeSet<usize> = (0..count).filter(|_| self.rng.bool()).collect();
                if !is_user_asset(a) {
                    for device in &targets {
                        self.model.held.remove(&(a, *device)); // entering scope lifts a hold
                    }
                }
                self.model.policies.insert(a, targets);
                self.input(self.policy_input(a)).unwrap();
            }
            12..=25 if self.model.policies.contains_key(&a) => {
                let add = self.rng.bool();
                let t = if is_user_asset(a) { u } else { d };
                let name = if is_user_asset(a) { user(t) } else { serial(t) };
                let targets = self.model.policies.get_mut(&a).unwrap();
                if add {
                    targets.insert(t);
                    if !is_user_asset(a) {
                        self.model.held.remove(&(a, t));
                    }
                } else {
                    targets.remove(&t);
                }
                let (add, remove) = if add { (vec![name], vec![]) } else { (vec![], vec![name]) };
                self.input(Input::UpdatePolicyTargets { policy_id: format!("p{a}"), add, remove }).unwrap();
            }
            26..=28 if self.model.policies.contains_key(&a) => {
                self.model.policies.remove(&a);
                self.input(Input::RemovePolicy { policy_id: format!("p{a}") }).unwrap();
            }
            29..=36 => {
                // A retired device enrolled again, or one wiped and enrolled again (a new enrollment id): a
                // re-enrollment, which lifts its holds and reports its licenses ready again. Otherwise the host
                // reports what the engine knows already (a replayed fact), which changes nothing.
                let first = self.enrolled.insert(d);
                let reenrolled = self.model.retired.remove(&d) || first || self.rng.bool();
                let enrollment_id = reenrolled.then(|| {
                    self.enrollments += 1;
                    format!("enrollment-{}", self.enrollments)
                });
                if reenrolled {
                    // (A first enrollment too: the device may hold licenses assigned before it enrolled.)
                    self.model.held.retain(|(_, device)| *device != d);
                    self.ready.retain(|(_, target)| *target != Target::Device(d));
                }
                // A device that is user-enrolled sometimes chooses at each enrollment; the others stay as they are.
                let user_enrollment = if SOMETIMES_BYOD.contains(&d) { self.rng.u32(..3) == 0 } else { self.model.byod.contains(&d) };
                if user_enrollment {
                    self.model.byod.insert(d);
                } else {
                    self.model.byod.remove(&d);
                }
                self.input(enrolled(d, user_enrollment, enrollment_id)).unwrap();
            }
            37..=40 => {
                self.model.retired.insert(d);
                self.input(Input::DeviceRetired { serial_number: serial(d) }).unwrap();
            }
            41..=44 => {
                self.model.held.insert((device_app, d));
                self.input(Input::AppRemoved { serial_number: serial(d), adam_id: app(device_app) }).unwrap();
            }
            45..=46 => {
                let now = self.h.now;
                let cancelled = self.rng.bool();
                let pair = (device_app, d);
                let reason = if !cancelled && self.rng.bool() && self.model.not_found_at.get(&pair).is_none_or(|at| now >= at + 2 * DAY) {
                    self.model.not_found_at.insert(pair, now);
                    // The host found no license: a new licenseReady (Apple lost it, it was assigned again) is welcome.
                    self.ready.remove(&(device_app, Target::Device(d)));
                    Some("licenseNotFound".to_owned())
                } else {
                    self.model.held.insert(pair);
                    None
                };
                self.input(Input::InstallFailed { serial_number: serial(d), adam_id: app(device_app), cancelled, reason }).unwrap();
            }
            47..=50 => {
                self.model.held.remove(&(device_app, d));
                self.input(Input::AppInstalled { serial_number: serial(d), adam_id: app(device_app) }).unwrap();
            }
            51..=52 => {
                let input = Input::ReclaimLicense {
                    account_id: "a1".into(),
                    adam_id: app(device_app),
                    pricing_param: PricingParam::Stdq,
                    serial_number: Some(serial(d)),
                    client_user_id: None,
                };
                if self.input(input).is_ok() {
                    self.model.held.insert((device_app, d));
                }
            }
            53..=54 => self.input(Input::Reconcile).unwrap(),
            55..=56 => {
                self.model.removed_users.insert(u);
                self.input(Input::UserRemoved { client_user_id: user(u) }).unwrap();
            }
            57..=58 => {
                self.model.removed_users.remove(&u);
                let managed_apple_id = (u % 2 == 0).then(|| format!("{}@managed.test", user(u)));
                let email = (u % 2 == 1).then(|| format!("{}@school.test", user(u)));
                self.input(Input::UserAdded { client_user_id: user(u), email, managed_apple_id }).unwrap();
            }
            59 if self.rng.u32(..40) == 0 => {
                self.checker.cleaned_up = true;
                self.input(Input::CleanUp { account_id: "a1".into() }).unwrap();
            }
            60..=79 => self.inject_fault(),
            _ => {}
        }
    }

    /// What an administrator does about a stopped account: reclaim the location, upload a new token.
    fn administrator(&mut self) {
        // What happened so far was sent before the intervention: check it first (the checker's epochs).
        self.check_invariants();
        match self.h.status("a1") {
            AccountStatus::OwnedByOtherMdm if self.rng.u32(..4) == 0 => {
                self.input(Input::ReclaimOwnership { account_id: "a1".into() }).unwrap();
                self.checker.ownership_reclaimed();
            }
            AccountStatus::TokenInvalid if self.rng.u32(..3) == 0 => self.replace_token(),
            _ => {}
        }
    }

    fn replace_token(&mut self) {
        self.tokens_issued += 1;
        let renewed = make_token("SIMORG", &format!("renewed-secret-{}", self.tokens_issued), START + 365 * DAY);
        self.h.apple.replace_token(&self.token, &renewed);
        self.h.add_account_mapping("a1", &renewed);
        self.token = renewed.clone();
        self.input(Input::EditAccount { account_id: "a1".into(), name: None, token: Some(renewed) }).unwrap();
        self.checker.token_replaced();
    }

    fn inject_fault(&mut self) {
        const PATHS: [&str; 7] =
            ["/assets/associate", "/assets/disassociate", "/assets/revoke", "/status", "/assignments", "/users/create", "/client/config"];
        let path = self.rng.bool().then(|| PATHS[self.rng.usize(..PATHS.len())]);
        let request_fault = |fault: Fault, token: &str| {
            let fault = fault.for_token(token);
            match path {
                Some(path) => fault.on_path(path),
                None => fault,
            }
        };
        // Apple's per-target refusals that a retry can overcome (9709 while its counts show licenses,
        // 9609 for a user it lost); 9635 and 9641 end in a hold (tests/refusals.rs).
        let error = self.rng.choice([9603, 9644, 9709, 9609]).unwrap();
        match self.rng.u32(..100) {
            0..=9 => {
                // Seconds, or now and then an HTTP-date: a deadline from the fault's creation, which may
                // have passed when the fault is used.
                let value = if self.rng.u32(..3) == 0 {
                    http_date(self.h.now + self.rng.u64(1..900) * SECOND)
                } else {
                    self.rng.u64(1..300).to_string()
                };
                let fault = Fault::status(503).header("Retry-After", &value);
                self.h.apple.faults.push_back(request_fault(fault, &self.token));
            }
            10..=17 => {
                let fault = Fault::status(429).body(json!({"errorNumber": 9646, "errorMessage": "Too many requests"}));
                self.h.apple.faults.push_back(request_fault(fault, &self.token));
            }
            18..=25 => self.h.apple.faults.push_back(request_fault(Fault::status(500), &self.token)),
            26..=37 => self.h.apple.faults.push_back(request_fault(Fault::lost_answer(), &self.token)),
            38..=43 => self.h.apple.faults.push_back(request_fault(Fault::unreachable(), &self.token)),
            44..=51 => self.h.apple.event_faults.push_back(EventFault::Slow(self.rng.u64(30 * SECOND..9 * MINUTE))),
            52..=54 => self.h.apple.event_faults.push_back(EventFault::Stuck),
            55..=60 => self.h.apple.event_faults.push_back(EventFault::Failed(error)),
            61..=68 => self.h.apple.event_faults.push_back(EventFault::Partial(error)),
            69..=74 => self.h.apple.notification_faults.push_back(NotificationFault::Drop),
            75..=78 => self.h.apple.notification_faults.push_back(NotificationFault::Duplicate(self.rng.u64(..2 * MINUTE))),
            79 => {
                // Notification floods (issue 17): asset events notified per app in chunks, scrambled, some twice.
                let flood = Flood {
                    max_assignments: self.rng.usize(1..=100),
                    spread: self.rng.u64(SECOND..5 * MINUTE),
                    duplicate_every: self.rng.usize(..4),
                };
                self.h.apple.flood = if self.h.apple.flood.is_some() { None } else { Some(flood) };
            }
            80..=86 => self.h.apple.notification_faults.push_back(NotificationFault::Delay(self.rng.u64(5 * SECOND..5 * MINUTE))),
            87..=89 => {
                let org = self.h.apple.org(&self.token);
                if org.mdm_info.as_ref().is_none_or(|info| info["id"] != "rival") {
                    org.mdm_info = Some(json!({"id": "rival", "name": "Rival MDM", "metadata": ""}));
                    self.count("location taken over");
                }
            }
            90..=91 => {
                let org = self.h.apple.org(&self.token);
                if org.token_state == TokenState::Valid {
                    org.token_state = TokenState::Expired;
                    self.count("token expired");
                }
            }
            92 => self.clock_glitch(),
            _ => self.restart(),
        }
    }

    /// The engine stops as a crash would, at the end of the step or while requests are in
    /// flight, and a new one is restored from the store.
    fn restart(&mut self) {
        if self.rng.bool() {
            let end = self.h.now + 90 * SECOND;
            if self.h.run_until_request_in_flight(end) {
                self.count("restart with requests in flight");
            }
            self.check_invariants();
        }
        self.count("restart");
        if self.verbose {
            eprintln!("{} restart", self.h.now - START);
        }
        let before = self.h.engine.pending_operations("a1").unwrap();
        let rng = &mut self.rng;
        if let Err(error) = self.h.restart(|_| rng.bool()) {
            panic!("the store does not restore: {error}");
        }
        if self.rng.bool() {
            self.replay_facts();
        }
        let after = self.h.engine.pending_operations("a1").unwrap();
        for op in before.iter().filter(|op| op.event_id.is_some()) {
            assert!(
                after.iter().any(|o| o.operation_id == op.operation_id && o.event_id == op.event_id),
                "operation {} (event {:?}) was pending before the restart and is unknown after it: {after:?}",
                op.operation_id,
                op.event_id
            );
        }
    }

    /// The host's clock reads far ahead once (an hour, days, 400 days), then real time again.
    fn clock_glitch(&mut self) {
        let ahead = *self.rng.choice(&[HOUR, 2 * DAY, 400 * DAY]).unwrap();
        if self.verbose {
            eprintln!("{} clock glitch: now + {} s", self.h.now - START, ahead / SECOND);
        }
        self.h.clock_glitch(ahead);
        self.count("clock glitch (a now far ahead, then real time)");
    }

    /// What a host does at start-up: it reports every device fact it knows again. Nothing changes.
    fn replay_facts(&mut self) {
        let known: Vec<usize> = self.enrolled.iter().copied().collect();
        for d in known {
            let input = if self.model.retired.contains(&d) {
                Input::DeviceRetired { serial_number: serial(d) }
            } else {
                enrolled(d, self.model.byod.contains(&d), None)
            };
            self.input(input).unwrap();
        }
        self.count("facts replayed after a restart");
    }

    /// Invariants over everything that happened since the last check.
    fn check_invariants(&mut self) {
        if self.verbose && self.printed_faults != self.h.apple.fault_log {
            for (kind, n) in &self.h.apple.fault_log {
                if self.printed_faults.get(kind) != Some(n) {
                    eprintln!("{} fault took effect during the step: {kind}", self.h.now - START);
                }
            }
            self.printed_faults = self.h.apple.fault_log.clone();
        }
        for entry in self.h.take_trace() {
            if self.verbose {
                print_entry(&entry);
            }
            match &entry {
                Trace::Sent { request, .. } if request.account_id.is_some() => self.requests += 1,
                Trace::Emitted { at, event: Event::AssignmentFailed { adam_id, serial_number, client_user_id, .. } } => {
                    if let Some(pair) = pair_of(adam_id, serial_number.as_deref(), client_user_id.as_deref()) {
                        self.named_at.insert(pair, *at);
                        if matches!(pair, (asset, Target::Device(d)) if ineligible(asset, d, &self.model.byod)) {
                            self.ineligible_told += 1;
                        }
                    }
                }
                Trace::Emitted { event: Event::LicenseReady { adam_id, serial_number, client_user_id, .. }, .. } => {
                    if let Some(pair) = pair_of(adam_id, serial_number.as_deref(), client_user_id.as_deref()) {
                        assert!(self.ready.insert(pair), "licenseReady again for {pair:?}, ready since and not released, re-enrolled nor reported not found");
                    }
                }
                Trace::Emitted { event: Event::LicenseReleased { adam_id, serial_number, client_user_id, .. }, .. } => {
                    if let Some(pair) = pair_of(adam_id, serial_number.as_deref(), client_user_id.as_deref()) {
                        self.ready.remove(&pair);
                    }
                }
                Trace::Emitted { at, event: Event::InsufficientLicenses { adam_id, .. } } => {
                    if let Some(asset) = asset_of(&json!({ "adamId": adam_id })) {
                        self.short_at.insert(asset, *at);
                    }
                }
                _ => {}
            }
            self.checker.entry(&entry);
        }
        self.check_no_silent_holds();
        if let Some(overcommit) = self.h.apple.overcommitted.first() {
            panic!("more associations requested than available: {overcommit}");
        }
        for (kind, released) in std::mem::take(&mut self.h.apple.release_log) {
            let pair = (released["adamId"].as_str().unwrap_or_default().to_owned(), released["serialNumber"].as_str().unwrap_or_default().to_owned());
            assert!(
                self.checker.cleaned_up || !self.foreign.contains(&pair),
                "another MDM's assignment was released by a {kind}: {released}"
            );
        }
    }

    /// No silent holds: a wanted pair Apple does not hold, wanted for longer than [`SILENCE_GRACE`]
    /// (a coalescing window and the rate limit), is in flight, or blocked by a stated cause (the
    /// account's status: Retry-After, backoff, ownership, token, a full refresh; a user not yet
    /// registered), or an event named why since it became wanted (`assignmentFailed` for the pair,
    /// or `insufficientLicenses` for its app while the engine says the app is short).
    fn check_no_silent_holds(&mut self) {
        let now = self.h.now;
        let wanted = self.model.wanted();
        self.wanted_since.retain(|pair, _| wanted.contains(pair));
        for pair in &wanted {
            self.wanted_since.entry(*pair).or_insert(now);
        }
        if self.h.status("a1") != AccountStatus::Active {
            return; // the account's status says why nothing is assigned
        }
        let (missing, _) = self.differences();
        for (asset, target) in missing {
            let since = self.wanted_since[&(asset, target)];
            if now - since <= SILENCE_GRACE {
                continue;
            }
            let (serial_number, client_user_id) = match target {
                Target::Device(d) => (Some(serial(d)), None),
                Target::User(u) => (None, Some(user(u))),
            };
            let query = ExplainQuery { adam_id: app(asset), pricing_param: PricingParam::Stdq, serial_number, client_user_id };
            let explanation = self.h.engine.explain("a1", &query).unwrap();
            if explanation.has_license && explanation.reason.starts_with("licensed") {
                // The engine's mirror is behind Apple (a release it never heard of): not a hold the engine
                // knows about. The daily full refresh repairs the mirror; convergence checks that.
                self.mirror_behind += 1;
                continue;
            }
            let reason = explanation.reason;
            let named = self.named_at.get(&(asset, target)).is_some_and(|at| *at >= since);
            let stated = match reason.as_str() {
                "assignment requested, waiting for Apple to confirm" | "waiting for Apple to register the user" => true,
                // Wanted again while its release (or a revoke of the target's licenses) is at Apple.
                r if r.starts_with("being released") || r.starts_with("will be assigned once the") => true,
                r if r.starts_with("will be assigned with the changes collecting now") => true, // at most coalesceMs away
                r if r == "not enough licenses available" || r.starts_with("Apple refused the assignment for lack of licenses") => {
                    named || self.short_at.contains_key(&asset)
                }
                "will be assigned at the next plan" => false,
                _ => named,
            };
            assert!(
                stated,
                "asset {asset} for {target:?}, wanted for {} s, is not licensed and no event said why; the engine says {reason:?}",
                (now - since) / SECOND
            );
        }
    }

    /// Pairs the desired state wants and Apple lacks (with licenses available), and pairs Apple
    /// holds that nothing wants (except other MDMs' and licenses that are never released).
    fn differences(&mut self) -> (Vec<Pair>, Vec<Pair>) {
        let foreign = self.foreign.clone();
        let org = self.h.apple.org(&self.token);
        let available: Vec<i64> = org.assets.iter().map(|a| a["availableCount"].as_i64().unwrap()).collect();
        let mut at_apple = BTreeSet::new();
        let mut tolerated = BTreeSet::new();
        for (_, assignment) in &org.assignments {
            let (Some(asset), Some(target)) = (asset_of(assignment), Target::of(assignment)) else { continue };
            at_apple.insert((asset, target));
            let theirs = foreign.contains(&(app(asset), assignment["serialNumber"].as_str().unwrap_or_default().to_owned()));
            if NEVER_RELEASED.contains(&asset) || theirs {
                tolerated.insert((asset, target));
            }
        }
        let wanted = self.model.wanted();
        let missing = wanted.iter().filter(|(asset, _)| available[*asset] > 0).filter(|p| !at_apple.contains(p)).copied().collect();
        let extra = at_apple.iter().filter(|p| !wanted.contains(p) && !tolerated.contains(p)).copied().collect();
        (missing, extra)
    }

    /// Apple holds the desired state, the location is ours with a valid token, the account is
    /// active and nothing is pending.
    fn converged(&mut self) -> bool {
        let org = self.h.apple.org(&self.token);
        let ours = org.mdm_info.as_ref().is_some_and(|info| info["id"] == support::our_mdm().id) && org.token_state == TokenState::Valid;
        if !ours || self.h.status("a1") != AccountStatus::Active || !self.h.engine.pending_operations("a1").unwrap().is_empty() {
            return false;
        }
        let (missing, extra) = self.differences();
        missing.is_empty() && extra.is_empty()
    }

    /// With faults over: the desired state is reached within [`CONVERGENCE_BOUND`] and stays.
    /// Returns how long it took.
    fn converge(&mut self) -> u64 {
        self.h.apple.faults.clear();
        self.h.apple.event_faults.clear();
        self.h.apple.notification_faults.clear();
        let start = self.h.now;
        while !self.converged() {
            if self.h.now - start > CONVERGENCE_BOUND {
                self.explain_divergence(&format!("not converged within {} h of the faults stopping", CONVERGENCE_BOUND / HOUR));
            }
            match self.h.status("a1") {
                AccountStatus::OwnedByOtherMdm => {
                    self.input(Input::ReclaimOwnership { account_id: "a1".into() }).unwrap();
                    self.checker.ownership_reclaimed();
                }
                AccountStatus::TokenInvalid => self.replace_token(),
                _ => {}
            }
            self.h.run_for(5 * MINUTE);
            self.check_invariants();
            if self.verbose {
                let (missing, extra) = self.differences();
                let pending = self.h.engine.pending_operations("a1").unwrap().len();
                eprintln!("{} converging: {:?}, {pending} pending, missing {missing:?}, extra {extra:?}", self.h.now - START, self.h.status("a1"));
            }
        }
        let took = self.h.now - start;
        self.h.run_for(HOUR);
        self.check_invariants();
        if !self.converged() {
            self.explain_divergence(&format!("the desired state was reached {} min after the faults stopped but did not last", took / MINUTE));
        }
        took
    }

    fn explain_divergence(&mut self, what: &str) -> ! {
        let (missing, extra) = self.differences();
        for (asset, target) in missing.iter().chain(&extra) {
            let (serial_number, client_user_id) = match target {
                Target::Device(d) => (Some(serial(*d)), None),
                Target::User(u) => (None, Some(user(*u))),
            };
            let query = ExplainQuery { adam_id: app(*asset), pricing_param: PricingParam::Stdq, serial_number, client_user_id };
            eprintln!("asset {asset} for {target:?}: the engine says {:?}", self.h.engine.explain("a1", &query));
        }
        panic!(
            "{what}: status {:?}, pending {:?}, missing {missing:?}, extra {extra:?}",
            self.h.account("a1"),
            self.h.engine.pending_operations("a1"),
        );
    }

    fn stats(&self, seed: u64, steps: usize, convergence: u64) -> Stats {
        let mut faults = self.faults.clone();
        for (kind, n) in &self.h.apple.fault_log {
            *faults.entry(kind.clone()).or_default() += n;
        }
        Stats { seeds: 1, steps: steps as u64, faults, requests: self.requests, trickle_bursts: self.trickle_bursts, mirror_behind: self.mirror_behind, ineligible_told: self.ineligible_told, slowest: (convergence, seed) }
    }
}

/// One seed: `steps` steps with faults, then convergence. On failure, says how to replay it.
fn run_seed(seed: u64, steps: usize) -> Result<Stats, String> {
    let mut step = 0;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut sim = Sim::new(seed);
        while step < steps {
            step += 1;
            sim.step();
        }
        step += 1; // convergence
        let convergence = sim.converge();
        sim.stats(seed, steps, convergence)
    }));
    outcome.map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        let at = if step > steps { "after the faults stopped".to_owned() } else { format!("at step {step}") };
        format!(
            "seed {seed} failed {at}: {message}\n  replay: SIM_SEED={seed} SIM_STEPS={steps} cargo test --release --test simulation -- --nocapture"
        )
    })
}

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs the seeds on `threads` threads; stops handing out seeds after the first failure of a
/// seed not `known` to fail, unless `SIM_KEEP_GOING=1` (to survey every failing seed).
#[cfg(not(target_arch = "wasm32"))]
fn run_seeds(seeds: &[u64], steps: usize, threads: usize, known: &BTreeSet<u64>) -> (Stats, Vec<(u64, String)>) {
    let keep_going = std::env::var("SIM_KEEP_GOING").is_ok_and(|v| v == "1");
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results = Mutex::new((Stats::default(), Vec::new()));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= seeds.len() || failed.load(Ordering::Relaxed) {
                    return;
                }
                let seed = seeds[index];
                let outcome = run_seed(seed, steps);
                let mut results = results.lock().unwrap();
                match outcome {
                    Ok(stats) => results.0.add(stats),
                    Err(failure) => {
                        if !keep_going && !known.contains(&seed) {
                            failed.store(true, Ordering::Relaxed);
                        }
                        results.1.push((seed, failure));
                    }
                }
            });
        }
    });
    results.into_inner().unwrap()
}

#[cfg(target_arch = "wasm32")]
fn run_seeds(seeds: &[u64], steps: usize, _threads: usize, _known: &BTreeSet<u64>) -> (Stats, Vec<(u64, String)>) {
    let mut stats = Stats::default();
    for &seed in seeds {
        match run_seed(seed, steps) {
            Ok(one) => stats.add(one),
            Err(failure) => return (stats, vec![(seed, failure)]),
        }
    }
    (stats, Vec::new())
}

#[test]
fn random_workloads_with_faults_and_restarts_keep_every_invariant_and_converge() {
    let steps = env("SIM_STEPS", 150) as usize;
    let seeds: Vec<u64> = match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (1..=env("SIM_SEEDS", 6)).collect(),
    };
    #[cfg(not(target_arch = "wasm32"))]
    let (started, threads) = (std::time::Instant::now(), env("SIM_THREADS", std::thread::available_parallelism().map_or(1, |n| n.get() as u64)) as usize);
    #[cfg(target_arch = "wasm32")]
    let threads = 1;
    // Seeds known to fail (engine bugs still open in the issue tracker): still run and reported,
    // but only a failure of any other seed, or a known one passing, fails the test.
    let known: BTreeSet<u64> = std::env::var("SIM_KNOWN_FAILING")
        .unwrap_or_default()
        .split([' ', ','])
        .filter_map(|s| s.parse().ok())
        .collect();
    let (stats, all_failures) = run_seeds(&seeds, steps, threads.clamp(1, seeds.len()), &known);
    let (known_failures, failures): (Vec<(u64, String)>, Vec<(u64, String)>) =
        all_failures.into_iter().partition(|(seed, _)| known.contains(seed));
    for (_, failure) in &known_failures {
        eprintln!("simulation: known failure (SIM_KNOWN_FAILING): {failure}");
    }
    let failures: Vec<String> = failures.into_iter().map(|(_, failure)| failure).collect();
    for failure in &failures {
        eprintln!("simulation: {failure}");
    }
    let known_failed: BTreeSet<u64> = known_failures.iter().map(|(seed, _)| *seed).collect();
    let now_passing: Vec<&u64> = known.iter().filter(|s| seeds.contains(s) && !known_failed.contains(s)).collect();
    let by_kind: Vec<String> = stats.faults.iter().map(|(kind, n)| format!("{kind}: {n}")).collect();
    #[cfg(not(target_arch = "wasm32"))]
    let timing = format!(", {:.0} s on {threads} threads", started.elapsed().as_secs_f64());
    #[cfg(target_arch = "wasm32")]
    let timing = String::new();
    let failed_seeds = failures.len() + known_failures.len();
    let counted = if failed_seeds == 0 { String::new() } else { format!(" (counts of the {} seeds that passed)", stats.seeds) };
    eprintln!(
        "simulation: {} seeds × {steps} steps ({} of them bursts of facts one input at a time), {} requests, {} faults injected{counted} ({}), {} invariant violations \
         ({} in seeds known to fail: {known_failed:?}), {} checks found a wanted license the engine believed Apple held \
         (a release it never heard of; the daily full refresh repairs it), {} refusals of devices that can't use a device license told \
         (user-enrolled, an Apple TV), slowest convergence {} min after the faults stopped (seed {}){timing}",
        stats.seeds + failed_seeds as u64,
        stats.trickle_bursts,
        stats.requests,
        stats.faults_total(),
        by_kind.join(", "),
        failed_seeds,
        known_failures.len(),
        stats.mirror_behind,
        stats.ineligible_told,
        stats.slowest.0 / MINUTE,
        stats.slowest.1,
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(now_passing.is_empty(), "seeds {now_passing:?} pass now: take them out of SIM_KNOWN_FAILING");
}

// ================================================================================ trickle workload

/// License requests: what coalescing saves.
const LICENSE_PURPOSES: [&str; 4] = ["associateAssets", "disassociateAssets", "revokeAssets", "createUsers"];
/// Trickle workload: devices, device-license apps (0..TRICKLE_DEVICE_APPS) and one user-license app.
const TRICKLE_DEVICES: usize = 240;
const TRICKLE_USERS: usize = 80;
const TRICKLE_DEVICE_APPS: usize = 5;
const TRICKLE_USER_APP: usize = TRICKLE_DEVICE_APPS;

/// One location receiving facts as an MDM server reports them, one input per event; and a twin that
/// receives the same facts given at once (its requests are the lower bound the trickle is measured against).
struct TrickleTwins {
    trickled: Harness,
    at_once: Harness,
    tokens: [String; 2],
    rng: fastrand::Rng,
    /// Policy index → targets in scope; retired devices; users registered with the engine.
    scopes: Vec<BTreeSet<usize>>,
    retired: BTreeSet<usize>,
    users: BTreeSet<usize>,
    bursts: u64,
}

impl TrickleTwins {
    fn new(seed: u64) -> Self {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut org = Org::generated("TRICKLE", TRICKLE_DEVICE_APPS + 1, 0, 0);
        for asset in &mut org.assets {
            asset["totalCount"] = json!(100_000);
            asset["availableCount"] = json!(100_000);
        }
        let twin = |org: Org| {
            let mut h = Harness::with_notifications();
            h.apple.event_delay = 2 * SECOND;
            let token = h.org("TRICKLEORG", org);
            h.add_account("a1", &token);
            (h, token)
        };
        let (trickled, t1) = twin(org.clone());
        let (at_once, t2) = twin(org);
        let mut scopes: Vec<BTreeSet<usize>> = (0..TRICKLE_DEVICE_APPS).map(|_| (0..TRICKLE_DEVICES).filter(|_| rng.u32(..3) == 0).collect()).collect();
        scopes.push(BTreeSet::new());
        let mut twins = Self { trickled, at_once, tokens: [t1, t2], rng, scopes, retired: BTreeSet::new(), users: BTreeSet::new(), bursts: 0 };
        let setup: Vec<Input> = (0..=TRICKLE_USER_APP).map(|p| twins.policy(p)).collect();
        twins.give(setup, 0);
        twins
    }

    fn policy(&self, p: usize) -> Input {
        let (license_type, name): (LicenseType, fn(usize) -> String) =
            if p == TRICKLE_USER_APP { (LicenseType::User, user) } else { (LicenseType::Device, serial) };
        Input::SetPolicy {
            policy: AppPolicy {
                policy_id: format!("p{p}"),
                name: format!("Policy {p}"),
                account_id: "a1".into(),
                adam_id: app(p),
                pricing_param: PricingParam::Stdq,
                license_type,
                targets: self.scopes[p].iter().map(|t| name(*t)).collect(),
            },
        }
    }

    /// The next burst of facts: what one event at school produces (a group enrolls, a class
    /// retires its devices, students join a course, installs fail), `5..=50` facts.
    fn burst(&mut self) -> Vec<Input> {
        let n = self.rng.usize(5..=50);
        let p = self.rng.usize(..TRICKLE_DEVICE_APPS);
        let mut inputs = Vec::new();
        match self.rng.u32(..7) {
            0 => {
                let joining: Vec<usize> = (0..TRICKLE_DEVICES).filter(|d| !self.scopes[p].contains(d)).take(n).collect();
                for d in joining {
                    self.scopes[p].insert(d);
                    inputs.push(Input::UpdatePolicyTargets { policy_id: format!("p{p}"), add: vec![serial(d)], remove: vec![] });
                }
            }
            1 => {
                let leaving: Vec<usize> = self.scopes[p].iter().copied().take(n).collect();
                for d in leaving {
                    self.scopes[p].remove(&d);
                    inputs.push(Input::UpdatePolicyTargets { policy_id: format!("p{p}"), add: vec![], remove: vec![serial(d)] });
                }
            }
            2 => {
                let start = self.rng.usize(..TRICKLE_DEVICES);
                let retiring: Vec<usize> = (start..start + n).map(|d| d % TRICKLE_DEVICES).filter(|d| !self.retired.contains(d)).collect();
                for d in retiring {
                    self.retired.insert(d);
                    inputs.push(Input::DeviceRetired { serial_number: serial(d) });
                }
            }
            3 => {
                let returning: Vec<usize> = self.retired.iter().copied().take(n).collect();
                for d in returning {
                    self.retired.remove(&d);
                    inputs.push(Input::DeviceEnrolled { serial_number: serial(d), client_user_id: None, shared_ipad: false, enrollment_id: None, user_enrollment: false, platform: None });
                }
            }
            4 => {
                let joining: Vec<usize> = (0..TRICKLE_USERS).filter(|u| !self.scopes[TRICKLE_USER_APP].contains(u)).take(n).collect();
                for u in joining {
                    if self.users.insert(u) {
                        let managed_apple_id = Some(format!("{}@managed.test", user(u)));
                        inputs.push(Input::UserAdded { client_user_id: user(u), email: None, managed_apple_id });
                    }
                    self.scopes[TRICKLE_USER_APP].insert(u);
                    inputs.push(Input::UpdatePolicyTargets { policy_id: format!("p{TRICKLE_USER_APP}"), add: vec![user(u)], remove: vec![] });
                }
            }
            kind => {
                // Failed or removed installs and administrator reclaims, each of one device's app.
                let held: Vec<usize> = self.scopes[p].iter().copied().filter(|d| !self.retired.contains(d)).take(n).collect();
                for &d in &held {
                    // The user removed the app, the install failed, or an administrator reclaimed it.
                    let how = if kind == 5 { self.rng.u32(..2) } else { 2 };
                    inputs.push(take_back(how, serial(d), app(p)));
                }
                // A held pair is licensed again only when it enters the scope again (a later burst).
                for d in &held {
                    self.scopes[p].remove(d);
                }
            }
        }
        inputs
    }

    /// Gives `inputs` to the trickled twin one by one, `10..=150` ms apart (or `gap` when not 0),
    /// and to the other all at once; then lets both settle.
    fn give(&mut self, inputs: Vec<Input>, gap: u64) {
        for input in &inputs {
            self.trickled.input(input.clone()).unwrap();
            let pause = if gap > 0 { gap } else { self.rng.u64(10..=150) };
            self.trickled.run_for(pause);
        }
        for input in inputs {
            self.at_once.input(input).unwrap();
        }
        self.trickled.run_for(2 * MINUTE);
        self.at_once.run_for(2 * MINUTE);
    }

    /// Apple's assignments in each twin, as (adamId, target) pairs.
    fn held(&mut self) -> [BTreeSet<(String, String)>; 2] {
        let held = |h: &mut Harness, token: &str| -> BTreeSet<(String, String)> {
            h.apple
                .org(token)
                .assignments
                .iter()
                .map(|(_, a)| {
                    let target = a["serialNumber"].as_str().or_else(|| a["clientUserId"].as_str()).unwrap_or_default();
                    (a["adamId"].as_str().unwrap_or_default().to_owned(), target.to_owned())
                })
                .collect()
        };
        let [t1, t2] = self.tokens.clone();
        [held(&mut self.trickled, &t1), held(&mut self.at_once, &t2)]
    }

    /// License requests each twin sent since the last call: (trickled, at once).
    fn license_requests(&mut self) -> (u64, u64) {
        let count = |h: &mut Harness| {
            h.take_trace().iter().filter(|t| matches!(t, Trace::Sent { request, .. } if LICENSE_PURPOSES.contains(&request.purpose))).count() as u64
        };
        (count(&mut self.trickled), count(&mut self.at_once))
    }
}

/// One seed of the trickle workload: `bursts` bursts; returns (license requests trickled, at once).
fn run_trickle_seed(seed: u64, bursts: u64) -> (u64, u64) {
    let mut twins = TrickleTwins::new(seed);
    twins.license_requests(); // the set-up is the same for both
    let mut totals = (0, 0);
    for _ in 0..bursts {
        let burst = twins.burst();
        twins.give(burst, 0);
        twins.bursts += 1;
        let (trickled, at_once) = twins.license_requests();
        totals = (totals.0 + trickled, totals.1 + at_once);
        let [a, b] = twins.held();
        assert_eq!(a, b, "seed {seed}, burst {}: the twins hold different licenses", twins.bursts);
    }
    totals
}

#[test]
fn facts_trickled_one_input_at_a_time_cost_at_most_1_2_times_the_requests_of_the_same_facts_given_at_once() {
    let seeds = env("SIM_TRICKLE_SEEDS", env("SIM_SEEDS", 6).min(60));
    let bursts = env("SIM_TRICKLE_BURSTS", 20);
    let (mut trickled, mut at_once) = (0, 0);
    for seed in 1..=seeds {
        let (t, a) = run_trickle_seed(seed, bursts);
        trickled += t;
        at_once += a;
    }
    let ratio = trickled as f64 / at_once.max(1) as f64;
    eprintln!(
        "simulation (trickle): {seeds} seeds × {bursts} bursts of 5–50 facts, one input each 10–150 ms apart: \
         {trickled} license requests, lower bound (the same facts given at once) {at_once}, ratio {ratio:.2}"
    );
    assert!(ratio <= 1.2, "trickled facts cost {ratio:.2}× the requests of the same facts given at once");
}
