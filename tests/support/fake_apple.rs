//! A small sans-IO model of Apple's Apps and Books API for scenario tests: client config
//! with `mdmInfo`, paged and versioned assets / assignments / users, token states, and
//! injected faults. It answers an engine `Request` with (status, headers, body).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

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
    /// Apple no longer accepts the token (the downloading account's password changed): 9622.
    Invalidated,
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

    /// Sets every asset's assigned and available counts from the assignments (after a test
    /// added assignments directly).
    pub fn recount(&mut self) {
        let mut assigned: HashMap<&str, i64> = HashMap::new();
        for (_, assignment) in &self.assignments {
            *assigned.entry(assignment["adamId"].as_str().unwrap_or_default()).or_default() += 1;
        }
        for asset in self.assets.iter_mut() {
            let assigned = assigned.get(asset["adamId"].as_str().unwrap_or_default()).copied().unwrap_or(0);
            asset["assignedCount"] = json!(assigned);
            asset["availableCount"] = json!(asset["totalCount"].as_i64().unwrap() - assigned);
        }
    }

    fn version_id(&self) -> String {
        format!("v{}", self.version)
    }
}

/// What a [`Fault`] does to the request it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultEffect {
    /// Apple answers with the fault's status, headers and body instead.
    Canned,
    /// Apple handles the request as usual, but its answer never reaches the engine.
    LoseAnswer,
    /// The request never reaches Apple (connection refused, DNS, TLS).
    Unreachable,
}

/// A fault for the next matching request: a canned answer, or a request or answer lost.
#[derive(Debug, Clone)]
pub struct Fault {
    pub bearer: Option<String>,
    pub path_suffix: Option<String>,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub effect: FaultEffect,
}

impl Fault {
    pub fn status(status: u16) -> Self {
        Self { bearer: None, path_suffix: None, status, headers: Vec::new(), body: String::new(), effect: FaultEffect::Canned }
    }
    /// Apple handles the request; the engine gets a network error instead of the answer.
    pub fn lost_answer() -> Self {
        Self { effect: FaultEffect::LoseAnswer, ..Self::status(0) }
    }
    /// The request never reaches Apple; the engine gets a network error.
    pub fn unreachable() -> Self {
        Self { effect: FaultEffect::Unreachable, ..Self::status(0) }
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

    /// The kind of fault, for counting (`FakeApple::fault_log`).
    pub fn label(&self) -> String {
        match self.effect {
            FaultEffect::LoseAnswer => "answer lost".to_owned(),
            FaultEffect::Unreachable => "network error".to_owned(),
            FaultEffect::Canned => {
                let number = serde_json::from_str::<Value>(&self.body).ok().and_then(|b| b["errorNumber"].as_i64());
                let retry_after = self.headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("retry-after"));
                match (number, retry_after) {
                    (_, true) => format!("{} + Retry-After", self.status),
                    (Some(n), false) => format!("{} ({n})", self.status),
                    (None, false) => format!("{}", self.status),
                }
            }
        }
    }
}

/// What happens to the next asynchronous event Apple starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventFault {
    /// Completes after this long instead of `event_delay` (`/status` says PENDING meanwhile).
    Slow(u64),
    /// Never completes: `/status` says PENDING for ever.
    Stuck,
    /// License events: completes FAILED, every task failed with this error number (no `errorInfo`).
    Failed(i64),
    /// License events: the tasks of every other target fail with this error number (at least one
    /// target fails, and one succeeds when there are two or more); `errorInfo` names them.
    Partial(i64),
}

impl EventFault {
    fn label(self) -> &'static str {
        match self {
            EventFault::Slow(_) => "event slow",
            EventFault::Stuck => "event stuck",
            EventFault::Failed(_) => "event failed",
            EventFault::Partial(_) => "event partly failed",
        }
    }
}

/// What happens to the next notification Apple sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotificationFault {
    /// Never delivered.
    Drop,
    /// Delivered twice (the copy this much later).
    Duplicate(u64),
    /// Delivered this much later (later notifications overtake it).
    Delay(u64),
}

impl NotificationFault {
    fn label(self) -> &'static str {
        match self {
            NotificationFault::Drop => "notification dropped",
            NotificationFault::Duplicate(_) => "notification duplicated",
            NotificationFault::Delay(_) => "notification delayed",
        }
    }
}

