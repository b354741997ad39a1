//! A small sans-IO model of Apple's Apps and Books API for scenario tests: client config
//! with `mdmInfo`, paged and versioned assets / assignments / users, token states, and
//! injected faults. It answers an engine `Request` with (status, headers, body).

use std::collections::{BTreeMap, HashMap, VecDeque};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{json, Value};
use vpp_license_engine::{Method, Request};

pub const SERVICE_CONFIG_URL: &str = "https://apple.test/mdm/v2/service/config";
const BASE: &str = "https://apple.test/mdm/v2";

/// An sToken file's text for `org_name`, expiring at `expires_at` (Unix ms).
pub fn make_token(org_name: &str, secret: &str, expires_at: u64) -> String {
    let seconds = (expires_at / 1000) as i64;
    let exp = time::OffsetDateTime::from_unix_timestamp(seconds).unwrap();
    let exp_date = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+0000",
        exp.year(),
        exp.month() as u8,
        exp.day(),
        exp.hour(),
        exp.minute(),
        exp.second()
    );
    STANDARD.encode(json!({"token": secret, "expDate": exp_date, "orgName": org_name}).to_string())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenState {
    Valid,
    Expired,
    Revoked,
}

/// One location's data. Records carry the internal version at which they last changed.
#[derive(Debug, Clone)]
pub struct Org {
    pub location_name: String,
    pub mdm_info: Option<Value>,
    pub token_state: TokenState,
    pub version: u64,
    pub assets: Vec<Value>,
    pub assignments: Vec<(u64, Value)>,
    pub users: Vec<(u64, Value)>,
}

impl Org {
    /// `apps` apps with 100 licenses each, `assignments` device assignments spread over them,
    /// and `users` registered users.
    pub fn generated(location_name: &str, apps: usize, assignments: usize, users: usize) -> Self {
        let assets = (0..apps)
            .map(|i| {
                let assigned = assignments / apps + usize::from(i < assignments % apps);
                json!({"adamId": format!("{}", 400_000_000 + i), "pricingParam": "STDQ", "productType": "App",
                       "totalCount": 100, "assignedCount": assigned, "availableCount": 100 - assigned,
                       "retiredCount": 0, "deviceAssignable": true, "revocable": true, "supportedPlatforms": ["iOS"]})
            })
            .collect();
        let assignments = (0..assignments)
            .map(|i| (1, json!({"adamId": format!("{}", 400_000_000 + i % apps), "pricingParam": "STDQ", "serialNumber": format!("SERIAL{i:05}")})))
            .collect();
        let users = (0..users)
            .map(|i| (1, json!({"clientUserId": format!("user-{i}"), "email": format!("user{i}@school.test"), "status": "Registered", "inviteCode": format!("invite{i}")})))
            .collect();
        Self { location_name: location_name.to_owned(), mdm_info: None, token_state: TokenState::Valid, version: 1, assets, assignments, users }
    }

    /// Adds a device assignment as a new version of the data set.
    pub fn add_assignment(&mut self, adam_id: &str, serial: &str) {
        self.version += 1;
        self.assignments.push((self.version, json!({"adamId": adam_id, "pricingParam": "STDQ", "serialNumber": serial})));
    }

    fn version_id(&self) -> String {
        format!("v{}", self.version)
    }
}

