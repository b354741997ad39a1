//! Effects to store records: what the state machines reported into the engine's
//! [`Effects`](crate::effects::Effects) becomes `Persist` operations, in a fixed order —
//! engine-wide changes (policies, scope, settings, deleted accounts), then per account (by id)
//! its mirror records, its account record and its license records (provenance, holds, awaited
//! pairs, user holds, operations), then device and user facts. Each record is built from the
//! state as it is when written, so a key changed twice in one step is written once.

use std::collections::{BTreeMap, BTreeSet};

use super::roster::Roster;
use super::DRAIN_BATCH_RECORDS;
use crate::account::Account;
use crate::contract::output::PersistOp;
use crate::effects::{AccountChanges, EngineChange};
use crate::facts::Facts;
use crate::licenses::operations::{Operation, OperationState};
use crate::mirror::{Mirror, Since};
use crate::persist::keys::{
    self, account_key, device_key, operation_key, policy_key, user_key, ASSIGNMENT_PREFIX, AWAITED_PREFIX, HOLD_PREFIX, PROVENANCE_PREFIX,
    SETTINGS_KEY,
};
use crate::persist::{
    AppleUserRecord, AssetRecord, AssignmentsRecord, DeviceRecord, OperationRecord, PairRecord, PolicyRecord, Record, ScopeRecord,
    SettingsRecord, UserHoldRecord, UserRecord,
};
use crate::policy::Policy;
use crate::vocab::{AssignmentKey, PricingParam, Target};

/// The engine-wide changes, in the order made (each record once, as it is now).
pub(super) fn engine_ops(changes: Vec<EngineChange>, policies: &BTreeMap<String, Policy>, accounts: &Roster, ops: &mut Vec<PersistOp>) {
    let mut written = BTreeSet::new();
    for change in changes {
        if !written.insert(change.clone()) {
            continue;
        }
        ops.push(match change {
            EngineChange::Policy { policy_id } => match policies.get(&policy_id) {
                Some(policy) => PersistOp::Put { key: policy_key(&policy_id), value: Box::new(Record::Policy(PolicyRecord::of(policy))) },
                None => PersistOp::Delete { key: policy_key(&policy_id) },
            },
            EngineChange::Scope { account_id, policy_id, index } => {
                let key = keys::scope_key(&account_id, &policy_id, index);
                let policy = policies.get(&policy_id).filter(|p| p.account_id == account_id && index < p.scope.buckets());
                match policy.zip(accounts.get(&account_id)) {
                    Some((policy, account)) if policy.scope.ids_in(index).next().is_some() => {
                        let targets = policy.scope.ids_in(index).map(|id| account.mirror.name(id).to_owned()).collect();
                        PersistOp::Put { key, value: Box::new(Record::Scope(ScopeRecord { account_id, policy_id, index, targets })) }
                    }
                    _ => PersistOp::Delete { key },
                }
            }
            EngineChange::Replaced { key } => PersistOp::Delete { key },
            EngineChange::Settings { license_removal_notification } => {
                let record = SettingsRecord { license_removal_notification };
                PersistOp::Put { key: SETTINGS_KEY.to_owned(), value: Box::new(Record::Settings(record)) }
            }
            EngineChange::AccountDeleted { account_id } => PersistOp::Delete { key: account_key(&account_id) },
        });
    }
}

