//! Who manages the account's location: reading client config, claiming an unclaimed location
//! with our `mdmInfo`, Reclaim Ownership from another MDM, losing it when another MDM's
//! `mdmInfo` appears in any answer — and the administrator's connectivity test, which reads the
//! same client config.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::account::{Account, AccountRequest};
use crate::account::answers::parse;
use crate::apple::wire::{ClaimRequest, ClientConfig, MdmInfo, NOTIFICATION_TYPES};
use crate::contract::event::Event;
use crate::contract::output::Method;
use crate::effects::{AccountEffects, Env};
use crate::persist::Ownership;

/// What `encodeURIComponent` leaves alone; everything else in an account id is percent-encoded
/// in the notification URL (a path segment: a space must be `%20`, not `+`).
const PATH_SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A request about the location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocationRequest {
    /// `GET /client/config` to see who manages the location.
    ReadClientConfig,
    /// `POST /client/config` with our `mdmInfo`.
    Claim,
    /// The administrator's Test (`GET /client/config`).
    Test,
}

impl LocationRequest {
    /// The request's `purpose` in the output.
    pub fn name(self) -> &'static str {
        match self {
            LocationRequest::ReadClientConfig => "clientConfig",
            LocationRequest::Claim => "claimOwnership",
            LocationRequest::Test => "testAccount",
        }
    }
}

/// Where the account is in verifying or claiming ownership of its location.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    NeedRead,
    Reading,
    NeedClaim,
    Claiming,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TestState {
    Idle,
    Queued,
    InFlight,
}

/// The location and who manages it.
#[derive(Debug, Clone)]
pub struct Location {
    /// Who manages the location, as far as the engine knows (durable).
    pub ownership: Ownership,
    /// The administrator chose Reclaim Ownership and the claim has not succeeded yet: a restart
    /// claims again instead of forgetting the choice (durable).
    pub claim_requested: bool,
    /// Apple's id of the location (`uId`), its name and country, from client config (durable).
    pub u_id: Option<String>,
    pub name: Option<String>,
    pub country_code: Option<String>,
    /// `None` once ownership is settled.
    check: Option<Check>,
    test: TestState,
}

impl Location {
    /// The location as stored; what to verify or claim first follows from it.
    pub fn new(ownership: Ownership, claim_requested: bool, u_id: Option<String>, name: Option<String>, country_code: Option<String>) -> Self {
        let check = match ownership {
            _ if claim_requested => Some(Check::NeedClaim),
            Ownership::Unknown => Some(Check::NeedRead),
            Ownership::Ours | Ownership::Other(_) => None,
        };
        Self { ownership, claim_requested, u_id, name, country_code, check, test: TestState::Idle }
    }

    /// Why the account sends nothing, when another MDM holds the location.
    pub fn stop_reason(&self) -> Option<String> {
        match (&self.ownership, self.check) {
            (Ownership::Other(info), None) => Some(format!(
                "Owned by another MDM ({}). Choose Reclaim Ownership to manage it here; no requests are sent until then.",
                info.name
            )),
            _ => None,
        }
    }

