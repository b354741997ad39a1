//! Store records to state: [`Engine::restore`] and [`Engine::adopt`] load every record a store
//! holds (accounts first: the other records refer to them), checking each record's key against
//! its content. Records in the form of an earlier engine (a policy with its targets inline,
//! provenance per pair) are written again in the current form at the first settle (the old
//! per-pair records deleted).

use std::collections::BTreeMap;

use super::Engine;
use crate::account::Account;
use crate::apple::limits::POLL_INTERVAL;
use crate::apple::token::SToken;
use crate::base::time::Millis;
use crate::contract::error::EngineError;
use crate::effects::EngineChange;
use crate::licenses::operations::{Operation, OperationState};
use crate::mirror::{Mirror, Since};
use crate::persist::keys::{
    account_key, is_pair_provenance_key, policy_key, ACCOUNT_PREFIX, APPLE_USER_PREFIX, ASSET_PREFIX, ASSIGNMENT_PREFIX, AWAITED_PREFIX,
    DEVICE_PREFIX, HOLD_PREFIX, OPERATION_PREFIX, POLICY_PREFIX, PROVENANCE_PREFIX, SCOPE_PREFIX, SCOPE_TARGET_PREFIX, SETTINGS_KEY,
    USER_HOLD_PREFIX, USER_PREFIX,
};
use crate::persist::{
    AccountRecord, AppleUserRecord, AssetRecord, AssignmentsRecord, DeviceRecord, LoadedRecord, LoadedValue, OperationRecord, PairRecord,
    PolicyRecord, ScopeRecord, ScopeTargetRecord, SettingsRecord, UserHoldRecord, UserRecord,
};
use crate::vocab::{AssetKey, AssignmentKey, OperationKind, PricingParam, Target};

impl Engine {
    /// Loads every record of a store into a new engine. Accounts first: the other records refer to them.
    pub(super) fn load_records(&mut self, records: Vec<LoadedRecord>) -> Result<(), EngineError> {
        let (accounts, rest) = accounts_first(records);
        self.load_records_in_order(accounts, rest)
    }