/// What one account changed: up to [`DRAIN_BATCH_RECORDS`] mirror records (a full refresh of a
/// large account is written in several outputs, one per poll, each ending a batch of
/// [`super::Engine::drain_outputs`]), its account record, and its license records. While a
/// mirror change set too large for one output is being written, the account record says the
/// stored mirror is incomplete (a restart then runs a full refresh).
pub(super) fn account_ops(account: &mut Account, changes: &mut AccountChanges, ops: &mut Vec<PersistOp>) {
    if !changes.mirror.is_empty() {
        let taken = changes.mirror.take(DRAIN_BATCH_RECORDS, &account.mirror);
        if account.note_mirror_stored(changes.mirror.is_empty()) {
            changes.record = true;
        }
        let mirror = &account.mirror;
        for asset in taken.assets {
            let adam_id = mirror.name(asset.adam_id);
            let key = keys::asset_key(&account.id, adam_id, asset.pricing);
            ops.push(match mirror.asset(&asset) {
                Some(counts) => {
                    let record = AssetRecord {
                        account_id: account.id.clone(),
                        adam_id: adam_id.to_owned(),
                        pricing_param: asset.pricing,
                        counts: counts.clone(),
                    };
                    PersistOp::Put { key, value: Box::new(Record::Asset(record)) }
                }
                None => PersistOp::Delete { key },
            });
        }
        for id in taken.users {
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
        for target in taken.targets {
            let since = |key: &AssignmentKey| Some(mirror.confirmed_since(key));
            ops.push(target_op(
                target_record(&account.id, mirror, target, mirror.assignments_of(target).copied(), since),
                ASSIGNMENT_PREFIX,
            ));
        }
    }
    if std::mem::take(&mut changes.record) {
        ops.push(PersistOp::Put { key: account_key(&account.id), value: Box::new(Record::Account(account.to_record())) });
    }
    license_ops(account, changes, ops);
}

/// Provenance, hold, awaited-pair, user-hold and operation records.
fn license_ops(account: &Account, changes: &mut AccountChanges, ops: &mut Vec<PersistOp>) {
    // A Clean Up may change every device's record at once: like the mirror's, they are written at
    // most DRAIN_BATCH_RECORDS an output (the rest by the next polls), and records of an earlier
    // engine's form are deleted with the last batch, once their replacements are written.
    for _ in 0..DRAIN_BATCH_RECORDS {
        let Some(target) = changes.ours.pop_first() else { break };
        let ours = account.licenses.ours().of_target(target);
        ops.push(target_op(target_record(&account.id, &account.mirror, target, ours, |_| None), PROVENANCE_PREFIX));
    }
    if changes.ours.is_empty() {
        ops.extend(std::mem::take(&mut changes.stale).into_iter().map(|key| PersistOp::Delete { key }));
    }
    for (key, reason) in std::mem::take(&mut changes.holds) {
        let present = reason.is_some();
        ops.push(pair_op(pair(account, &key, reason), HOLD_PREFIX, present));
    }
    for (key, present) in std::mem::take(&mut changes.awaited) {
        ops.push(pair_op(pair(account, &key, None), AWAITED_PREFIX, present));
    }
    for (id, reason) in std::mem::take(&mut changes.user_holds) {
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
    for op_id in std::mem::take(&mut changes.operations) {
        let key = operation_key(&account.id, op_id);
        ops.push(match account.licenses.operation(op_id) {
            Some(op) => PersistOp::Put { key, value: Box::new(Record::Operation(operation_record(&account.id, op, &account.mirror))) },
            None => PersistOp::Delete { key },
        });
    }
}

/// Device and user fact records.
pub(super) fn fact_ops(facts: &Facts, devices: BTreeSet<String>, users: BTreeSet<String>, ops: &mut Vec<PersistOp>) {
    for serial in devices {
        if let Some(device) = facts.devices.get(&serial) {
            let record = DeviceRecord { serial_number: serial.clone(), facts: device.clone() };
            ops.push(PersistOp::Put { key: device_key(&serial), value: Box::new(Record::Device(record)) });
        }
    }
    for id in users {
        if let Some(user) = facts.users.get(&id) {
            let record = UserRecord { client_user_id: id.clone(), facts: user.clone() };
            ops.push(PersistOp::Put { key: user_key(&id), value: Box::new(Record::User(record)) });
        }
    }
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

/// The apps assigned to one device or user, as its record: `keys` are its pairs, `since` tells
/// when Apple confirmed each (the mirror's records; `None`: not kept, as in provenance records).
fn target_record(
    account_id: &str,
    mirror: &Mirror,
    target: Target,
    keys: impl Iterator<Item = AssignmentKey>,
    since: impl Fn(&AssignmentKey) -> Option<Since>,
) -> AssignmentsRecord {
    let name = mirror.name(target.id()).to_owned();
    let (serial_number, client_user_id) = match target {
        Target::Device(_) => (Some(name), None),
        Target::User(_) => (None, Some(name)),
    };
    let (mut adam_ids, mut plus_adam_ids) = (Vec::new(), Vec::new());
    let (mut confirmed_since, mut plus_confirmed_since) = (Vec::new(), Vec::new());
    for key in keys {
        let adam_id = mirror.name(key.asset.adam_id).to_owned();
        let (ids, times) = match key.asset.pricing {
            PricingParam::Stdq => (&mut adam_ids, &mut confirmed_since),
            PricingParam::Plus => (&mut plus_adam_ids, &mut plus_confirmed_since),
        };
        ids.push(adam_id);
        times.extend(since(&key));
    }
    AssignmentsRecord {
        account_id: account_id.to_owned(),
        serial_number,
        client_user_id,
        adam_ids,
        plus_adam_ids,
        confirmed_since,
        plus_confirmed_since,
    }
}

/// A device's or user's record under `prefix` written, or deleted when it names no app.
fn target_op(record: AssignmentsRecord, prefix: &str) -> PersistOp {
    let key = record.key(prefix);
    if record.adam_ids.is_empty() && record.plus_adam_ids.is_empty() {
        PersistOp::Delete { key }
    } else {
        PersistOp::Put { key, value: Box::new(Record::Assignments(record)) }
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