    /// What the account is doing while ownership is being verified or claimed.
    pub fn checking(&self) -> Option<&'static str> {
        match self.check? {
            Check::NeedClaim | Check::Claiming => Some("Claiming the location for this MDM"),
            Check::NeedRead | Check::Reading => Some("Checking which MDM manages the location"),
        }
    }

    /// Whether the location is ours and verified: license operations may be sent.
    pub fn managed_by_us(&self) -> bool {
        self.ownership == Ownership::Ours && self.check.is_none()
    }

    /// Whether a location request waits to be sent.
    pub fn wants_to_send(&self) -> bool {
        self.test == TestState::Queued || matches!(self.check, Some(Check::NeedRead | Check::NeedClaim))
    }

    /// Queues the administrator's Test.
    pub fn queue_test(&mut self) {
        if self.test == TestState::Idle {
            self.test = TestState::Queued;
        }
    }

    /// Whether a Test is queued or running (its result is still due).
    pub fn test_running(&self) -> bool {
        self.test != TestState::Idle
    }

    /// The Test's answer arrived (or is ignored).
    pub fn test_answered(&mut self) {
        self.test = TestState::Idle;
    }

    /// Reclaim Ownership: only when another MDM holds the location.
    pub fn reclaim(&mut self) -> Result<(), String> {
        if !matches!(self.ownership, Ownership::Other(_)) {
            return Err("the location is not owned by another MDM".to_owned());
        }
        self.check = Some(Check::NeedClaim);
        self.claim_requested = true;
        Ok(())
    }

    /// Forgets the client config (the token is of another organization now).
    pub fn forget_client_config(&mut self) {
        self.u_id = None;
        self.name = None;
        self.country_code = None;
    }

    /// A new token: who manages the location is read again, nothing claimed yet.
    pub fn verify_again_from_scratch(&mut self) {
        self.ownership = Ownership::Unknown;
        self.claim_requested = false;
        self.check = Some(Check::NeedRead);
    }

    /// Reads who manages the location again.
    pub fn verify_again(&mut self) {
        self.check = Some(Check::NeedRead);
    }

    /// The account stops: no location request is due.
    pub fn halt(&mut self) {
        self.check = None;
        self.test = TestState::Idle;
    }

    /// The next location request, if one is due (marked as sent).
    pub fn next_request(&mut self, account_id: &str, env: &Env<'_>) -> Option<AccountRequest> {
        let url = &env.service.urls.client_config;
        let get = |request| AccountRequest { purpose: request, method: Method::Get, url: url.clone(), body: None };
        if self.test == TestState::Queued {
            self.test = TestState::InFlight;
            return Some(get(LocationRequest::Test.into()));
        }
        match self.check {
            Some(Check::NeedRead) => {
                self.check = Some(Check::Reading);
                Some(get(LocationRequest::ReadClientConfig.into()))
            }
            Some(Check::NeedClaim) => {
                self.check = Some(Check::Claiming);
                let notifications = env.config.notifications.as_ref();
                let claim = ClaimRequest {
                    mdm_info: &env.config.mdm_info,
                    notification_url: notifications.map(|n| {
                        let id = utf8_percent_encode(account_id, PATH_SEGMENT);
                        format!("{}/{id}", n.url.trim_end_matches('/'))
                    }),
                    notification_auth_token: notifications.map(|n| n.auth_token.expose()),
                    notification_types: notifications.map(|_| NOTIFICATION_TYPES),
                };
                let body = serde_json::to_string(&claim).expect("a claim request always serializes");
                Some(AccountRequest { purpose: LocationRequest::Claim.into(), method: Method::Post, url: url.clone(), body: Some(body) })
            }
            _ => None,
        }
    }

    /// Puts a request whose answer was a retryable failure back in line.
    pub fn retry(&mut self, request: LocationRequest) {
        match request {
            LocationRequest::ReadClientConfig => self.check = Some(Check::NeedRead),
            LocationRequest::Claim => self.check = Some(Check::NeedClaim),
            LocationRequest::Test => self.test = TestState::Queued,
        }
    }

    fn apply(&mut self, config: ClientConfig) {
        if config.location_name.is_some() {
            self.name = config.location_name;
        }
        if config.country_code.is_some() {
            self.country_code = config.country_code;
        }
        if config.u_id.is_some() {
            self.u_id = config.u_id;
        }
    }
}

impl Account {
    /// Apple answered a location request; `ours`: the answer carried our `mdmInfo`.
    pub(super) fn location_succeeded(&mut self, request: LocationRequest, body: &str, ours: bool, fx: &mut AccountEffects<'_>) -> Result<(), String> {
        let config: ClientConfig = parse(body)?;
        self.location.apply(config);
        fx.record_changed();
        match request {
            LocationRequest::ReadClientConfig if ours => self.become_owner(false, fx),
            LocationRequest::ReadClientConfig => self.location.check = Some(Check::NeedClaim),
            LocationRequest::Claim => self.become_owner(true, fx),
            LocationRequest::Test => {
                self.location.test_answered();
                let location = self.location.name.clone().unwrap_or_else(|| "(unnamed)".to_owned());
                let owner = if ours { "managed by this MDM" } else { "not claimed by any MDM yet" };
                fx.event(self.test_result(true, format!("Token valid; reached Apple; location {location} is {owner}")));
            }
        }
        Ok(())
    }

    fn become_owner(&mut self, claimed_now: bool, fx: &mut AccountEffects<'_>) {
        let location = &mut self.location;
        let first_time = location.ownership != Ownership::Ours;
        location.ownership = Ownership::Ours;
        location.claim_requested = false;
        location.check = None;
        fx.record_changed();
        if claimed_now {
            fx.event(Event::OwnershipClaimed { account_id: self.id.clone() });
        }
        if first_time || self.schedule.last_synced_at.is_none() {
            self.schedule.request_full();
        }
    }

    /// Apple refused a location request; whether that was handled here (else it is retried with backoff).
    pub(super) fn location_rejected(&mut self, request: LocationRequest, reason: &str, fx: &mut AccountEffects<'_>) -> bool {
        if request != LocationRequest::Test {
            return false;
        }
        self.location.test_answered();
        fx.event(self.test_result(false, reason.to_owned()));
        true
    }

    /// Apple echoes `mdmInfo` in every answer once set; an answer without it means someone
    /// cleared it. Read the client config again (and claim if the location is unclaimed), then
    /// start the interrupted refresh over.
    pub(super) fn verify_ownership_again(&mut self) {
        self.location.verify_again();
        if self.schedule.abandon_run().is_some() {
            self.schedule.request_full();
        }
    }

    /// Another MDM's `mdmInfo` is on the location: every request stops until Reclaim Ownership.
    pub(super) fn lose_ownership(&mut self, info: MdmInfo, env: &Env<'_>, fx: &mut AccountEffects<'_>) {
        if self.location.test_running() {
            fx.event(self.test_result(false, format!("The location is managed by another MDM ({})", info.name)));
        }
        fx.event(Event::OwnershipLost { account_id: self.id.clone(), owner_name: info.name.clone(), owner_id: info.id.clone() });
        self.location.ownership = Ownership::Other(info);
        self.location.claim_requested = false;
        self.halt_work(env, fx);
    }
}
