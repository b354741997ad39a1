//! The benchmark world: one location's data as Apple's JSON pages (built before any timing), a
//! bench Apple that answers the engine's requests from them, and a host loop that drives the
//! engine through its public API only. `scripts/bench/world.mjs` builds the same world for wasm.

use std::collections::BTreeMap;
use std::rc::Rc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;
use vpp_license_engine::secret::Secret;
use vpp_license_engine::{
    AppPolicy, Engine, EngineConfig, Event, Input, LicenseType, MdmInfo, NotificationConfig, Output, PricingParam, Request,
};

/// 2026-11-23T00:00:00Z, the simulated start.
pub const START: u64 = 1_795_392_000_000;
pub const SERVICE_CONFIG_URL: &str = "https://apple.bench/mdm/v2/service/config";
pub const ACCOUNT: &str = "district";
/// The bearer Apple's notifications carry (the engine subscribes with it).
pub const NOTIFICATION_TOKEN: &str = "bench-notification-token";
/// The location's id at Apple (client config, notifications).
pub const LOCATION_UID: &str = "2049025000431439";
/// Every device holds app 0 and this many others.
pub const OTHER_APPS_PER_DEVICE: usize = 4;

/// The sizes of one run.
#[derive(Debug, Clone, Copy)]
pub struct Scale {
    pub devices: usize,
    pub apps: usize,
    pub users: usize,
    pub page_size: usize,
    /// Devices that leave (or enter) one app's scope in the planning benchmark.
    pub scope_change: usize,
}

impl Scale {
    /// 1,000,000 assignments: 200,000 devices × 5 apps of 1,000; 10,000 users; pages of 1,000.
    pub const FULL: Scale = Scale { devices: 200_000, apps: 1_000, users: 10_000, page_size: 1_000, scope_change: 50_000 };
    /// The CI variant: 10,000 assignments.
    pub const QUICK: Scale = Scale { devices: 2_000, apps: 100, users: 100, page_size: 1_000, scope_change: 500 };

    pub fn assignments(&self) -> usize {
        self.devices * (1 + OTHER_APPS_PER_DEVICE)
    }

    /// The apps device `d` holds: app 0 and four consecutive others.
    pub fn apps_of(&self, d: usize) -> impl Iterator<Item = usize> {
        let others = self.apps - 1;
        std::iter::once(0).chain((0..OTHER_APPS_PER_DEVICE).map(move |k| 1 + (d * OTHER_APPS_PER_DEVICE + k) % others))
    }

    /// The devices holding each app, by app index.
    pub fn holders(&self) -> Vec<Vec<usize>> {
        let mut holders = vec![Vec::new(); self.apps];
        for d in 0..self.devices {
            for a in self.apps_of(d) {
                holders[a].push(d);
            }
        }
        holders
    }
}

/// A 12-character serial number.
pub fn serial(d: usize) -> String {
    format!("DMPB{d:08}")
}

pub fn adam_id(a: usize) -> String {
    format!("{}", 1_400_000_000 + a * 7)
}

pub fn user_id(u: usize) -> String {
    format!("client-{u:07}")
}

pub fn our_mdm() -> MdmInfo {
    MdmInfo { id: "bench-mdm-0001".into(), name: "Bench MDM".into(), metadata: "1.0".into() }
}

pub fn config() -> EngineConfig {
    let notifications = NotificationConfig { url: "https://mdm.bench/apple".into(), auth_token: Secret::new(NOTIFICATION_TOKEN.into()) };
    EngineConfig { service_config_url: SERVICE_CONFIG_URL.to_owned(), seed: 7, notifications: Some(notifications), ..EngineConfig::new(our_mdm()) }
}

/// An sToken file's text (base64 of Apple's JSON), valid for a year.
pub fn token() -> String {
    token_with_secret("bench-secret")
}

/// An sToken of its own (the engine refuses one token on two accounts).
pub fn token_with_secret(secret: &str) -> String {
    STANDARD.encode(json!({"token": secret, "expDate": "2027-11-23T00:00:00+0000", "orgName": "ORG-BENCH"}).to_string())
}

/// One location's data at Apple.
pub struct Org {
    pub apps: usize,
    /// Licenses of every app beyond those assigned.
    pub spare: usize,
    /// (app, serial number) pairs.
    pub assignments: Vec<(usize, String)>,
    /// Registered users (status `Associated`).
    pub users: usize,
    pub page_size: usize,
}

impl Org {
    /// The scaled district: every device holds app 0 and four others.
    pub fn district(scale: &Scale) -> Self {
        let assignments = (0..scale.devices).flat_map(|d| scale.apps_of(d).map(move |a| (a, serial(d)))).collect();
        Self { apps: scale.apps, spare: scale.devices, assignments, users: scale.users, page_size: scale.page_size }
    }

    /// Apps with `spare` licenses each and nothing assigned.
    pub fn empty(apps: usize, spare: usize, users: usize) -> Self {
        Self { apps, spare, assignments: Vec::new(), users, page_size: 1_000 }
    }
}

