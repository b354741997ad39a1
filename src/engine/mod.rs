//! The engine: the one object a host drives. See the crate documentation for the run loop.
//!
//! `mod.rs` drives (inputs, scheduling, outputs) and answers read models; `licensing.rs` holds
//! the license commands, facts and notifications; `records.rs` turns state into store records
//! and back.

/// The context an account works in, borrowed from the engine's fields (not from `self` as a
/// whole, so that an account can be borrowed mutably at the same time).
macro_rules! account_ctx {
    ($engine:ident, $now:expr, $events:expr) => {
        Ctx {
            now: $now,
            config: &$engine.config,
            service: &$engine.service,
            rng: &mut $engine.rng,
            events: $events,
            notify_users: $engine.notify_users,
        }
    };
}

mod licensing;
mod notifications;
mod read_model;
mod records;

use std::collections::{BTreeMap, HashMap, VecDeque};

use std::collections::BTreeSet;

use crate::account::{Account, AccountRequest, Ctx, Purpose};
use crate::facts::Facts;
use crate::licenses::coalesce::CoalescePolicy;
use notifications::Deduper;
use crate::apple::outcome::{classify, Classified, HttpAnswer, Outcome};
use crate::apple::service_config::ServiceConfigResponse;
use crate::apple::ServiceConfig;
use crate::apple::token::SToken;
use crate::base::time::{format_utc, Clock, Millis};
use crate::contract::config::EngineConfig;
use crate::contract::error::EngineError;
use crate::contract::event::Event;
use crate::contract::input::Input;
use crate::contract::output::{Method, Output, PersistOp, Request};
use crate::contract::views::EngineStats;
use crate::persist::{Record, StoredRecord};
use crate::persist::keys::{self, account_key};
use crate::policy::AppPolicy;

/// Store records after which [`Engine::drain_outputs`] ends a batch early, so that a host never
/// holds the whole first write of a million-assignment mirror at once; also the most mirror
/// records one `Persist` output carries.
pub const DRAIN_BATCH_RECORDS: usize = 5_000;

/// Longest account or policy id accepted.
const MAX_ID_LENGTH: usize = 256;

/// What an in-flight request is for.
#[derive(Debug, Clone)]
enum InFlight {
    ServiceConfig,
    Account { account_id: String, purpose: Purpose, sent_at: Millis },
}

/// The service config fetch schedule.
#[derive(Debug)]
struct ServiceSchedule {
    next_at: Millis,
    in_flight: bool,
    failures: u32,
}

/// The license engine. One instance drives every account of one MDM installation.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    clock: Clock,
    rng: fastrand::Rng,
    service: ServiceConfig,
    schedule: ServiceSchedule,
    accounts: BTreeMap<String, Account>,
    policies: BTreeMap<String, AppPolicy>,
    in_flight: HashMap<u64, InFlight>,
    next_request_id: u64,
    outputs: VecDeque<Output>,
    /// Deletions and policy writes not yet emitted (account records are written from `dirty`).
    pending_ops: Vec<PersistOp>,
    stats: EngineStats,
    facts: Facts,
    /// Device and user facts whose records must be written.
    dirty_devices: BTreeSet<String>,
    dirty_users: BTreeSet<String>,
    /// The license removal notification toggle.
    notify_users: bool,
    notifications_seen: Deduper,
    next_reconcile_at: Millis,
}