/// Notification floods (Apple Developer Forums 724381): each completed associate, disassociate or
/// revoke is notified as one `ASSET_MANAGEMENT` notification per app and result with at most
/// `max_assignments` assignments each, spread over `spread` after the completion in a scrambled
/// order, every `duplicate_every`-th of them delivered a second time (same id) later still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flood {
    pub max_assignments: usize,
    pub spread: u64,
    pub duplicate_every: usize,
}

/// A notification on its way to the MDM.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub at: u64,
    pub bearer: String,
    pub body: String,
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
    /// Once completed: the assignments a failed revoke task left in place.
    pub not_revoked: Vec<Value>,
    pub notified: bool,
    /// The fault injected into this event, if any.
    pub fault: Option<EventFault>,
}

pub struct FakeApple {
    pub orgs: HashMap<String, Org>,
    /// Tokens a newer download for the same location replaced: answered 401 / 9625.
    pub superseded: HashSet<String>,
    pub page_size: usize,
    pub limits: Value,
    pub faults: VecDeque<Fault>,
    pub after_page: Option<PageHook>,
    pub events: BTreeMap<String, AppleEvent>,
    /// How long an event takes to complete.
    pub event_delay: u64,
    /// Faults for the next events started, in order.
    pub event_faults: VecDeque<EventFault>,
    /// Faults for the next notifications sent, in order.
    pub notification_faults: VecDeque<NotificationFault>,
    /// Notifications not yet delivered (see [`FakeApple::take_notifications`]).
    pub outbox: Vec<Outgoing>,
    /// Asset events are notified as a flood while set.
    pub flood: Option<Flood>,
    /// How many faults of each kind took effect.
    pub fault_log: BTreeMap<String, u64>,
    /// Every assignment a completed disassociate or revoke removed: (event kind, assignment).
    pub release_log: Vec<(&'static str, Value)>,
    /// Associations Apple accepted although, with those still pending, they need more licenses
    /// than the pool has: one line each.
    pub overcommitted: Vec<String>,
    /// Events not completed yet: (complete_at, event id).
    incomplete: BTreeSet<(u64, String)>,
    next_event: u64,
}

pub struct Answer {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
    /// The answer never reaches the engine (it gets a network error instead).
    pub lost: bool,
}

impl FakeApple {
    pub fn new() -> Self {
        Self {
            orgs: HashMap::new(),
            superseded: HashSet::new(),
            page_size: 3,
            limits: json!({"maxAssets": 25, "maxUsers": 100, "maxClientUserIds": 1000, "maxSerialNumbers": 1000,
                           "maxRevokeSerialNumbers": 100, "maxRevokeClientUserIds": 100, "maxRequestPerSecond": 15}),
            faults: VecDeque::new(),
            after_page: None,
            events: BTreeMap::new(),
            event_delay: 2_000,
            event_faults: VecDeque::new(),
            notification_faults: VecDeque::new(),
            outbox: Vec::new(),
            flood: None,
            fault_log: BTreeMap::new(),
            release_log: Vec::new(),
            overcommitted: Vec::new(),
            incomplete: BTreeSet::new(),
            next_event: 0,
        }
    }

    fn count_fault(&mut self, label: &str) {
        *self.fault_log.entry(label.to_owned()).or_default() += 1;
    }

    /// When something next happens on Apple's side by itself: an event completes or a
    /// notification is due.
    pub fn next_activity_at(&self) -> u64 {
        let event = self.incomplete.first().map_or(u64::MAX, |(at, _)| *at);
        self.outbox.iter().map(|o| o.at).min().unwrap_or(u64::MAX).min(event)
    }

    /// Notifications due by `now` (bearer of the location, body), in delivery order.
    pub fn take_notifications(&mut self, now: u64) -> Vec<(String, String)> {
        self.complete_due(now);
        let (mut due, later): (Vec<Outgoing>, Vec<Outgoing>) = std::mem::take(&mut self.outbox).into_iter().partition(|o| o.at <= now);
        self.outbox = later;
        due.sort_by_key(|o| o.at);
        due.into_iter().map(|o| (o.bearer, o.body)).collect()
    }