/// Apple's answers, prepared as the strings the host receives.
pub struct Pages {
    pub service_config: String,
    pub client_config: String,
    pub assets: Vec<String>,
    pub assignments: Vec<String>,
    pub users: Vec<String>,
}

fn mdm_info_json() -> serde_json::Value {
    let mdm = our_mdm();
    json!({"id": mdm.id, "name": mdm.name, "metadata": mdm.metadata})
}

/// Pages of `records` (each already JSON) under `key`, with Apple's paging fields.
fn paged(key: &str, records: &[String], page_size: usize, version_id: &str) -> Vec<String> {
    let total = records.len().div_ceil(page_size).max(1);
    let mdm = mdm_info_json().to_string();
    (0..total)
        .map(|i| {
            let slice = &records[(i * page_size).min(records.len())..((i + 1) * page_size).min(records.len())];
            let next = if i + 1 < total { format!("\"nextPageIndex\":{},", i + 1) } else { String::new() };
            format!(
                "{{\"{key}\":[{}],\"currentPageIndex\":{i},{next}\"size\":{},\"totalPages\":{total},\
                 \"tokenExpirationDate\":\"2027-11-23T00:00:00+0000\",\"uId\":\"2049025000431439\",\
                 \"versionId\":\"{version_id}\",\"mdmInfo\":{mdm}}}",
                slice.join(","),
                slice.len()
            )
        })
        .collect()
}

impl Pages {
    pub fn build(org: &Org) -> Self {
        let mut assigned = vec![0usize; org.apps];
        for (a, _) in &org.assignments {
            assigned[*a] += 1;
        }
        let assets: Vec<String> = (0..org.apps)
            .map(|a| {
                let total = assigned[a] + org.spare;
                json!({"adamId": adam_id(a), "assignedCount": assigned[a], "availableCount": org.spare,
                       "deviceAssignable": true, "pricingParam": "STDQ", "productType": "App", "retiredCount": 0,
                       "revocable": true, "supportedPlatforms": ["iOS", "macOS"], "totalCount": total})
                .to_string()
            })
            .collect();
        let assignments: Vec<String> = org
            .assignments
            .iter()
            .map(|(a, serial)| json!({"adamId": adam_id(*a), "pricingParam": "STDQ", "serialNumber": serial}).to_string())
            .collect();
        let users: Vec<String> = (0..org.users)
            .map(|u| {
                json!({"clientUserId": user_id(u), "email": format!("student{u}@district.example"),
                       "idHash": "leSKk3IaE2vk2KLmv2k3/200D3=", "status": "Associated"})
                .to_string()
            })
            .collect();
        let mdm = mdm_info_json();
        Self {
            service_config: json!({"limits": {"maxAssets": 25, "maxSerialNumbers": 1000, "maxClientUserIds": 1000,
                                              "maxRevokeSerialNumbers": 100, "maxRevokeClientUserIds": 100, "maxUsers": 100,
                                              "maxRequestPerSecond": 15}, "urls": {}, "errorCodes": []})
            .to_string(),
            client_config: json!({"locationName": "Bench District", "countryISO2ACode": "US", "uId": "2049025000431439",
                                  "mdmInfo": mdm})
            .to_string(),
            assets: paged("assets", &assets, org.page_size, "a1f0c740-514c-11eb-bb63-a90b882fcd52"),
            assignments: paged("assignments", &assignments, org.page_size, "009061cb-87d1-4ea8-ae4c-7849dc49224e"),
            users: paged("users", &users, org.page_size, "021f10a0-7035-11eb-9f67-bd1df52e1e13"),
        }
    }
}

/// Answers every request from the prepared pages; license operations are accepted and stay
/// pending at `/status`. Counts what it was asked, by purpose.
pub struct BenchApple {
    pages: Rc<Pages>,
    /// The location of each other account (by account id); the rest answer from `pages`.
    pub locations: BTreeMap<String, Rc<Pages>>,
    next_event: u64,
    pub asked: BTreeMap<&'static str, usize>,
    /// The associations accepted: (event id, request body).
    pub associations: Vec<(String, String)>,
}

impl BenchApple {
    pub fn new(pages: Rc<Pages>) -> Self {
        Self { pages, locations: BTreeMap::new(), next_event: 0, asked: BTreeMap::new(), associations: Vec::new() }
    }