impl Engine {
    /// Creates an engine with no accounts. `now` is the host's current Unix time in ms.
    pub fn new(config: EngineConfig, now: Millis) -> Result<Self, EngineError> {
        config.validate()?;
        let notify_users = config.license_removal_notification;
        let next_reconcile_at = now + config.reconcile_interval_ms;
        Ok(Self {
            rng: fastrand::Rng::with_seed(config.seed),
            service: ServiceConfig::defaults(&config.service_config_url),
            schedule: ServiceSchedule { next_at: now, in_flight: false, failures: 0 },
            config,
            clock: Clock::new(now),
            accounts: BTreeMap::new(),
            policies: BTreeMap::new(),
            in_flight: HashMap::new(),
            next_request_id: 1,
            outputs: VecDeque::new(),
            pending_ops: Vec::new(),
            stats: EngineStats::default(),
            facts: Facts::default(),
            dirty_devices: BTreeSet::new(),
            dirty_users: BTreeSet::new(),
            notify_users,
            notifications_seen: Deduper::default(),
            next_reconcile_at,
        })
    }

    /// Rebuilds an engine from the records a store holds (everything it was given through
    /// `Output::Persist`). Call at start-up, instead of [`Engine::new`], when the store is not empty.
    /// Requests that were in flight when the previous instance stopped are not resumed: their
    /// work is requested again.
    pub fn restore(config: EngineConfig, records: Vec<StoredRecord>, now: Millis) -> Result<Self, EngineError> {
        let mut engine = Self::new(config, now)?;
        engine.load_records(records)?;
        Ok(engine)
    }

    /// Takes over one account while running, from a store's records: call when this instance
    /// acquires the account's lease (several backends on one store). Pass everything the store
    /// holds; records of other accounts are skipped. The account's policies, and the device and
    /// user facts and settings, are (re)loaded from the records. Then drain [`Engine::poll_output`].
    pub fn adopt(&mut self, account_id: &str, records: Vec<StoredRecord>, now: Millis) -> Result<(), EngineError> {
        self.advance_clock(now);
        if self.accounts.contains_key(account_id) {
            return Err(EngineError::AccountExists(account_id.to_owned()));
        }
        let records: Vec<StoredRecord> = records
            .into_iter()
            .filter(|r| keys::is_global(&r.key) || keys::belongs_to_account(r, account_id))
            .collect();
        if !records.iter().any(|r| r.key == account_key(account_id)) {
            return Err(EngineError::UnknownAccount(account_id.to_owned()));
        }
        // Loading into a copy keeps the engine unchanged when a record is refused.
        let mut loaded = Self::new(self.config.clone(), self.clock.now())?;
        loaded.load_records(records)?;
        self.facts = loaded.facts;
        self.notify_users = loaded.notify_users;
        self.policies.extend(loaded.policies);
        self.accounts.extend(loaded.accounts);
        self.pending_ops.extend(loaded.pending_ops);
        Ok(())
    }

    /// Stops driving an account without deleting its records: call at once when this instance
    /// loses the account's lease (another instance drives it now). Nothing more is sent, written
    /// for it; events already produced are still delivered; answers to its requests still in
    /// flight count as unknown.
    pub fn release(&mut self, account_id: &str, now: Millis) -> Result<(), EngineError> {
        self.advance_clock(now);
        self.account(account_id)?;
        self.accounts.remove(account_id);
        self.policies.retain(|_, p| p.account_id != account_id);
        self.forget_in_flight(account_id);
        self.outputs.retain(|output| !matches!(output, Output::Request(r) if r.account_id.as_deref() == Some(account_id)));
        Ok(())
    }

    // ===================================================================== drive