    /// Loads the account records of a store, then the others one at a time as `rest` yields them
    /// (a host's records need not all be read into the engine before the first is loaded).
    pub(super) fn load_records_in_order(
        &mut self,
        accounts: Vec<LoadedRecord>,
        rest: impl IntoIterator<Item = LoadedRecord>,
    ) -> Result<(), EngineError> {
        for LoadedRecord { key, value } in accounts {
            let record: AccountRecord = read(&key, value)?;
            let token = SToken::decode(record.token.expose()).map_err(|e| invalid(&key, e.to_string()))?;
            if account_key(&record.account_id) != key {
                return Err(invalid(&key, "the key does not match the account id".to_owned()));
            }
            let account = Account::restore(record, token, &self.config, self.clock.now());
            self.accounts.insert(account);
        }
        let mut operations = Vec::new();
        let mut policies = Vec::new();
        let mut scopes: BTreeMap<String, StoredScope> = BTreeMap::new();
        let mut restored_pairs: BTreeMap<String, RestoredPairs> = BTreeMap::new();
        for LoadedRecord { key, value } in rest {
            if key.starts_with(POLICY_PREFIX) {
                let policy: PolicyRecord = read(&key, value)?;
                if policy_key(&policy.policy_id) != key {
                    return Err(invalid(&key, "the key does not match the policy id".to_owned()));
                }
                self.account(&policy.account_id)
                    .map_err(|_| invalid(&key, format!("the policy uses account {:?}, which is not in the store", policy.account_id)))?;
                policies.push(policy);
            } else if key.starts_with(SCOPE_PREFIX) {
                let record: ScopeRecord = read_streamed(&key, value)?;
                if record.key() != key {
                    return Err(invalid(&key, "the key does not match the account, policy and index".to_owned()));
                }
                scopes.entry(record.policy_id.clone()).or_default().records.push((key, record));
            } else if key.starts_with(SCOPE_TARGET_PREFIX) {
                let record: ScopeTargetRecord = read(&key, value)?;
                if record.key() != key {
                    return Err(invalid(&key, "the key does not match the account, policy and target".to_owned()));
                }
                scopes.entry(record.policy_id.clone()).or_default().per_target.push((key, record));
            } else if key.starts_with(ASSET_PREFIX) {
                let record: AssetRecord = read(&key, value)?;
                let account = self.accounts.get_mut(&record.account_id).ok_or_else(|| invalid(&key, "unknown account".to_owned()))?;
                let asset = account.mirror.intern_asset(&record.adam_id, record.pricing_param);
                account.mirror.restore_asset(asset, record.counts);
            } else if key.starts_with(USER_HOLD_PREFIX) {
                let record: UserHoldRecord = read(&key, value)?;
                let account = self.accounts.get_mut(&record.account_id).ok_or_else(|| invalid(&key, "unknown account".to_owned()))?;
                if let Target::User(id) = account.mirror.intern_user(&record.client_user_id) {
                    account.licenses.restore_user_hold(id, record.reason);
                }
            } else if key.starts_with(APPLE_USER_PREFIX) {
                let record: AppleUserRecord = read(&key, value)?;
                let account = self.accounts.get_mut(&record.account_id).ok_or_else(|| invalid(&key, "unknown account".to_owned()))?;
                let user = crate::mirror::UserRecord { email: record.email, status: record.status, invite_code: record.invite_code };
                account.mirror.restore_user(&record.client_user_id, user);
            } else if key.starts_with(ASSIGNMENT_PREFIX) || (key.starts_with(PROVENANCE_PREFIX) && !is_pair_provenance_key(&key)) {
                let mut record: AssignmentsRecord = read_streamed(&key, value)?;
                let account = self.accounts.get_mut(&record.account_id).ok_or_else(|| invalid(&key, "unknown account".to_owned()))?;
                let pairs = restored_pairs.entry(std::mem::take(&mut record.account_id)).or_default();
                if key.starts_with(ASSIGNMENT_PREFIX) {
                    restore_target_record(&mut account.mirror, &key, record, |pair, since| pairs.mirror.push((pair, since)))?;
                } else {
                    restore_target_record(&mut account.mirror, &key, record, |pair, _| pairs.ours.push(pair))?;
                }
            } else if [PROVENANCE_PREFIX, HOLD_PREFIX, AWAITED_PREFIX].iter().any(|p| key.starts_with(p)) {
                let record: PairRecord = read(&key, value)?;
                let account = self.accounts.get_mut(&record.account_id).ok_or_else(|| invalid(&key, "unknown account".to_owned()))?;
                let asset = account.mirror.intern_asset(&record.pair.adam_id, record.pair.pricing_param);
                let target = intern_target(&mut account.mirror, &key, &record.pair.serial_number, &record.pair.client_user_id)?;
                let pair = AssignmentKey { asset, target };
                if key.starts_with(HOLD_PREFIX) {
                    let reason = record.reason.unwrap_or_default();
                    account.licenses.restore_hold(pair, reason);
                } else if key.starts_with(AWAITED_PREFIX) {
                    account.licenses.restore_awaited(pair);
                } else {
                    // A per-pair provenance record of an earlier engine: written again with its
                    // device's or user's record, and deleted, at the first settle.
                    restored_pairs.entry(record.account_id.clone()).or_default().ours.push(pair);
                    let mut fx = self.effects.account(&record.account_id);
                    let changes = fx.changes();
                    changes.ours.insert(target);
                    changes.stale.push(key);
                }
            } else if key.starts_with(OPERATION_PREFIX) {
                operations.push((key.clone(), read::<OperationRecord>(&key, value)?));
            } else if key.starts_with(DEVICE_PREFIX) {
                let record: DeviceRecord = read(&key, value)?;
                self.facts.set_device(&record.serial_number, record.facts);
            } else if key.starts_with(USER_PREFIX) {
                let record: UserRecord = read(&key, value)?;
                self.facts.users.insert(record.client_user_id, record.facts);
            } else if key == SETTINGS_KEY {
                let record: SettingsRecord = read(&key, value)?;
                self.notify_users = record.license_removal_notification;
            } else {
                return Err(invalid(&key, "not a record this engine writes".to_owned()));
            }
        }
        for (account_id, pairs) in restored_pairs {
            let account = self.accounts.get_mut(&account_id).expect("pairs are kept for accounts that were found");
            account.mirror.restore_assignments(pairs.mirror);
            account.licenses.restore_ours(pairs.ours);
        }
        self.attach_scopes(policies, scopes)?;
        self.index_restored_scopes();
        for (key, record) in operations {
            let now = self.clock.now();
            let account = self.accounts.get_mut(&record.account_id).ok_or_else(|| invalid(&key, "unknown account".to_owned()))?;
            let op = restored_operation(record, &mut account.mirror, now, self.config.unconfirmed_settle_ms);
            account.licenses.restore_operation(op);
        }
        Ok(())
    }