    pub fn answer(&mut self, request: &Request) -> (u16, String) {
        *self.asked.entry(request.purpose).or_default() += 1;
        let location = request.account_id.as_ref().and_then(|id| self.locations.get(id)).unwrap_or(&self.pages);
        let page = |pages: &[String]| {
            let index: usize = request
                .url
                .split(['?', '&'])
                .find_map(|part| part.strip_prefix("pageIndex="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            match pages.get(index) {
                Some(body) => (200, body.clone()),
                None => (400, r#"{"errorNumber":9650,"errorMessage":"The provided page index is out of range."}"#.to_owned()),
            }
        };
        let mdm = mdm_info_json();
        match request.purpose {
            "serviceConfig" => (200, location.service_config.clone()),
            "clientConfig" | "claimOwnership" | "testAccount" => (200, location.client_config.clone()),
            "assetsPage" => page(&location.assets),
            "assignmentsPage" => page(&location.assignments),
            "usersPage" => page(&location.users),
            "eventStatus" => (200, json!({"eventStatus": "PENDING", "eventType": "ASSOCIATE", "mdmInfo": mdm}).to_string()),
            _ => {
                self.next_event += 1;
                let id = format!("ed3edfc3-e617-465e-b309-{:012}", self.next_event);
                if request.purpose == "associateAssets" {
                    self.associations.push((id.clone(), request.body.clone().unwrap_or_default()));
                }
                (200, json!({"eventId": id, "mdmInfo": mdm, "uId": LOCATION_UID}).to_string())
            }
        }
    }
}

/// The host: answers each request as soon as it is issued and jumps simulated time to the
/// engine's next timeout.
pub struct Host {
    pub engine: Engine,
    pub now: u64,
    pub apple: BenchApple,
    pub pending: Vec<Request>,
    pub syncs_completed: usize,
}

impl Host {
    /// A fresh engine with the account added (nothing drained yet).
    pub fn new(pages: Rc<Pages>) -> Self {
        let mut host =
            Self { engine: Engine::new(config(), START).unwrap(), now: START, apple: BenchApple::new(pages), pending: Vec::new(), syncs_completed: 0 };
        host.input(Input::AddAccount { account_id: ACCOUNT.into(), name: "Bench District".into(), token: token() });
        host
    }

    pub fn input(&mut self, input: Input) {
        self.engine.handle_input(input, self.now).expect("the engine accepts the input");
    }

    /// Drains the outputs in batches (`drain_outputs`, as the wasm host's `pollOutputs`) until
    /// one ends with the timeout; returns the engine's next timeout. Requests are kept for answering.
    pub fn drain(&mut self) -> u64 {
        loop {
            for output in self.engine.drain_outputs(self.now) {
                match output {
                    Output::Request(request) => self.pending.push(request),
                    Output::Event { event: Event::SyncCompleted { .. } } => self.syncs_completed += 1,
                    Output::Event { .. } | Output::Persist { .. } => {}
                    Output::Timeout { at } => return at,
                }
            }
        }
    }

    /// Answers one request.
    pub fn answer(&mut self, request: &Request) {
        let (status, body) = self.apple.answer(request);
        self.input(Input::Response { id: request.id, status, headers: BTreeMap::new(), body });
    }

    /// Runs until `done` holds (checked whenever the engine is idle) or `limit_ms` of simulated
    /// time passed.
    pub fn run(&mut self, limit_ms: u64, mut done: impl FnMut(&Host) -> bool) {
        let end = self.now + limit_ms;
        loop {
            let at = self.drain();
            if !self.pending.is_empty() {
                for request in std::mem::take(&mut self.pending) {
                    self.answer(&request);
                }
                continue;
            }
            if done(self) || at > end {
                return;
            }
            self.now = self.now.max(at);
            self.input(Input::Timeout);
        }
    }

    /// Runs the first full sync to its end.
    pub fn sync(&mut self) {
        self.run(u64::MAX / 4, |h| h.syncs_completed > 0);
    }

    /// Submissions of license operations so far, by purpose.
    pub fn submissions(&self) -> BTreeMap<&'static str, usize> {
        let ops = ["associateAssets", "disassociateAssets", "revokeAssets", "createUsers"];
        self.apple.asked.iter().filter(|(p, _)| ops.contains(p)).map(|(p, n)| (*p, *n)).collect()
    }
}

pub fn policy_id(a: usize) -> String {
    format!("app-{a}")
}

/// A device-license policy for app `a` of the bench account.
pub fn device_policy(a: usize, targets: impl IntoIterator<Item = String>) -> Input {
    policy(a, LicenseType::Device, targets)
}

pub fn policy(a: usize, license_type: LicenseType, targets: impl IntoIterator<Item = String>) -> Input {
    account_policy(ACCOUNT, a, license_type, targets)
}

/// A policy for app `a` of `account_id` (its id names both).
pub fn account_policy(account_id: &str, a: usize, license_type: LicenseType, targets: impl IntoIterator<Item = String>) -> Input {
    let policy_id = if account_id == ACCOUNT { policy_id(a) } else { format!("{account_id}-app-{a}") };
    Input::SetPolicy {
        policy: AppPolicy {
            policy_id,
            name: format!("App {a}"),
            account_id: account_id.into(),
            adam_id: adam_id(a),
            pricing_param: PricingParam::Stdq,
            license_type,
            targets: targets.into_iter().collect(),
        },
    }
}
