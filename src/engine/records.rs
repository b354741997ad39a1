//! The engine's state as store records, and back.

use std::collections::{BTreeMap, BTreeSet};

use super::{Engine, DRAIN_BATCH_RECORDS};
use crate::account::Account;
use crate::apple::limits::POLL_INTERVAL;
use crate::apple::token::SToken;
use crate::base::time::Millis;
use crate::contract::error::EngineError;
use crate::contract::output::PersistOp;
use crate::facts::Facts;
use crate::licenses::operations::{Operation, OperationState};
use crate::mirror::Mirror;
use crate::persist::{
    AccountRecord, AppleUserRecord, AssetRecord, AssignmentsRecord, DeviceRecord, OperationRecord, PairRecord, PolicyRecord, Record,
    ScopeRecord, SettingsRecord, StoredRecord, UserHoldRecord, UserRecord,
};
use crate::persist::keys::{
    self, account_key, device_key, operation_key, policy_key, user_key, ACCOUNT_PREFIX, APPLE_USER_PREFIX, ASSET_PREFIX, ASSIGNMENT_PREFIX,
    AWAITED_PREFIX, DEVICE_PREFIX, HOLD_PREFIX, OPERATION_PREFIX, POLICY_PREFIX, PROVENANCE_PREFIX, SCOPE_PREFIX, SETTINGS_KEY,
    USER_HOLD_PREFIX, USER_PREFIX,
};
use crate::vocab::{AssetKey, AssignmentKey, OperationKind, PricingParam, Target};

pub(super) fn settings_op(license_removal_notification: bool) -> PersistOp {
    PersistOp::Put { key: SETTINGS_KEY.to_owned(), value: Box::new(Record::Settings(SettingsRecord { license_removal_notification })) }
}

fn pair(account: &Account, key: &AssignmentKey, reason: Option<String>) -> PairRecord {
    PairRecord { account_id: account.id.clone(), pair: account.mirror.pair(key), reason }
}

fn pair_op(record: PairRecord, prefix: &str, present: bool) -> PersistOp {
    let key = record.key(prefix);
    if present {
        PersistOp::Put { key, value: Box::new(Record::Pair(record)) }
    } else {
        PersistOp::Delete { key }
    }
}

/// Up to [`DRAIN_BATCH_RECORDS`] mirror records (a full refresh of a large account is written in
/// several outputs, one per poll, each ending a batch of [`Engine::drain_outputs`]) the account changed since the last call. While a
/// change set too large for one output is being written, the account record says the stored
/// mirror is incomplete (a restart then runs a full refresh).
pub(super) fn mirror_ops(account: &mut Account, ops: &mut Vec<PersistOp>) {
    if !account.mirror.has_unwritten() {
        return;
    }
    let changes = account.mirror.take_changes(DRAIN_BATCH_RECORDS);
    let complete = !account.mirror.has_unwritten() && account.durable.last_synced_at.is_some();
    if account.durable.mirror_stored != complete {
        account.durable.mirror_stored = complete;
        account.dirty = true;
    }
    let mirror = &account.mirror;
    for asset in changes.assets {
        let adam_id = mirror.name(asset.adam_id);
        let key = keys::asset_key(&account.id, adam_id, asset.pricing);
        ops.push(match mirror.asset(&asset) {
            Some(c) => PersistOp::Put {
                key,
                value: Box::new(Record::Asset(AssetRecord {
                    account_id: account.id.clone(),
                    adam_id: adam_id.to_owned(),
                    pricing_param: asset.pricing,
                    counts: c.clone(),
                })),
            },
            None => PersistOp::Delete { key },
        });
    }
    for id in changes.users {
        let client_user_id = mirror.name(id);
        let key = keys::apple_user_key(&account.id, client_user_id);
        ops.push(match mirror.user(id) {
            Some(user) => PersistOp::Put {
                key,
                value: Box::new(Record::AppleUser(AppleUserRecord {
                    account_id: account.id.clone(),
                    client_user_id: client_user_id.to_owned(),
                    email: user.email.clone(),
                    status: user.status.clone(),
                    invite_code: user.invite_code.clone(),
                })),
            },
            None => PersistOp::Delete { key },
        });
    }
    for target in changes.targets {
        let record = assignments_record(&account.id, mirror, target);
        let key = record.key();
        ops.push(if record.adam_ids.is_empty() && record.plus_adam_ids.is_empty() {
            PersistOp::Delete { key }
        } else {
            PersistOp::Put { key, value: Box::new(Record::Assignments(record)) }
        });
    }
}

