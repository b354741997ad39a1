//! The engine: the one object a host drives. See the crate documentation for the run loop.
//!
//! | file | what |
//! |---|---|
//! | `mod.rs` | the drive loop: inputs, scheduling, outputs, and writing what changed |
//! | `requests.rs` | the request table: issuing requests, routing each answer to what sent it |
//! | `service.rs` | the service-config fetch and its schedule |
//! | `accounts.rs` | account commands: add, edit, delete; adopt and release (leases) |
//! | `licensing.rs` | license commands: policies, device and user facts, administrator reclaims, Reconcile |
//! | `notifications.rs` | Apple's notifications: checked, de-duplicated, handed to their account |
//! | `read_model.rs` | the views |
//! | `records.rs` | effects to `Persist` records |
//! | `restore.rs` | store records to state |
//!
//! Every change is made by a state machine (an [`Account`] and its parts), which reports what it
//! did into the engine's one [`Effects`] value; after the change, the engine turns its events into
//! outputs and `records.rs` maps its store changes to one `Persist` output.

mod accounts;
mod install_failures;
mod licensing;
mod notifications;
mod preview;
mod read_model;
mod reports;
mod records;
mod requests;
mod name_index;
mod restore;
mod roster;
mod service;

use std::collections::{BTreeMap, HashMap, VecDeque};

use crate::account::{Account, AccountRequest};
use crate::apple::outcome::HttpAnswer;
use crate::apple::ServiceConfig;
use crate::base::time::{Clock, Millis};
use crate::contract::config::EngineConfig;
use crate::contract::error::EngineError;
use crate::contract::input::Input;
use crate::contract::output::Output;
use crate::contract::views::EngineStats;
use crate::effects::{AccountEffects, Effects, Env};
use crate::facts::Facts;
use crate::licenses::coalesce::CoalescePolicy;
use crate::persist::LoadedRecord;
use crate::policy::Policy;
use licensing::Enrollment;
use notifications::Deduper;
use requests::InFlight;
use roster::Roster;
use service::ServiceFetch;

/// Store records after which [`Engine::drain_outputs`] ends a batch early, so that a host never
/// holds the whole first write of a million-assignment mirror at once; also the most mirror
/// records one `Persist` output carries.
pub const DRAIN_BATCH_RECORDS: usize = 5_000;

/// Longest account or policy id accepted.
const MAX_ID_LENGTH: usize = 256;