    /// Sends a notification, through the next notification fault if any.
    fn send_notification(&mut self, now: u64, bearer: &str, body: String) {
        let fault = self.notification_faults.pop_front();
        if let Some(fault) = fault {
            self.count_fault(fault.label());
        }
        let at = match fault {
            None => now,
            Some(NotificationFault::Drop) => return,
            Some(NotificationFault::Duplicate(later)) => {
                self.outbox.push(Outgoing { at: now + later, bearer: bearer.to_owned(), body: body.clone() });
                now
            }
            Some(NotificationFault::Delay(later)) => now + later,
        };
        self.outbox.push(Outgoing { at, bearer: bearer.to_owned(), body });
    }

    /// The location's token was replaced by `new` (an uploaded renewal): requests with `old` are
    /// refused as an unknown token from now on; events started with it carry on.
    pub fn replace_token(&mut self, old: &str, new: &str) {
        let mut org = self.orgs.remove(old).expect("known token");
        org.token_state = TokenState::Valid;
        self.orgs.insert(new.to_owned(), org);
        for event in self.events.values_mut().filter(|e| e.bearer == old) {
            event.bearer = new.to_owned();
        }
        for outgoing in self.outbox.iter_mut().filter(|o| o.bearer == old) {
            outgoing.bearer = new.to_owned();
        }
    }

    /// An administrator downloaded the location's token again as `new`: the location carries on
    /// under it, and `old` is revoked (401 / 9625), as Apple does.
    pub fn download_new_token(&mut self, old: &str, new: &str) {
        self.replace_token(old, new);
        self.superseded.insert(old.to_owned());
    }

    /// The organization bought `count` more licenses of `adam_id` at `now`: Get Assets shows the
    /// new counts, and an `ASSET_COUNT` notification goes out.
    pub fn purchase(&mut self, bearer: &str, adam_id: &str, count: i64, now: u64) {
        let org = self.org(bearer);
        org.version += 1;
        let asset = org.assets.iter_mut().find(|a| a["adamId"] == adam_id).expect("known asset");
        for field in ["totalCount", "availableCount"] {
            asset[field] = json!(asset[field].as_i64().unwrap_or(0) + count);
        }
        self.next_event += 1;
        let notification = json!({"adamId": adam_id, "countDelta": count, "pricingParam": "STDQ"});
        let body = json!({"notificationId": format!("count-{}", self.next_event), "notificationType": "ASSET_COUNT",
                          "notification": notification, "uId": "1"});
        self.send_notification(now, bearer, body.to_string());
    }

    /// Completes every event due by `now`, and queues the notification of each completed event
    /// in the outbox (see [`FakeApple::take_notifications`]).
    pub fn complete_due(&mut self, now: u64) {
        while let Some((at, id)) = self.incomplete.first().cloned() {
            if at > now {
                break;
            }
            self.incomplete.pop_first();
            let event = self.events[&id].clone();
            let org = self.orgs.get_mut(&event.bearer).expect("event of a known org");
            let forced = match event.fault {
                Some(EventFault::Failed(number)) => Some((number, true)),
                Some(EventFault::Partial(number)) => Some((number, false)),
                _ => None,
            };
            let applied = apply_event(org, event.kind, &event.request, forced);
            for released in &applied.released {
                self.release_log.push((event.kind, released.clone()));
            }
            let stored = self.events.get_mut(&id).unwrap();
            stored.outcome = Some(applied.failures);
            stored.revoked = if event.kind == "REVOKE" { applied.released } else { Vec::new() };
            stored.not_revoked = applied.not_revoked;
            stored.notified = true;
            let stored = stored.clone();
            let completed = at.max(stored.complete_at);
            match self.flood {
                Some(flood) if event.kind != "CREATE" => {
                    for (i, body) in flood_of(&id, &stored, flood).into_iter().enumerate() {
                        // A scrambled order within the spread (a fixed permutation of the slots).
                        let slot = (i as u64 * 7_919) % (flood.spread + 1);
                        self.outbox.push(Outgoing { at: completed + slot, bearer: event.bearer.clone(), body: body.clone() });
                        if flood.duplicate_every > 0 && i % flood.duplicate_every == 0 {
                            self.outbox.push(Outgoing { at: completed + flood.spread + slot, bearer: event.bearer.clone(), body });
                        }
                    }
                    self.count_fault("notification flood");
                }
                _ => {
                    for body in notifications_of(&id, &stored, &self.orgs[&event.bearer]) {
                        self.send_notification(completed, &event.bearer, body);
                    }
                }
            }
        }
    }

