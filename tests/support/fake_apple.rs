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

pub struct FakeApple {
    pub orgs: HashMap<String, Org>,
    pub page_size: usize,
    pub limits: Value,
    pub faults: VecDeque<Fault>,
    pub after_page: Option<PageHook>,
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
        }
    }

    pub fn org(&mut self, bearer: &str) -> &mut Org {
        self.orgs.get_mut(bearer).expect("known token")
    }

    pub fn answer(&mut self, request: &Request) -> Answer {
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