/// A canned answer for the next matching request.
#[derive(Debug, Clone)]
pub struct Fault {
    pub bearer: Option<String>,
    pub path_suffix: Option<String>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Fault {
    pub fn status(status: u16) -> Self {
        Self { bearer: None, path_suffix: None, status, headers: Vec::new(), body: String::new() }
    }
    pub fn for_token(mut self, bearer: &str) -> Self {
        self.bearer = Some(bearer.to_owned());
        self
    }
    pub fn on_path(mut self, suffix: &str) -> Self {
        self.path_suffix = Some(suffix.to_owned());
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
    pub fn body(mut self, body: Value) -> Self {
        self.body = body.to_string();
        self
    }
}

/// Called after a page is served: (bearer, path, page index, org).
pub type PageHook = Box<dyn FnMut(&str, &str, usize, &mut Org)>;

/// An asynchronous event (associate, disassociate, revoke, create users).
#[derive(Debug, Clone)]
pub struct AppleEvent {
    pub bearer: String,
    pub kind: &'static str,
    pub request: Value,
    pub complete_at: u64,
    /// Once completed: the failures[] of the status answer.
    pub outcome: Option<Vec<Value>>,
    /// Once completed: the assignments a revoke released.
    pub revoked: Vec<Value>,
    pub notified: bool,
}

pub struct FakeApple {
    pub orgs: HashMap<String, Org>,
    pub page_size: usize,
    pub limits: Value,
    pub faults: VecDeque<Fault>,
    pub after_page: Option<PageHook>,
    pub events: BTreeMap<String, AppleEvent>,
    /// How long an event takes to complete.
    pub event_delay: u64,
    next_event: u64,
}

pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

impl FakeApple {
    pub fn new() -> Self {
        Self {
            orgs: HashMap::new(),
            page_size: 3,
            limits: json!({"maxAssets": 25, "maxUsers": 100, "maxClientUserIds": 1000, "maxSerialNumbers": 1000,
                           "maxRevokeSerialNumbers": 100, "maxRevokeClientUserIds": 100, "maxRequestPerSecond": 15}),
            faults: VecDeque::new(),
            after_page: None,
            events: BTreeMap::new(),
            event_delay: 2_000,
            next_event: 0,
        }
    }

    /// Completes every event due by `now`; returns (bearer, ASSET_MANAGEMENT notification body)
    /// for each completed license event not yet notified.
    pub fn complete_due(&mut self, now: u64) -> Vec<(String, String)> {
        let due: Vec<String> =
            self.events.iter().filter(|(_, e)| e.outcome.is_none() && e.complete_at <= now).map(|(id, _)| id.clone()).collect();
        for id in &due {
            let event = self.events[id].clone();
            let org = self.orgs.get_mut(&event.bearer).expect("event of a known org");
            let (failures, revoked) = apply_event(org, event.kind, &event.request);
            let stored = self.events.get_mut(id).unwrap();
            stored.outcome = Some(failures);
            stored.revoked = revoked;
        }
        let mut notifications = Vec::new();
        for (id, event) in self.events.iter_mut().filter(|(_, e)| e.outcome.is_some() && !e.notified) {
            event.notified = true;
            if event.kind == "CREATE" {
                let org = &self.orgs[&event.bearer];
                let created: Vec<Value> = event.request["users"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|u| org.users.iter().find(|(_, x)| x["clientUserId"] == u["clientUserId"]).map(|(_, x)| x.clone()))
                    .collect();
                let notification = json!({"eventId": id, "result": "SUCCESS", "type": "CREATE", "users": created});
                let body = json!({"notificationId": format!("n-{id}"), "notificationType": "USER_MANAGEMENT",
                                  "notification": notification, "uId": "1"});
                notifications.push((event.bearer.clone(), body.to_string()));
                continue;
            }
            let failures = event.outcome.as_ref().unwrap();
            let assignments = if event.kind == "REVOKE" { event.revoked.clone() } else { tasks(&event.request, event.kind) };
            let (ok, failed): (Vec<Value>, Vec<Value>) = assignments.into_iter().partition(|a| !failed_task(failures, a));
            for (result, list) in [("SUCCESS", ok), ("FAILURE", failed)] {
                if list.is_empty() {
                    continue;
                }
                let mut notification = json!({"eventId": id, "result": result, "type": event.kind, "assignments": list});
                if result == "FAILURE" {
                    notification["error"] = failures[0].clone();
                }
                let body = json!({"notificationId": format!("n-{id}-{result}"), "notificationType": "ASSET_MANAGEMENT",
                                  "notification": notification, "uId": "1"});
                notifications.push((event.bearer.clone(), body.to_string()));
            }
        }
        notifications
    }

    fn start_event(&mut self, bearer: &str, kind: &'static str, request: Value, now: u64) -> Value {
        self.next_event += 1;
        let id = format!("event-{}", self.next_event);
        self.events.insert(
            id.clone(),
            AppleEvent {
                bearer: bearer.to_owned(),
                kind,
                request,
                complete_at: now + self.event_delay,
                outcome: None,
                revoked: Vec::new(),
                notified: false,
            },
        );
        json!({"eventId": id})
    }

    /// Requests Apple received for `path` (e.g. "assets/associate").
    pub fn events_of(&self, kind: &str) -> usize {
        self.events.values().filter(|e| e.kind == kind).count()
    }

    pub fn org(&mut self, bearer: &str) -> &mut Org {
        self.orgs.get_mut(bearer).expect("known token")
    }

    pub fn answer(&mut self, request: &Request, now: u64) -> Answer {
        let (path, query) = split_url(&request.url);
        let bearer = request.headers.get("authorization").and_then(|h| h.strip_prefix("Bearer ")).map(str::to_owned);
        if let Some(index) = self.faults.iter().position(|f| {
            f.bearer.as_ref().is_none_or(|b| Some(b) == bearer.as_ref())
                && f.path_suffix.as_ref().is_none_or(|s| path.ends_with(s.as_str()))
        }) {
            let fault = self.faults.remove(index).unwrap();
            return Answer { status: fault.status, headers: fault.headers.into_iter().collect(), body: fault.body };
        }
        if path.ends_with("/service/config") {
            let urls: BTreeMap<&str, String> = [
                ("clientConfig", "client/config"), ("getAssets", "assets"), ("getAssignments", "assignments"),
                ("getUsers", "users"), ("eventStatus", "status"), ("associateAssets", "assets/associate"),
            ]
            .into_iter()
            .map(|(k, p)| (k, format!("{BASE}/{p}")))
            .collect();
            return ok(json!({"limits": self.limits, "urls": urls, "errorCodes": []}));
        }
        let Some(org) = bearer.as_ref().and_then(|b| self.orgs.get_mut(b)) else {
            return error(401, 9722, "Invalid authorization header");
        };
        match org.token_state {
            TokenState::Expired => return error(401, 9621, "The token has expired."),
            TokenState::Revoked => return error(401, 9625, "The server has revoked the sToken."),
            TokenState::Valid => {}
        }
        let page_index: usize = query.get("pageIndex").and_then(|p| p.parse().ok()).unwrap_or(0);
        let mut body = match (request.method, path.rsplit("/mdm/v2/").next().unwrap_or("")) {
            (Method::Get, "client/config") => json!({"locationName": org.location_name, "countryISO2ACode": "US", "uId": "1"}),
            (Method::Post, "client/config") => {
                let sent: Value = serde_json::from_str(request.body.as_deref().unwrap_or("{}")).unwrap();
                org.mdm_info = Some(sent["mdmInfo"].clone());
                json!({"locationName": org.location_name, "countryISO2ACode": "US", "uId": "1"})
            }
            (Method::Get, "assets") => {
                let records: Vec<Value> = org.assets.clone();
                match page(&records, page_index, self.page_size, "assets", org.version_id()) {
                    Ok(body) => body,
                    Err(answer) => return answer,
                }
            }
            (Method::Get, resource @ ("assignments" | "users")) => {
                let source = if resource == "users" { &org.users } else { &org.assignments };
                let since = match query.get("sinceVersionId") {
                    None => 0,
                    Some(v) => match v.strip_prefix('v').and_then(|n| n.parse::<u64>().ok()) {
                        Some(n) if n <= org.version => n,
                        _ => return error(400, 9721, "Invalid version ID."),
                    },
                };
                let records: Vec<Value> = source.iter().filter(|(v, _)| *v > since).map(|(_, r)| r.clone()).collect();
                match page(&records, page_index, self.page_size, resource, org.version_id()) {
                    Ok(body) => body,
                    Err(answer) => return answer,
                }
            }
            (Method::Post, endpoint @ ("assets/associate" | "assets/disassociate" | "assets/revoke" | "users/create")) => {
                let sent: Value = serde_json::from_str(request.body.as_deref().unwrap_or("{}")).unwrap();
                if let Err(answer) = validate(org, endpoint, &sent, &self.limits) {
                    return answer;
                }
                let kind = match endpoint {
                    "assets/associate" => "ASSOCIATE",
                    "assets/disassociate" => "DISASSOCIATE",
                    "assets/revoke" => "REVOKE",
                    _ => "CREATE",
                };
                let bearer = bearer.clone().unwrap();
                let mut body = self.start_event(&bearer, kind, sent, now);
                let org = self.orgs.get_mut(&bearer).unwrap();
                if let Some(info) = &org.mdm_info {
                    body["mdmInfo"] = info.clone();
                }
                return ok(body);
            }
            (Method::Get, "status") => {
                let id = query.get("eventId").cloned().unwrap_or_default();
                self.complete_due(now);
                let Some(event) = self.events.get(&id) else { return error(400, 9708, "Unable to find eventId.") };
                let mut body = match &event.outcome {
                    None => json!({"eventStatus": "PENDING", "eventType": event.kind}),
                    Some(failures) if failures.is_empty() => json!({"eventStatus": "COMPLETE", "eventType": event.kind}),
                    Some(failures) => json!({"eventStatus": "FAILED", "eventType": event.kind, "failures": failures}),
                };
                if let Some(info) = &self.orgs[bearer.as_ref().unwrap()].mdm_info {
                    body["mdmInfo"] = info.clone();
                }
                return ok(body);
            }
            _ => return error(400, 9602, "Invalid argument."),
        };
        if let Some(info) = &org.mdm_info {
            body["mdmInfo"] = info.clone();
        }
        body["uId"] = json!("1");
        body["tokenExpirationDate"] = json!("2030-11-08T22:33:22+0000");
        if query.contains_key("pageIndex") {
            if let Some(hook) = self.after_page.as_mut() {
                hook(bearer.as_deref().unwrap(), &path, page_index, self.orgs.get_mut(bearer.as_deref().unwrap()).unwrap());
            }
        }
        ok(body)
    }
}

/// Synchronous validation, as Apple does it (limits, device-assignable, revocable).
fn validate(org: &Org, endpoint: &str, sent: &Value, limits: &Value) -> Result<(), Answer> {
    let len = |key: &str| sent[key].as_array().map_or(0, Vec::len);
    let limit = |key: &str| limits[key].as_u64().unwrap_or(u64::MAX) as usize;
    match endpoint {
        "users/create" if len("users") > limit("maxUsers") => Err(error(400, 9714, "Too many users.")),
        "assets/revoke" if len("serialNumbers") > limit("maxRevokeSerialNumbers") => Err(error(400, 9702, "Too many serial numbers.")),
        "assets/revoke" if len("clientUserIds") > limit("maxRevokeClientUserIds") => Err(error(400, 9701, "Too many users.")),
        "assets/associate" | "assets/disassociate" => {
            if len("assets") == 0 {
                return Err(error(400, 9718, "No asset."));
            }
            if len("assets") > limit("maxAssets") {
                return Err(error(400, 9700, "Too many assets."));
            }
            if len("serialNumbers") > limit("maxSerialNumbers") {
                return Err(error(400, 9702, "Too many serial numbers."));
            }
            if len("clientUserIds") > limit("maxClientUserIds") {
                return Err(error(400, 9701, "Too many client user ids."));
            }
            for asset in sent["assets"].as_array().unwrap() {
                let found = org.assets.iter().find(|a| a["adamId"] == asset["adamId"]);
                let Some(found) = found else { return Err(error(400, 9602, "Unknown asset.")) };
                if endpoint == "assets/associate" && len("serialNumbers") > 0 && found["deviceAssignable"] == false {
                    return Err(error(400, 9707, "The asset isn't device-assignable."));
                }
                if endpoint == "assets/disassociate" && found["revocable"] == false {
                    return Err(error(400, 9706, "The asset isn't revocable."));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The (asset × target) tasks of a request, as Assignment objects.
fn tasks(request: &Value, kind: &str) -> Vec<Value> {
    let targets: Vec<(&str, Value)> = request["serialNumbers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| ("serialNumber", s.clone()))
        .chain(request["clientUserIds"].as_array().into_iter().flatten().map(|u| ("clientUserId", u.clone())))
        .collect();
    if kind == "REVOKE" {
        // A revoke names no assets; every revocable assignment of the target goes.
        return targets.into_iter().map(|(k, v)| json!({k: v, "adamId": null})).collect();
    }
    let mut out = Vec::new();
    for asset in request["assets"].as_array().into_iter().flatten() {
        for (key, target) in &targets {
            out.push(json!({"adamId": asset["adamId"], "pricingParam": asset["pricingParam"], *key: target}));
        }
    }
    out
}

fn failed_task(failures: &[Value], task: &Value) -> bool {
    failures.iter().any(|f| {
        let info = &f["errorInfo"];
        let hit = |key: &str, list: &str| info[list].as_array().is_some_and(|l| l.contains(&task[key]));
        hit("serialNumber", "serialNumbers") || hit("clientUserId", "clientUserIds")
    })
}

/// Applies a completed event to the org; returns failures[] (one entry per failed target) and
/// the assignments a revoke released.
fn apply_event(org: &mut Org, kind: &str, request: &Value) -> (Vec<Value>, Vec<Value>) {
    let mut failures = Vec::new();
    let mut revoked = Vec::new();
    if kind == "CREATE" {
        for user in request["users"].as_array().into_iter().flatten() {
            org.version += 1;
            let status = if user.get("managedAppleId").is_some() { "Associated" } else { "Registered" };
            let id = user["clientUserId"].clone();
            org.users.retain(|(_, u)| u["clientUserId"] != id);
            let record = json!({"clientUserId": id, "email": user["email"], "status": status, "inviteCode": format!("code-{}", id.as_str().unwrap())});
            org.users.push((org.version, record));
        }
        return (failures, revoked);
    }
    let target_of = |a: &Value| format!("{}|{}", a["serialNumber"], a["clientUserId"]);
    let mut held: std::collections::HashSet<(String, String)> =
        org.assignments.iter().map(|(_, a)| (a["adamId"].to_string(), target_of(a))).collect();
    let users: std::collections::HashSet<String> = org.users.iter().map(|(_, u)| u["clientUserId"].to_string()).collect();
    let revocable: std::collections::HashSet<String> =
        org.assets.iter().filter(|a| a["revocable"] == true).map(|a| a["adamId"].to_string()).collect();
    let mut releasing: std::collections::HashSet<(String, String)> = std::collections::HashSet::new();
    for task in tasks(request, kind) {
        let key = (task["adamId"].to_string(), target_of(&task));
        if kind != "ASSOCIATE" {
            releasing.insert(key);
            continue;
        }
        if task.get("clientUserId").is_some() && !users.contains(&task["clientUserId"].to_string()) {
            failures.push(json!({"errorNumber": 9609, "errorMessage": "Registered user not found",
                                 "errorInfo": {"clientUserIds": [task["clientUserId"]]}}));
            continue;
        }
        if held.contains(&key) {
            continue; // re-associating is a no-op
        }
        let asset = org.assets.iter_mut().find(|a| a["adamId"] == task["adamId"]).expect("validated");
        if asset["availableCount"].as_i64().unwrap() <= 0 {
            let info = if task.get("serialNumber").is_some() {
                json!({"serialNumbers": [task["serialNumber"]]})
            } else {
                json!({"clientUserIds": [task["clientUserId"]]})
            };
            failures.push(json!({"errorNumber": 9709, "errorMessage": "There aren't enough assets available to complete this association.", "errorInfo": info}));
            continue;
        }
        asset["availableCount"] = json!(asset["availableCount"].as_i64().unwrap() - 1);
        asset["assignedCount"] = json!(asset["assignedCount"].as_i64().unwrap() + 1);
        org.version += 1;
        held.insert(key);
        org.assignments.push((org.version, task.clone()));
    }
    if !releasing.is_empty() {
        let revoked_targets: std::collections::HashSet<String> = releasing.iter().map(|(_, t)| t.clone()).collect();
        let before = org.assignments.len();
        org.assignments.retain(|(_, a)| {
            let adam = a["adamId"].to_string();
            let matches = if kind == "REVOKE" {
                revoked_targets.contains(&target_of(a))
            } else {
                releasing.contains(&(adam.clone(), target_of(a)))
            };
            let release = matches && revocable.contains(&adam);
            if release && kind == "REVOKE" {
                revoked.push(a.clone());
            }
            !release
        });
        if org.assignments.len() != before {
            org.version += 1;
        }
        for asset in org.assets.iter_mut() {
            let assigned = org.assignments.iter().filter(|(_, a)| a["adamId"] == asset["adamId"]).count() as i64;
            asset["assignedCount"] = json!(assigned);
            asset["availableCount"] = json!(asset["totalCount"].as_i64().unwrap() - assigned);
        }
    }
    (failures, revoked)
}

fn page(records: &[Value], index: usize, size: usize, key: &str, version_id: String) -> Result<Value, Answer> {
    let total_pages = records.len().div_ceil(size).max(1);
    if index >= total_pages {
        return Err(error(400, 9650, "The provided page index must be greater than 0, and less than the total number of pages."));
    }
    let slice: Vec<Value> = records.iter().skip(index * size).take(size).cloned().collect();
    let mut body = json!({key: slice, "currentPageIndex": index, "size": slice.len(), "totalPages": total_pages, "versionId": version_id});
    if index + 1 < total_pages {
        body["nextPageIndex"] = json!(index + 1);
    }
    Ok(body)
}

fn split_url(url: &str) -> (String, HashMap<String, String>) {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let query = form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    (path.to_owned(), query)
}

fn ok(body: Value) -> Answer {
    Answer { status: 200, headers: BTreeMap::new(), body: body.to_string() }
}

pub fn error(status: u16, number: i64, message: &str) -> Answer {
    Answer {
        status,
        headers: BTreeMap::new(),
        body: json!({"errorNumber": number, "errorMessage": message}).to_string(),
    }
}