    fn start_event(&mut self, bearer: &str, kind: &'static str, request: Value, now: u64) -> Value {
        self.next_event += 1;
        let id = format!("event-{}", self.next_event);
        if kind == "ASSOCIATE" {
            self.check_pool(bearer, &request);
        }
        let fault = self.event_faults.pop_front();
        if let Some(fault) = fault {
            self.count_fault(fault.label());
        }
        let complete_at = match fault {
            Some(EventFault::Slow(delay)) => now + delay,
            Some(EventFault::Stuck) => u64::MAX,
            _ => now + self.event_delay,
        };
        if complete_at != u64::MAX {
            self.incomplete.insert((complete_at, id.clone()));
        }
        self.events.insert(
            id.clone(),
            AppleEvent {
                bearer: bearer.to_owned(),
                kind,
                request,
                complete_at,
                outcome: None,
                revoked: Vec::new(),
                not_revoked: Vec::new(),
                notified: false,
                fault,
            },
        );
        json!({"eventId": id})
    }

    /// Records an association that, with the associations still pending, asks for more new
    /// assignments of an asset than it has available (events that never complete don't count).
    fn check_pool(&mut self, bearer: &str, request: &Value) {
        let org = &self.orgs[bearer];
        let named: HashSet<String> = request["assets"].as_array().into_iter().flatten().map(|a| text(&a["adamId"])).collect();
        let held: HashSet<(String, String)> = org
            .assignments
            .iter()
            .filter(|(_, a)| named.contains(&text(&a["adamId"])))
            .map(|(_, a)| (text(&a["adamId"]), target_of(a)))
            .collect();
        let pending = self
            .incomplete
            .iter()
            .filter_map(|(_, id)| self.events.get(id).map(|e| (id.as_str(), e)))
            .filter(|(_, e)| e.bearer == bearer && e.kind == "ASSOCIATE")
            .map(|(id, e)| (id, &e.request));
        let new_assets: BTreeSet<String> = tasks(request, "ASSOCIATE")
            .iter()
            .filter(|t| !held.contains(&(text(&t["adamId"]), target_of(t))))
            .map(|t| text(&t["adamId"]))
            .collect();
        // asset → new targets, and the pending events that want some of them
        let mut wanted: BTreeMap<String, (BTreeSet<String>, BTreeSet<&str>)> = BTreeMap::new();
        for (id, sent) in pending.chain(std::iter::once(("this request", request))) {
            for task in tasks(sent, "ASSOCIATE") {
                let (adam, target) = (text(&task["adamId"]), target_of(&task));
                if new_assets.contains(&adam) && !held.contains(&(adam.clone(), target.clone())) {
                    let entry = wanted.entry(adam).or_default();
                    entry.0.insert(target);
                    entry.1.insert(id);
                }
            }
        }
        for (adam, (targets, from)) in wanted {
            let available = org.assets.iter().find(|a| text(&a["adamId"]) == adam).and_then(|a| a["availableCount"].as_i64());
            if let Some(available) = available.filter(|&n| (targets.len() as i64) > n) {
                self.overcommitted.push(format!(
                    "asset {adam}: {} new assignments pending or requested ({targets:?}, from {from:?}), {available} available",
                    targets.len()
                ));
            }
        }
    }

    /// Requests Apple received for `path` (e.g. "assets/associate").
    pub fn events_of(&self, kind: &str) -> usize {
        self.events.values().filter(|e| e.kind == kind).count()
    }

    pub fn org(&mut self, bearer: &str) -> &mut Org {
        self.orgs.get_mut(bearer).expect("known token")
    }