/// The apps Apple assigned to one device or user, as its mirror record.
fn assignments_record(account_id: &str, mirror: &Mirror, target: Target) -> AssignmentsRecord {
    let name = mirror.name(target.id()).to_owned();
    let (serial_number, client_user_id) = match target {
        Target::Device(_) => (Some(name), None),
        Target::User(_) => (None, Some(name)),
    };
    let (mut adam_ids, mut plus_adam_ids) = (Vec::new(), Vec::new());
    for key in mirror.assignments_of(target) {
        let adam_id = mirror.name(key.asset.adam_id).to_owned();
        match key.asset.pricing {
            PricingParam::Stdq => adam_ids.push(adam_id),
            PricingParam::Plus => plus_adam_ids.push(adam_id),
        }
    }
    AssignmentsRecord { account_id: account_id.to_owned(), serial_number, client_user_id, adam_ids, plus_adam_ids }
}

/// Provenance, hold and operation records the account changed since the last call.
pub(super) fn license_ops(account: &mut Account, ops: &mut Vec<PersistOp>) {
    for (key, ours) in std::mem::take(&mut account.licenses.dirty_ours) {
        ops.push(pair_op(pair(account, &key, None), PROVENANCE_PREFIX, ours));
    }
    for (key, reason) in std::mem::take(&mut account.licenses.dirty_holds) {
        let present = reason.is_some();
        ops.push(pair_op(pair(account, &key, reason), HOLD_PREFIX, present));
    }
    for (key, present) in std::mem::take(&mut account.licenses.in_flight.dirty_awaited) {
        ops.push(pair_op(pair(account, &key, None), AWAITED_PREFIX, present));
    }
    for (id, reason) in std::mem::take(&mut account.licenses.dirty_user_holds) {
        let client_user_id = account.mirror.name(id).to_owned();
        let key = keys::user_hold_key(&account.id, &client_user_id);
        ops.push(match reason {
            Some(reason) => PersistOp::Put {
                key,
                value: Box::new(Record::UserHold(UserHoldRecord { account_id: account.id.clone(), client_user_id, reason })),
            },
            None => PersistOp::Delete { key },
        });
    }
    for op_id in std::mem::take(&mut account.licenses.dirty_ops) {
        let key = operation_key(&account.id, op_id);
        ops.push(match account.licenses.operation(op_id) {
            Some(op) => PersistOp::Put { key, value: Box::new(Record::Operation(operation_record(&account.id, op, &account.mirror))) },
            None => PersistOp::Delete { key },
        });
    }
}

fn operation_record(account_id: &str, op: &Operation, mirror: &Mirror) -> OperationRecord {
    let names = |device: bool| -> Vec<String> {
        op.targets
            .iter()
            .filter_map(|t| match (t, device) {
                (Target::Device(id), true) | (Target::User(id), false) => Some(mirror.name(*id).to_owned()),
                _ => None,
            })
            .collect()
    };
    let (event_id, submitted_at, sent_at) = match &op.state {
        OperationState::Pending { event_id, submitted_at, .. } => (Some(event_id.clone()), Some(*submitted_at), None),
        OperationState::Submitting { sent_at } | OperationState::Unconfirmed { sent_at, .. } => (None, None, Some(*sent_at)),
        OperationState::Queued => (None, None, None),
    };
    OperationRecord {
        account_id: account_id.to_owned(),
        operation_id: op.id,
        kind: op.kind,
        assets: op.assets.iter().map(|a| mirror.asset_ref(a)).collect(),
        serial_numbers: names(true),
        client_user_ids: names(false),
        users: op.new_users.clone(),
        reason: op.reason.clone(),
        event_id,
        submitted_at,
        sent_at,
    }
}

/// Device and user fact records changed since the last call.
pub(super) fn fact_ops(facts: &Facts, devices: &mut BTreeSet<String>, users: &mut BTreeSet<String>, ops: &mut Vec<PersistOp>) {
    for serial in std::mem::take(devices) {
        if let Some(device) = facts.devices.get(&serial) {
            let record = DeviceRecord { serial_number: serial.clone(), facts: device.clone() };
            ops.push(PersistOp::Put { key: device_key(&serial), value: Box::new(Record::Device(record)) });
        }
    }
    for id in std::mem::take(users) {
        if let Some(user) = facts.users.get(&id) {
            let record = UserRecord { client_user_id: id.clone(), facts: user.clone() };
            ops.push(PersistOp::Put { key: user_key(&id), value: Box::new(Record::User(record)) });
        }
    }
}