/// The license engine. One instance drives every account of one MDM installation.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    clock: Clock,
    rng: fastrand::Rng,
    service: ServiceConfig,
    service_fetch: ServiceFetch,
    accounts: Roster,
    policies: BTreeMap<String, Policy>,
    /// Requests sent and not answered yet, by id.
    in_flight: HashMap<u64, InFlight>,
    next_request_id: u64,
    outputs: VecDeque<Output>,
    /// What the state machines did and the host or the store has not been given yet.
    effects: Effects,
    stats: EngineStats,
    facts: Facts,
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
            service_fetch: ServiceFetch::new(now),
            config,
            clock: Clock::new(now),
            accounts: Roster::default(),
            policies: BTreeMap::new(),
            in_flight: HashMap::new(),
            next_request_id: 1,
            outputs: VecDeque::new(),
            effects: Effects::default(),
            stats: EngineStats::default(),
            facts: Facts::default(),
            notify_users,
            notifications_seen: Deduper::default(),
            next_reconcile_at,
        })
    }

    /// Rebuilds an engine from the records a store holds (everything it was given through
    /// `Output::Persist`). Call at start-up, instead of [`Engine::new`], when the store is not empty.
    /// Requests that were in flight when the previous instance stopped are not resumed: their
    /// work is requested again.
    /// Records are [`StoredRecord`]s, or [`StoredRecordJson`](crate::StoredRecordJson)s from a store
    /// that keeps JSON text (faster: each is read as it is parsed).
    pub fn restore(config: EngineConfig, records: Vec<impl Into<LoadedRecord>>, now: Millis) -> Result<Self, EngineError> {
        let (accounts, rest) = restore::accounts_first(records.into_iter().map(Into::into).collect());
        Self::restore_in_order(config, accounts, rest, now)
    }

    /// [`Engine::restore`] from the account records of a store and the others, which `rest`
    /// yields one at a time (the wasm binding decodes each as it is loaded).
    pub(crate) fn restore_in_order(
        config: EngineConfig,
        accounts: Vec<LoadedRecord>,
        rest: impl IntoIterator<Item = LoadedRecord>,
        now: Millis,
    ) -> Result<Self, EngineError> {
        let mut engine = Self::new(config, now)?;
        engine.load_records_in_order(accounts, rest)?;
        Ok(engine)
    }

    // ===================================================================== drive

    /// Feeds one input. Call for every administrator command, every answer to a request,
    /// and when the timer fires; then drain [`Engine::poll_output`] until it returns a timeout.
    ///
    /// Bad input is refused with an error and changes nothing.
    pub fn handle_input(&mut self, input: Input, now: Millis) -> Result<(), EngineError> {
        let now = self.advance_clock(now);
        self.apply_input(input, now)?;
        self.emit_events();
        self.settle(false);
        Ok(())
    }

    /// The state change of one input, without its outputs (`handle_input` and `preview`).
    fn apply_input(&mut self, input: Input, now: Millis) -> Result<(), EngineError> {
        match input {
            Input::AddAccount { account_id, name, token } => self.add_account(account_id, name, &token, now)?,
            Input::EditAccount { account_id, name, token } => self.edit_account(&account_id, name, token, now)?,
            Input::DeleteAccount { account_id } => self.delete_account(&account_id)?,
            Input::TestAccount { account_id } => {
                let (account, mut fx) = self.account_effects(&account_id)?;
                account.request_test(&mut fx);
            }
            Input::Refresh { account_id } => {
                let account = self.account_mut(&account_id)?;
                account.request_refresh().map_err(|reason| EngineError::NotAllowed { account_id, reason })?;
            }
            Input::ReclaimOwnership { account_id } => {
                let (account, mut fx) = self.account_effects(&account_id)?;
                let claimed = account.reclaim_ownership(&mut fx);
                claimed.map_err(|reason| EngineError::NotAllowed { account_id, reason })?;
            }
            Input::SetPolicy { policy } => self.set_policy(policy)?,
            Input::RemovePolicy { policy_id } => self.remove_policy(&policy_id)?,
            Input::UpdatePolicyTargets { policy_id, add, remove } => self.update_policy_targets(&policy_id, add, remove)?,
            Input::DeviceEnrolled { serial_number, client_user_id, shared_ipad, enrollment_id, user_enrollment, platform } => {
                let enrollment = Enrollment { client_user_id, shared_ipad, enrollment_id, user_enrollment, platform };
                self.device_enrolled(serial_number, enrollment)?
            }
            Input::DeviceRetired { serial_number } => self.device_retired(serial_number)?,
            Input::AppInstalled { serial_number, adam_id } => self.app_installed(&serial_number, &adam_id)?,
            Input::AppRemoved { serial_number, adam_id } => {
                self.hold_device_app(&serial_number, &adam_id, "the user removed the app from the device")?
            }
            Input::InstallFailed { serial_number, adam_id, cancelled, reason } => {
                self.install_failed(&serial_number, &adam_id, cancelled, reason.as_deref())?
            }
            Input::AppConvertedToManaged { serial_number, adam_id } => {
                self.app_installed(&serial_number, &adam_id)?;
                self.license_ready_again(&serial_number, Some(&adam_id))?;
            }
            Input::UpdatePush { serial_number, adam_id } => self.license_ready_again(&serial_number, Some(&adam_id))?,
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
            Input::SetLicenseRemovalNotification { enabled } => self.set_license_removal_notification(enabled),
            Input::Response { id, status, headers, body } => {
                // Ordered sets and maps are filled by `extend`: `collect` (their `FromIterator`) links one stable-sort
                // copy per element type into the wasm (issue 7's size target); only 1M-key sets keep it.
                let mut lowered = BTreeMap::new();
                lowered.extend(headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)));
                let headers = lowered;
                if let Some(request) = self.take_in_flight(id) {
                    self.dispatch_answer(request, Ok(HttpAnswer { status, headers: &headers, body: &body }));
                }
            }
            Input::NetworkError { id, message } => {
                if let Some(request) = self.take_in_flight(id) {
                    self.dispatch_answer(request, Err(&message));
                }
            }
            Input::Timeout => {}
        }
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
            self.service_fetch.clock_rewound(now, &self.config);
            self.next_reconcile_at = self.next_reconcile_at.min(now + self.config.reconcile_interval_ms);
            for account in self.accounts.iter_mut_all() {
                let id = account.id.clone();
                account.clock_rewound(now, &self.config, &mut self.effects.account(&id));
            }
        }
        now
    }

    /// Time-driven work and sending every request that may go now.
    fn do_due_work(&mut self, now: Millis) {
        self.fetch_service_config_if_due(now);
        if now >= self.next_reconcile_at {
            self.reconcile(now);
        }
        let mut requests = Vec::new();
        let rate_limit = self.service.limits.max_request_per_second;
        let coalescing = CoalescePolicy::new(&self.config, &self.service.limits);
        let env = Env::new(now, &self.config, &self.service, self.notify_users);
        // Only the accounts touched since the last pass or whose time has come: a pass over the
        // others would change nothing.
        for id in self.accounts.take_pass(now) {
            let Some(account) = self.accounts.get_in_pass(&id) else { continue };
            let mut fx = self.effects.account(&id);
            account.tick(&env, &mut fx);
            if account.licenses.wants_plan() && account.license_plan_due(now, &coalescing) {
                account.plan_licenses(&self.facts, &env, &mut fx);
            }
            while account.may_send(now, rate_limit) {
                let Some(request) = account.next_request(&env, &mut fx) else { break };
                requests.push((account.id.clone(), account.token().bearer().expose().to_owned(), request));
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
        self.emit_events();
    }

    /// The events reported since the last call, as outputs.
    fn emit_events(&mut self) {
        self.outputs.extend(self.effects.take_events().into_iter().map(|event| Output::Event { event }));
    }

    /// After any change: report status changes, and write what changed durably. When
    /// `persist_first`, the writes go ahead of the outputs just produced (requests must not
    /// overtake the state they depend on).
    fn settle(&mut self, persist_first: bool) {
        let now = self.clock.now();
        let mut ops = Vec::new();
        records::engine_ops(self.effects.take_engine_changes(), &self.policies, &self.accounts, &mut ops);
        // The accounts whose status may have changed, and those with changes to write, in id order;
        // the accounts with changes are a subset, in the same order.
        let visits = self.accounts.status_candidates(now, self.effects.changed_accounts().map(|(id, _)| id));
        let mut changed = self.effects.changed_accounts().peekable();
        for id in &visits {
            let Some(account) = self.accounts.get_in_pass(id) else { continue };
            if let Some(event) = account.status_change(now) {
                self.outputs.push_back(Output::Event { event });
            }
            while changed.next_if(|(changed_id, _)| *changed_id < id).is_some() {} // none: removed accounts are forgotten
            if let Some((_, changes)) = changed.next_if(|(changed_id, _)| *changed_id == id) {
                records::account_ops(account, changes, &mut ops);
            }
        }
        drop(changed);
        self.effects.drop_written();
        let (devices, users) = self.effects.take_fact_changes();
        records::fact_ops(&self.facts, devices, users, &mut ops);
        self.accounts.reschedule_touched(now, &self.config, &self.service.limits);
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

    // ===================================================================== lookups

    fn account(&self, account_id: &str) -> Result<&Account, EngineError> {
        self.accounts.get(account_id).ok_or_else(|| EngineError::UnknownAccount(account_id.to_owned()))
    }

    fn account_mut(&mut self, account_id: &str) -> Result<&mut Account, EngineError> {
        self.accounts.get_mut(account_id).ok_or_else(|| EngineError::UnknownAccount(account_id.to_owned()))
    }

    /// An account and the part of the effects it reports into.
    fn account_effects<'a>(&'a mut self, account_id: &'a str) -> Result<(&'a mut Account, AccountEffects<'a>), EngineError> {
        let account = self.accounts.get_mut(account_id).ok_or_else(|| EngineError::UnknownAccount(account_id.to_owned()))?;
        Ok((account, self.effects.account(account_id)))
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