    /// Gives each restored policy the targets of its scope records. A policy whose targets are
    /// stored as earlier engines stored them (inline in the policy record, or one record per
    /// target), or not where its records' count places them, is written again in this engine's form.
    fn attach_scopes(&mut self, policies: Vec<PolicyRecord>, mut scopes: BTreeMap<String, StoredScope>) -> Result<(), EngineError> {
        for mut record in policies {
            let stored = scopes.remove(&record.policy_id).unwrap_or_default();
            let inline = std::mem::take(&mut record.inline_targets);
            let earlier_form = record.scope_records == 0 || !inline.is_empty() || !stored.per_target.is_empty();
            let mut policy = record.into_policy();
            let account = self.accounts.get_mut(&policy.account_id).expect("a policy's account was checked when it was read");
            let mut misplaced = false;
            for (key, scope) in &stored.records {
                if scope.account_id != policy.account_id {
                    return Err(invalid(key, format!("policy {:?} uses another account", policy.policy_id)));
                }
                for name in &scope.targets {
                    misplaced |= policy.scope.bucket_of(name) != scope.index;
                    policy.scope.insert(account.mirror.intern_name(name), name);
                }
            }
            for (key, scope) in &stored.per_target {
                if scope.account_id != policy.account_id {
                    return Err(invalid(key, format!("policy {:?} uses another account", policy.policy_id)));
                }
                policy.scope.insert(account.mirror.intern_name(&scope.target), &scope.target);
            }
            for name in &inline {
                policy.scope.insert(account.mirror.intern_name(name), name);
            }
            if policy.scope.rebalance().is_some() || earlier_form || misplaced {
                let written = stored.records.iter().map(|(_, scope)| scope.index + 1).max().unwrap_or(0);
                self.store_scope(&policy, 0..written.max(policy.scope.buckets()));
                self.store_policy_header(&policy);
                for (key, _) in stored.per_target {
                    self.effects.engine_change(EngineChange::Replaced { key });
                }
            }
            self.policies.insert(policy.policy_id.clone(), policy);
        }
        if let Some(key) = scopes.into_values().flat_map(StoredScope::keys).next() {
            return Err(invalid(&key, "the record names a policy that is not in the store".to_owned()));
        }
        Ok(())
    }
}

/// A store's account records, and the others.
pub(super) fn accounts_first(records: Vec<LoadedRecord>) -> (Vec<LoadedRecord>, Vec<LoadedRecord>) {
    records.into_iter().partition(|r| r.key.starts_with(ACCOUNT_PREFIX))
}

/// The stored targets of one policy: records of this engine's form, and records of one target
/// each (as engines before them wrote).
#[derive(Default)]
struct StoredScope {
    records: Vec<(String, ScopeRecord)>,
    per_target: Vec<(String, ScopeTargetRecord)>,
}