impl Engine {
    /// Loads every record of a store into a new engine. Accounts first: the other records refer to them.
    pub(super) fn load_records(&mut self, records: Vec<StoredRecord>) -> Result<(), EngineError> {
        let (accounts, rest): (Vec<StoredRecord>, Vec<StoredRecord>) =
            records.into_iter().partition(|r| r.key.starts_with(ACCOUNT_PREFIX));
        for StoredRecord { key, value } in accounts {
            let record: AccountRecord = read(&key, value)?;
            let token = SToken::decode(record.token.expose()).map_err(|e| invalid(&key, e.to_string()))?;
            if account_key(&record.account_id) != key {
                return Err(invalid(&key, "the key does not match the account id".to_owned()));
            }
            let account = Account::restore(record, token, &self.config, self.clock.now());
            self.accounts.insert(account.id.clone(), account);
        }
        let mut operations = Vec::new();
        let mut policies = Vec::new();
        let mut scopes: BTreeMap<String, Vec<(String, ScopeRecord)>> = BTreeMap::new();
        for StoredRecord { key, value } in rest {
            if key.starts_with(POLICY_PREFIX) {
                let policy: PolicyRecord = read(&key, value)?;
                if policy_key(&policy.policy_id) != key {
                    return Err(invalid(&key, "the key does not match the policy id".to_owned()));
                }
                self.account(&policy.account_id)
                    .map_err(|_| invalid(&key, format!("the policy uses account {:?}, which is not in the store", policy.account_id)))?;
                policies.push(policy);
            } else if key.starts_with(SCOPE_PREFIX) {
                let record: ScopeRecord = read(&key, value)?;
                if record.key() != key {
                    return Err(invalid(&key, "the key does not match the account, policy and target".to_owned()));
                }
                scopes.entry(record.policy_id.clone()).or_default().push((key, record));
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
            } else if key.starts_with(ASSIGNMENT_PREFIX) {
                let record: AssignmentsRecord = read(&key, value)?;
                let account = self.accounts.get_mut(&record.account_id).ok_or_else(|| invalid(&key, "unknown account".to_owned()))?;
                let target = intern_target(&mut account.mirror, &key, &record.serial_number, &record.client_user_id)?;
                let editions = [(PricingParam::Stdq, record.adam_ids), (PricingParam::Plus, record.plus_adam_ids)];
                for (pricing, adam_ids) in editions {
                    for adam_id in adam_ids {
                        let asset = account.mirror.intern_asset(&adam_id, pricing);
                        account.mirror.restore_assignment(AssignmentKey { asset, target });
                    }
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
                    account.licenses.in_flight.restore_awaited(pair);
                } else {
                    account.licenses.ours.insert(pair);
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
        self.attach_scopes(policies, scopes)?;
        let policies = std::mem::take(&mut self.policies);
        for policy in policies.values() {
            self.index_scope(policy, &policy.targets, true);
        }
        self.policies = policies;
        for (key, record) in operations {
            let now = self.clock.now();
            let account = self.accounts.get_mut(&record.account_id).ok_or_else(|| invalid(&key, "unknown account".to_owned()))?;
            let op = restored_operation(record, &mut account.mirror, now, self.config.unconfirmed_settle_ms);
            account.licenses.restore_operation(op);
        }
        Ok(())
    }
}

impl Engine {
    /// Gives each restored policy the targets of its scope records. A policy stored with its
    /// targets inline (as engines before scope records wrote it) is written again in the new form.
    fn attach_scopes(&mut self, policies: Vec<PolicyRecord>, mut scopes: BTreeMap<String, Vec<(String, ScopeRecord)>>) -> Result<(), EngineError> {
        for mut record in policies {
            let mut targets = BTreeSet::new();
            for (key, scope) in scopes.remove(&record.policy_id).unwrap_or_default() {
                if scope.account_id != record.account_id {
                    return Err(invalid(&key, format!("policy {:?} uses another account", record.policy_id)));
                }
                targets.insert(scope.target);
            }
            let inline = std::mem::take(&mut record.inline_targets);
            let mut policy = record.into_policy(targets);
            if !inline.is_empty() {
                let moved: Vec<String> = inline.into_iter().filter(|t| !policy.targets.contains(t)).collect();
                self.store_scope(&policy, &moved, true);
                self.store_policy_header(&policy);
                policy.targets.extend(moved);
            }
            self.policies.insert(policy.policy_id.clone(), policy);
        }
        if let Some((key, _)) = scopes.into_values().flatten().next() {
            return Err(invalid(&key, "the record names a policy that is not in the store".to_owned()));
        }
        Ok(())
    }
}

/// An operation from the store: one Apple accepted is polled now; an association that may have
/// reached Apple without an answer is confirmed by a sync; the rest are submitted (again).
fn restored_operation(record: OperationRecord, mirror: &mut Mirror, now: Millis, settle: Millis) -> Operation {
    let assets: Vec<AssetKey> = record
        .assets
        .iter()
        .map(|a| mirror.intern_asset(&a.adam_id, a.pricing_param.unwrap_or(PricingParam::Stdq)))
        .collect();
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

/// The device or user a record names by exactly one of its serial number and client user id.
fn intern_target(mirror: &mut Mirror, key: &str, serial_number: &Option<String>, client_user_id: &Option<String>) -> Result<Target, EngineError> {
    mirror
        .intern_target(serial_number.as_deref(), client_user_id.as_deref())
        .ok_or_else(|| invalid(key, "needs exactly one of serialNumber and clientUserId".to_owned()))
}

fn read<T: serde::de::DeserializeOwned>(key: &str, value: serde_json::Value) -> Result<T, EngineError> {
    serde_json::from_value(value).map_err(|e| invalid(key, e.to_string()))
}

fn invalid(key: &str, reason: String) -> EngineError {
    EngineError::Restore { key: key.to_owned(), reason }
}