    pub fn answer(&mut self, request: &Request, now: u64) -> Answer {
        // Events complete on Apple's clock, whether or not anyone asks: every answer sees them.
        self.complete_due(now);
        let (path, query) = split_url(&request.url);
        let bearer = request.headers.get("authorization").and_then(|h| h.strip_prefix("Bearer ")).map(str::to_owned);
        if let Some(index) = self.faults.iter().position(|f| {
            f.bearer.as_ref().is_none_or(|b| Some(b) == bearer.as_ref())
                && f.path_suffix.as_ref().is_none_or(|s| path.ends_with(s.as_str()))
        }) {
            let fault = self.faults.remove(index).unwrap();
            self.count_fault(&fault.label());
            return match fault.effect {
                FaultEffect::Canned => Answer { status: fault.status, headers: fault.headers.into_iter().collect(), body: fault.body, lost: false },
                FaultEffect::LoseAnswer => Answer { lost: true, ..self.answer(request, now) },
                FaultEffect::Unreachable => Answer { status: 0, headers: BTreeMap::new(), body: String::new(), lost: true },
            };
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
        if bearer.as_ref().is_some_and(|b| self.superseded.contains(b)) {
            return error(401, 9625, "The server has revoked the sToken.");
        }
        let Some(org) = bearer.as_ref().and_then(|b| self.orgs.get_mut(b)) else {
            return error(401, 9722, "Invalid authorization header");
        };
        match org.token_state {
            TokenState::Expired => return error(401, 9621, "The token has expired."),
            TokenState::Revoked => return error(401, 9625, "The server has revoked the sToken."),
            TokenState::Invalidated => return error(401, 9622, "Invalid authentication token."),
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
                match page(org.assets.iter(), page_index, self.page_size, "assets", org.version_id()) {
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
                // Apple's filters (`adamId`, `serialNumber`, `clientUserId`, `pricingParam`) narrow assignments.
                let filters: Vec<(&str, &String)> = ["adamId", "serialNumber", "clientUserId", "pricingParam"]
                    .into_iter()
                    .filter_map(|key| query.get(key).map(|value| (key, value)))
                    .filter(|_| resource == "assignments")
                    .collect();
                let records = source
                    .iter()
                    .filter(|(v, r)| *v > since && filters.iter().all(|(key, value)| r[*key].as_str() == Some(value.as_str())))
                    .map(|(_, r)| r);
                match page(records, page_index, self.page_size, resource, org.version_id()) {
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

/// The target of an assignment or task, as one string.
fn target_of(assignment: &Value) -> String {
    match (assignment["serialNumber"].as_str(), assignment["clientUserId"].as_str()) {
        (Some(serial), _) => format!("d:{serial}"),
        (None, Some(user)) => format!("u:{user}"),
        (None, None) => String::new(),
    }
}

/// A string field of a record (empty if absent).
fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// Whether `failures` name the task (a failure without `errorInfo` names every task).
fn failed_task(failures: &[Value], task: &Value) -> bool {
    failures.iter().any(|f| {
        let info = &f["errorInfo"];
        let hit = |key: &str, list: &str| info[list].as_array().is_some_and(|l| l.contains(&task[key]));
        info.is_null() || hit("serialNumber", "serialNumbers") || hit("clientUserId", "clientUserIds")
    })
}

/// The notification bodies of a completed event: `USER_MANAGEMENT` for user creation, else
/// `ASSET_MANAGEMENT` with the succeeded and the failed assignments.
fn notifications_of(id: &str, event: &AppleEvent, org: &Org) -> Vec<String> {
    let envelope = |suffix: &str, kind: &str, notification: Value| {
        json!({"notificationId": format!("n-{id}{suffix}"), "notificationType": kind, "notification": notification, "uId": "1"}).to_string()
    };
    if event.kind == "CREATE" {
        let created: Vec<Value> = event.request["users"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|u| org.users.iter().find(|(_, x)| x["clientUserId"] == u["clientUserId"]).map(|(_, x)| x.clone()))
            .collect();
        let notification = json!({"eventId": id, "result": "SUCCESS", "type": "CREATE", "users": created});
        return vec![envelope("", "USER_MANAGEMENT", notification)];
    }
    let failures = event.outcome.as_deref().unwrap_or_default();
    let (ok, failed): (Vec<Value>, Vec<Value>) = if event.kind == "REVOKE" {
        (event.revoked.clone(), event.not_revoked.clone())
    } else {
        tasks(&event.request, event.kind).into_iter().partition(|a| !failed_task(failures, a))
    };
    let mut bodies = Vec::new();
    for (result, list) in [("SUCCESS", ok), ("FAILURE", failed)] {
        if list.is_empty() {
            continue;
        }
        let mut notification = json!({"eventId": id, "result": result, "type": event.kind, "assignments": list});
        if result == "FAILURE" {
            notification["error"] = failures[0].clone();
        }
        bodies.push(envelope(&format!("-{result}"), "ASSET_MANAGEMENT", notification));
    }
    bodies
}

/// The flood of notifications of a completed asset event: per result and app, chunks of at most
/// `flood.max_assignments` assignments, each its own notification.
fn flood_of(id: &str, event: &AppleEvent, flood: Flood) -> Vec<String> {
    let failures = event.outcome.as_deref().unwrap_or_default();
    let (ok, failed): (Vec<Value>, Vec<Value>) = if event.kind == "REVOKE" {
        (event.revoked.clone(), event.not_revoked.clone())
    } else {
        tasks(&event.request, event.kind).into_iter().partition(|a| !failed_task(failures, a))
    };
    let mut bodies = Vec::new();
    for (result, list) in [("SUCCESS", ok), ("FAILURE", failed)] {
        let mut by_app: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for assignment in list {
            by_app.entry(text(&assignment["adamId"])).or_default().push(assignment);
        }
        for (adam_id, assignments) in by_app {
            for (k, chunk) in assignments.chunks(flood.max_assignments.max(1)).enumerate() {
                let mut notification = json!({"eventId": id, "result": result, "type": event.kind, "assignments": chunk});
                if result == "FAILURE" {
                    notification["error"] = failures[0].clone();
                }
                bodies.push(
                    json!({"notificationId": format!("n-{id}-{result}-{adam_id}-{k}"), "notificationType": "ASSET_MANAGEMENT",
                           "notification": notification, "uId": "1"})
                    .to_string(),
                );
            }
        }
    }
    bodies
}

/// What a completed event did.
struct Applied {
    /// failures[] of the status answer.
    failures: Vec<Value>,
    /// Assignments a disassociate or revoke removed.
    released: Vec<Value>,
    /// Assignments a failed revoke task left in place.
    not_revoked: Vec<Value>,
}

/// Applies a completed event to the org. `forced` (error number, every target?) makes targets
/// fail: all of them, or every other one (the first always), with one failure naming them.
/// The error numbers Apple documents for a task of an asynchronous event (`/status` `failures[]`
/// or a notification's `error`), with Apple's messages.
pub const ASYNC_ERRORS: [(i64, &str); 7] = [
    (9603, "Internal error."),
    (9609, "Registered user not found."),
    (9635, "Unable to associate the Apple Account with this user."),
    (9641, "The Apple Account is already associated with another user."),
    (9644, "The service is in maintenance mode. Try again later."),
    (9709, "There aren't enough assets available to complete this association."),
    (9716, "A registered user already exists with the specified clientUserId."),
];

pub fn async_error_message(number: i64) -> &'static str {
    ASYNC_ERRORS.iter().find(|(n, _)| *n == number).map_or("Apple could not complete the request (injected)", |(_, m)| m)
}

fn apply_event(org: &mut Org, kind: &str, request: &Value, forced: Option<(i64, bool)>) -> Applied {
    let mut failures = Vec::new();
    let mut released = Vec::new();
    let mut not_revoked = Vec::new();
    if kind == "CREATE" {
        // User creation never fails by injection: the engine would (rightly) stop asking.
        for user in request["users"].as_array().into_iter().flatten() {
            org.version += 1;
            let status = if user.get("managedAppleId").is_some() { "Associated" } else { "Registered" };
            let id = user["clientUserId"].clone();
            org.users.retain(|(_, u)| u["clientUserId"] != id);
            let record = json!({"clientUserId": id, "email": user["email"], "status": status, "inviteCode": format!("code-{}", id.as_str().unwrap())});
            org.users.push((org.version, record));
        }
        return Applied { failures, released, not_revoked };
    }
    let serials: Vec<Value> = request["serialNumbers"].as_array().cloned().unwrap_or_default();
    let users: Vec<Value> = request["clientUserIds"].as_array().cloned().unwrap_or_default();
    let mut forced_out: HashSet<String> = HashSet::new();
    if let Some((number, all)) = forced {
        let targets: Vec<(&str, &Value)> = serials.iter().map(|s| ("serialNumbers", s)).chain(users.iter().map(|u| ("clientUserIds", u))).collect();
        let chosen: Vec<(&str, &Value)> = targets.into_iter().enumerate().filter(|(i, _)| all || i % 2 == 0).map(|(_, t)| t).collect();
        let message = async_error_message(number);
        if all {
            failures.push(json!({"errorNumber": number, "errorMessage": message}));
        } else {
            let mut info = serde_json::Map::new();
            for (list, target) in &chosen {
                info.entry(*list).or_insert_with(|| json!([])).as_array_mut().unwrap().push((*target).clone());
            }
            failures.push(json!({"errorNumber": number, "errorMessage": message, "errorInfo": info}));
        }
        for (list, target) in chosen {
            let key = if list == "serialNumbers" { json!({"serialNumber": target}) } else { json!({"clientUserId": target}) };
            forced_out.insert(target_of(&key));
        }
    }
    // Only an association needs to know what is held already (of the assets it names).
    let named: HashSet<String> = request["assets"].as_array().into_iter().flatten().map(|a| text(&a["adamId"])).collect();
    let mut held: HashSet<(String, String)> = if kind == "ASSOCIATE" {
        org.assignments.iter().filter(|(_, a)| named.contains(&text(&a["adamId"]))).map(|(_, a)| (text(&a["adamId"]), target_of(a))).collect()
    } else {
        HashSet::new()
    };
    let known_users: HashSet<String> = org.users.iter().map(|(_, u)| text(&u["clientUserId"])).collect();
    let revocable: HashSet<String> =
        org.assets.iter().filter(|a| a["revocable"] == true).map(|a| text(&a["adamId"])).collect();
    let mut releasing: HashSet<(String, String)> = HashSet::new();
    for task in tasks(request, kind) {
        let key = (text(&task["adamId"]), target_of(&task));
        if forced_out.contains(&key.1) {
            continue;
        }
        if kind != "ASSOCIATE" {
            releasing.insert(key);
            continue;
        }
        if task.get("clientUserId").is_some() && !known_users.contains(&text(&task["clientUserId"])) {
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
    if kind == "REVOKE" {
        not_revoked = org
            .assignments
            .iter()
            .filter(|(_, a)| forced_out.contains(&target_of(a)) && revocable.contains(&text(&a["adamId"])))
            .map(|(_, a)| a.clone())
            .collect();
    }
    if !releasing.is_empty() {
        let revoked_targets: HashSet<String> = releasing.iter().map(|(_, t)| t.clone()).collect();
        let before = org.assignments.len();
        org.assignments.retain(|(_, a)| {
            let adam = text(&a["adamId"]);
            let matches = if kind == "REVOKE" {
                revoked_targets.contains(&target_of(a))
            } else {
                releasing.contains(&(adam.clone(), target_of(a)))
            };
            let release = matches && revocable.contains(&adam);
            if release {
                released.push(a.clone());
            }
            !release
        });
        if org.assignments.len() != before {
            org.version += 1;
        }
        org.recount();
    }
    Applied { failures, released, not_revoked }
}

fn page<'a>(records: impl Iterator<Item = &'a Value> + Clone, index: usize, size: usize, key: &str, version_id: String) -> Result<Value, Answer> {
    let total_pages = records.clone().count().div_ceil(size).max(1);
    if index >= total_pages {
        return Err(error(400, 9650, "The provided page index must be greater than 0, and less than the total number of pages."));
    }
    let slice: Vec<Value> = records.skip(index * size).take(size).cloned().collect();
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
    Answer { status: 200, headers: BTreeMap::new(), body: body.to_string(), lost: false }
}

pub fn error(status: u16, number: i64, message: &str) -> Answer {
    Answer {
        status,
        headers: BTreeMap::new(),
        body: json!({"errorNumber": number, "errorMessage": message}).to_string(),
        lost: false,
    }
}