impl StoredScope {
    fn keys(self) -> impl Iterator<Item = String> {
        self.records.into_iter().map(|(key, _)| key).chain(self.per_target.into_iter().map(|(key, _)| key))
    }
}

/// An operation from the store: one Apple accepted is polled now; an association that may have
/// reached Apple without an answer is confirmed by a sync; the rest are submitted (again).
fn restored_operation(record: OperationRecord, mirror: &mut Mirror, now: Millis, settle: Millis) -> Operation {
    let assets: Vec<AssetKey> =
        record.assets.iter().map(|a| mirror.intern_asset(&a.adam_id, a.pricing_param.unwrap_or(PricingParam::Stdq))).collect();
    let mut targets: Vec<Target> = record.serial_numbers.iter().map(|s| mirror.intern_device(s)).collect();
    targets.extend(record.client_user_ids.iter().map(|u| mirror.intern_user(u)));
    let mut op = Operation::new(record.operation_id, record.kind, assets, targets, record.reason);
    op.new_users = record.users;
    op.state = match (record.event_id, record.submitted_at, record.sent_at) {
        (Some(event_id), Some(submitted_at), _) => {
            OperationState::Pending { event_id, submitted_at, next_poll_at: now.min(submitted_at + POLL_INTERVAL), polling: false }
        }
        (None, _, Some(sent_at)) if record.kind == OperationKind::Associate => {
            OperationState::Unconfirmed { sent_at, confirm_after: sent_at + settle }
        }
        _ => OperationState::Queued,
    };
    op
}

/// The pairs of one account read back from its device and user records, put in its ordered sets
/// in one bulk build each when every record is read: inserted one at a time, a million pairs took
/// about a third of a restore.
#[derive(Default)]
struct RestoredPairs {
    /// The mirror's, with when Apple confirmed each.
    mirror: Vec<(AssignmentKey, Since)>,
    /// Provenance.
    ours: Vec<AssignmentKey>,
}

/// The pairs of a device's or user's record (the mirror's or provenance), each with when Apple
/// confirmed it (0: unknown, as in records written before the time was kept), to `restore`.
fn restore_target_record(
    mirror: &mut Mirror,
    key: &str,
    record: AssignmentsRecord,
    mut restore: impl FnMut(AssignmentKey, Since),
) -> Result<(), EngineError> {
    let target = intern_target(mirror, key, &record.serial_number, &record.client_user_id)?;
    let editions = [
        (PricingParam::Stdq, record.adam_ids, record.confirmed_since),
        (PricingParam::Plus, record.plus_adam_ids, record.plus_confirmed_since),
    ];
    for (pricing, adam_ids, since) in editions {
        for (adam_id, since) in adam_ids.into_iter().zip(since.into_iter().chain(std::iter::repeat(0))) {
            let asset = mirror.intern_asset(&adam_id, pricing);
            restore(AssignmentKey { asset, target }, since);
        }
    }
    Ok(())
}

/// The device or user a record names by exactly one of its serial number and client user id.
fn intern_target(
    mirror: &mut Mirror,
    key: &str,
    serial_number: &Option<String>,
    client_user_id: &Option<String>,
) -> Result<Target, EngineError> {
    mirror
        .intern_target(serial_number.as_deref(), client_user_id.as_deref())
        .ok_or_else(|| invalid(key, "needs exactly one of serialNumber and clientUserId".to_owned()))
}

fn read<T: serde::de::DeserializeOwned>(key: &str, value: LoadedValue) -> Result<T, EngineError> {
    value.read().map_err(|e| invalid(key, e.to_string()))
}

/// [`read`] for the record kinds of the store's bulk (see [`LoadedValue::read_streamed`]).
fn read_streamed<T: serde::de::DeserializeOwned>(key: &str, value: LoadedValue) -> Result<T, EngineError> {
    value.read_streamed().map_err(|e| invalid(key, e.to_string()))
}

fn invalid(key: &str, reason: String) -> EngineError {
    EngineError::Restore { key: key.to_owned(), reason }
}