    /// Feeds one input. Call for every administrator command, every answer to a request,
    /// and when the timer fires; then drain [`Engine::poll_output`] until it returns a timeout.
    ///
    /// Bad input is refused with an error and changes nothing.
    pub fn handle_input(&mut self, input: Input, now: Millis) -> Result<(), EngineError> {
        let now = self.advance_clock(now);
        let mut events = Vec::new();
        match input {
            Input::AddAccount { account_id, name, token } => self.add_account(account_id, name, &token, now)?,
            Input::EditAccount { account_id, name, token } => self.edit_account(&account_id, name, token, now)?,
            Input::DeleteAccount { account_id } => self.delete_account(&account_id)?,
            Input::TestAccount { account_id } => self.account_mut(&account_id)?.request_test(&mut events),
            Input::Refresh { account_id } => {
                let account = self.account_mut(&account_id)?;
                account.request_refresh().map_err(|reason| EngineError::NotAllowed { account_id, reason })?;
            }
            Input::ReclaimOwnership { account_id } => {
                let account = self.account_mut(&account_id)?;
                account.reclaim_ownership().map_err(|reason| EngineError::NotAllowed { account_id, reason })?;
            }
            Input::SetPolicy { policy } => self.set_policy(policy)?,
            Input::RemovePolicy { policy_id } => self.remove_policy(&policy_id)?,
            Input::UpdatePolicyTargets { policy_id, add, remove } => self.update_policy_targets(&policy_id, add, remove)?,
            Input::DeviceEnrolled { serial_number, client_user_id, shared_ipad, enrollment_id } => {
                self.device_enrolled(serial_number, client_user_id, shared_ipad, enrollment_id, &mut events)?
            }
            Input::DeviceRetired { serial_number } => self.device_retired(serial_number)?,
            Input::AppInstalled { serial_number, adam_id } => self.app_installed(&serial_number, &adam_id)?,
            Input::AppRemoved { serial_number, adam_id } => {
                self.hold_device_app(&serial_number, &adam_id, "the user removed the app from the device")?
            }
            Input::InstallFailed { serial_number, adam_id, cancelled } => {
                let reason = if cancelled { "the installation was cancelled" } else { "the installation failed" };
                self.hold_device_app(&serial_number, &adam_id, reason)?
            }
            Input::AppConvertedToManaged { serial_number, adam_id } => {
                self.app_installed(&serial_number, &adam_id)?;
                self.license_ready_again(&serial_number, Some(&adam_id), &mut events)?;
            }
            Input::UpdatePush { serial_number, adam_id } => {
                self.license_ready_again(&serial_number, Some(&adam_id), &mut events)?
            }
            Input::UserAdded { client_user_id, email, managed_apple_id } => {
                self.user_added(client_user_id, email, managed_apple_id)?
            }
            Input::UserRemoved { client_user_id } => self.user_removed(client_user_id)?,
            Input::ReclaimLicense { account_id, adam_id, pricing_param, serial_number, client_user_id } => {
                self.reclaim_license(&account_id, &adam_id, pricing_param, serial_number, client_user_id)?
            }
            Input::ReclaimApp { account_id, adam_id, pricing_param } => {
                self.reclaim_where(&account_id, |mirror, key| {
                    key.asset.pricing == pricing_param && mirror.name(key.asset.adam_id) == adam_id
                })?
            }
            Input::ReclaimAccount { account_id } => self.reclaim_where(&account_id, |_, _| true)?,
            Input::Reconcile => self.reconcile(now),
            Input::CleanUp { account_id } => self.account_mut(&account_id)?.licenses.request_clean_up(),
            Input::SetLicenseRemovalNotification { enabled } => {
                self.notify_users = enabled;
                self.pending_ops.push(records::settings_op(enabled));
            }
            Input::Response { id, status, headers, body } => {
                // Ordered sets and maps are filled by `extend`: `collect` (their `FromIterator`) links one stable-sort
                // copy per element type into the wasm (issue 7's size target); only 1M-key sets keep it.
                let mut lowered = BTreeMap::new();
                lowered.extend(headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)));
                let headers = lowered;
                if let Some(request) = self.take_in_flight(id) {
                    self.dispatch_answer(request, Ok(HttpAnswer { status, headers: &headers, body: &body }), &mut events);
                }
            }
            Input::NetworkError { id, message } => {
                if let Some(request) = self.take_in_flight(id) {
                    self.dispatch_answer(request, Err(&message), &mut events);
                }
            }
            Input::Timeout => {}
        }
        self.emit_events(events);
        self.settle(false);
        Ok(())
    }

    /// The next thing for the host to do. Call after every [`Engine::handle_input`] until it
    /// returns [`Output::Timeout`]; then wait until that time (or the next input).
    pub fn poll_output(&mut self, now: Millis) -> Output {
        let now = self.advance_clock(now);
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        self.do_due_work(now);
        self.settle(true);
        self.outputs.pop_front().unwrap_or_else(|| Output::Timeout { at: self.next_wakeup().at })
    }

    /// The outputs due at `now`, in order, as calling [`Engine::poll_output`] yields them, in
    /// one batch that ends with the [`Output::Timeout`] — or, once the batch holds
    /// [`DRAIN_BATCH_RECORDS`] store records (the first full refresh of a large account), ends
    /// early without it: then handle the batch and call again, until a batch ends with the
    /// timeout. Call after [`Engine::handle_input`] when the host handles outputs in batches (the
    /// wasm binding's `pollOutputs`, one boundary crossing per batch).
    pub fn drain_outputs(&mut self, now: Millis) -> Vec<Output> {
        let mut outputs = Vec::with_capacity(self.outputs.len() + 1);
        let mut records = 0;
        loop {
            let output = self.poll_output(now);
            let timeout = matches!(output, Output::Timeout { .. });
            if let Output::Persist { ops } = &output {
                records += ops.len();
            }
            outputs.push(output);
            if timeout || records >= DRAIN_BATCH_RECORDS {
                return outputs;
            }
        }
    }

    /// Moves the engine's clock to the host's `now`. After a glitch (the clock had run ahead and is set
    /// back), every deadline derived from the glitched time is brought back within its own interval
    /// of `now`: a poll due in an hour is due in 30 s again.
    fn advance_clock(&mut self, now: Millis) -> Millis {
        let now = self.clock.advance(now);
        if self.clock.take_rewind() {
            self.stats.clock_rewinds += 1;
            self.schedule.next_at = self.schedule.next_at.min(now + self.config.service_config_interval_ms);
            self.next_reconcile_at = self.next_reconcile_at.min(now + self.config.reconcile_interval_ms);
            for account in self.accounts.values_mut() {
                account.clock_rewound(now, &self.config);
            }
        }
        now
    }

    /// Answers to an account's requests still in flight will count as unknown.
    fn forget_in_flight(&mut self, account_id: &str) {
        self.in_flight.retain(|_, f| !matches!(f, InFlight::Account { account_id: a, .. } if a == account_id));
    }

    fn take_in_flight(&mut self, id: u64) -> Option<InFlight> {
        let found = self.in_flight.remove(&id);
        match found {
            Some(_) => self.stats.responses_handled += 1,
            None => self.stats.unknown_responses += 1,
        }
        found
    }

    fn dispatch_answer(&mut self, request: InFlight, answer: Result<HttpAnswer<'_>, &str>, events: &mut Vec<Event>) {
        let now = self.clock.now();
        match request {
            InFlight::ServiceConfig => {
                let answer = answer.map(|a| (classify(a.status, a.headers, a.body, now), a.body));
                self.service_config_answered(answer, events);
            }
            InFlight::Account { account_id, purpose, sent_at } => {
                let Some(account) = self.accounts.get_mut(&account_id) else { return };
                let mut ctx = account_ctx!(self, now, events);
                match answer {
                    Ok(answer) => account.handle_response(purpose, sent_at, answer, &mut ctx),
                    Err(message) => account.handle_network_error(purpose, sent_at, message, &mut ctx),
                }
            }
        }
    }

    fn service_config_answered(&mut self, answer: Result<(Classified, &str), &str>, events: &mut Vec<Event>) {
        let now = self.clock.now();
        self.schedule.in_flight = false;
        let outcome = match answer {
            Ok((classified, body)) => match classified.outcome {
                Outcome::Success => match serde_json::from_str::<ServiceConfigResponse>(body) {
                    Ok(response) => {
                        let before = self.service.clone();
                        self.service.apply(&response);
                        if self.service != before {
                            events.push(Event::ServiceConfigUpdated { limits: self.service.limits.raw.clone() });
                        }
                        self.schedule.failures = 0;
                        self.schedule.next_at = now + self.config.service_config_interval_ms;
                        return;
                    }
                    Err(e) => Outcome::Transient { reason: format!("unreadable service config: {e}") },
                },
                other => other,
            },
            Err(message) => Outcome::Transient { reason: format!("network error: {message}") },
        };
        let (until, reason) = match outcome {
            Outcome::RetryAfter { until, reason } => (until, reason),
            Outcome::Transient { reason }
            | Outcome::TokenInvalid { reason, .. }
            | Outcome::Rejected { reason, .. } => {
                self.schedule.failures = self.schedule.failures.saturating_add(1);
                (now + self.config.backoff().delay(self.schedule.failures, &mut self.rng), reason)
            }
            Outcome::Success => unreachable!("handled above"),
        };
        self.schedule.next_at = until;
        events.push(Event::Backoff {
            account_id: None,
            until,
            reason: format!("Service config retried at {}: {reason}", format_utc(until)),
        });
    }

    /// Time-driven work and sending every request that may go now.
    fn do_due_work(&mut self, now: Millis) {
        if now >= self.schedule.next_at && !self.schedule.in_flight {
            self.schedule.in_flight = true;
            let url = self.config.service_config_url.clone();
            self.issue(None, InFlight::ServiceConfig, "serviceConfig", Method::Get, url, None, BTreeMap::new());
        }
        if now >= self.next_reconcile_at {
            self.reconcile(now);
        }
        let mut events = Vec::new();
        let mut requests = Vec::new();
        let rate_limit = self.service.limits.max_request_per_second;
        let coalescing = CoalescePolicy::new(&self.config, &self.service.limits);
        for account in self.accounts.values_mut() {
            let mut ctx = account_ctx!(self, now, &mut events);
            account.tick(&mut ctx);
            if account.licenses.wants_plan() && account.license_plan_due(now, &coalescing) {
                account.plan_licenses(&self.facts, &mut ctx);
            }
            while account.may_send(now, rate_limit) {
                let Some(request) = account.next_request(&ctx) else { break };
                requests.push((account.id.clone(), account.token.bearer().expose().to_owned(), request));
            }
        }
        for (account_id, bearer, AccountRequest { purpose, method, url, body }) in requests {
            let mut headers = BTreeMap::from([("authorization".to_owned(), format!("Bearer {bearer}"))]);
            if body.is_some() {
                headers.insert("content-type".to_owned(), "application/json".to_owned());
            }
            let name = purpose.name();
            let in_flight = InFlight::Account { account_id: account_id.clone(), purpose, sent_at: now };
            self.issue(Some(account_id), in_flight, name, method, url, body, headers);
        }
        self.emit_events(events);
    }

    #[allow(clippy::too_many_arguments)]
    fn issue(
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

    fn emit_events(&mut self, events: Vec<Event>) {
        self.outputs.extend(events.into_iter().map(|event| Output::Event { event }));
    }

    /// After any change: report status changes, and write what changed durably. When
    /// `persist_first`, the writes go ahead of the outputs just produced (requests must not
    /// overtake the state they depend on).
    fn settle(&mut self, persist_first: bool) {
        let now = self.clock.now();
        let mut ops = std::mem::take(&mut self.pending_ops);
        for account in self.accounts.values_mut() {
            let status = account.status(now);
            if account.reported.as_ref() != Some(&status) {
                let (status_kind, reason) = status.clone();
                account.reported = Some(status);
                let event = Event::AccountStatusChanged { account_id: account.id.clone(), status: status_kind, reason };
                self.outputs.push_back(Output::Event { event });
            }
            records::mirror_ops(account, &mut ops);
            if account.dirty {
                account.dirty = false;
                ops.push(PersistOp::Put { key: account_key(&account.id), value: Box::new(Record::Account(account.to_record())) });
            }
            records::license_ops(account, &mut ops);
        }
        records::fact_ops(&self.facts, &mut self.dirty_devices, &mut self.dirty_users, &mut ops);
        if ops.is_empty() {
            return;
        }
        let persist = Output::Persist { ops };
        if persist_first {
            self.outputs.push_front(persist);
        } else {
            self.outputs.push_back(persist);
        }
    }

    // ===================================================================== commands

    fn account_mut(&mut self, account_id: &str) -> Result<&mut Account, EngineError> {
        self.accounts.get_mut(account_id).ok_or_else(|| EngineError::UnknownAccount(account_id.to_owned()))
    }

    fn add_account(&mut self, account_id: String, name: String, token: &str, now: Millis) -> Result<(), EngineError> {
        check_id("accountId", &account_id)?;
        check_name(&name)?;
        if self.accounts.contains_key(&account_id) {
            return Err(EngineError::AccountExists(account_id));
        }
        let token = self.usable_token(token, None, now)?;
        self.accounts.insert(account_id.clone(), Account::new(account_id, name, token, &self.config));
        Ok(())
    }

    fn edit_account(
        &mut self,
        account_id: &str,
        name: Option<String>,
        token: Option<String>,
        now: Millis,
    ) -> Result<(), EngineError> {
        self.account_mut(account_id)?;
        if let Some(name) = &name {
            check_name(name)?;
        }
        let token = token.map(|t| self.usable_token(&t, Some(account_id), now)).transpose()?;
        let account = self.account_mut(account_id)?;
        if let Some(name) = name {
            account.name = name;
            account.dirty = true;
        }
        if let Some(token) = token {
            account.replace_token(token);
        }
        Ok(())
    }

    /// Decodes an uploaded token and checks it can be used for `for_account` (or a new account).
    fn usable_token(&self, text: &str, for_account: Option<&str>, now: Millis) -> Result<SToken, EngineError> {
        let token = SToken::decode(text)?;
        token.check_not_expired(now)?;
        if let Some(other) =
            self.accounts.values().find(|a| Some(a.id.as_str()) != for_account && a.token.same_credential(&token))
        {
            return Err(EngineError::DuplicateToken(other.id.clone()));
        }
        Ok(token)
    }

    fn delete_account(&mut self, account_id: &str) -> Result<(), EngineError> {
        self.account_mut(account_id)?;
        let policies: Vec<String> =
            self.policies.values().filter(|p| p.account_id == account_id).map(|p| p.name.clone()).collect();
        if !policies.is_empty() {
            return Err(EngineError::AccountInUse { account_id: account_id.to_owned(), policies });
        }
        self.accounts.remove(account_id);
        self.forget_in_flight(account_id);
        self.pending_ops.push(PersistOp::Delete { key: account_key(account_id) });
        Ok(())
    }

    fn account(&self, account_id: &str) -> Result<&Account, EngineError> {
        self.accounts.get(account_id).ok_or_else(|| EngineError::UnknownAccount(account_id.to_owned()))
    }
}

fn check_id(field: &str, id: &str) -> Result<(), EngineError> {
    if id.trim().is_empty() || id.len() > MAX_ID_LENGTH {
        return Err(EngineError::InvalidInput(format!("{field} must be 1..={MAX_ID_LENGTH} characters")));
    }
    // Ids are part of store keys: a NUL (PostgreSQL refuses it in text) or another control character is refused.
    if id.chars().any(char::is_control) {
        return Err(EngineError::InvalidInput(format!("{field} must not contain control characters (NUL, line breaks, …)")));
    }
    Ok(())
}

fn check_name(name: &str) -> Result<(), EngineError> {
    if name.trim().is_empty() {
        return Err(EngineError::InvalidInput("name must not be empty".to_owned()));
    }
    Ok(())
}
