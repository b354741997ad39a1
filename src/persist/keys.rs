//! The keys of the stored records (components percent-encoded): `account/<id>`, `policy/<id>` (a policy without its
//! targets), `targets/<account>/<policy>/<n>` (a policy's targets, spread over a few records by
//! their names' hash, so that a one-target scope change writes one record of about a hundred
//! targets, not the whole policy; engines before them wrote `scope/<account>/<policy>/<target>`,
//! one per target, which a restore reads and replaces),
//! `prov/<account>/<d|u>/<target>` (one per device or user, with the apps this instance assigned
//! to it; engines before it wrote `prov/<account>/<adamId>/<pricing>/<d|u>/<target>`, one per
//! assignment, which a restore reads and writes again per target),
//! `hold/<account>/<adamId>/<pricing>/<d|u>/<target>` (pairs not to assign again, with why),
//! `await/<account>/…` (likewise, pairs of unanswered associations Apple may still make), `op/<account>/<operation>`
//! (operations in flight at Apple), the account's mirror of Apple's data (`asg/<account>/<d|u>/<target>`
//! one per device or user with the apps Apple assigned to it, `asset/<account>/<adamId>/<pricing>`
//! with the counts, `vppuser/<account>/<id>` one per user Apple knows), `userhold/<account>/<id>` (users Apple refused to register),
//! `device/<serial>`, `user/<id>`, `settings`.

use serde::Serialize;

use super::{AssignmentsRecord, LoadedRecord, PairRecord};
use crate::vocab::PricingParam;

/// Key prefixes and keys of the stored records (see the module documentation).
pub const ACCOUNT_PREFIX: &str = "account/";
pub const POLICY_PREFIX: &str = "policy/";
pub const SCOPE_PREFIX: &str = "targets/";
/// One record per target in a policy's scope, as engines before [`SCOPE_PREFIX`] wrote them: read only.
pub const SCOPE_TARGET_PREFIX: &str = "scope/";
pub const PROVENANCE_PREFIX: &str = "prov/";
pub const HOLD_PREFIX: &str = "hold/";
pub const OPERATION_PREFIX: &str = "op/";
pub const DEVICE_PREFIX: &str = "device/";
pub const USER_PREFIX: &str = "user/";
pub const SETTINGS_KEY: &str = "settings";
pub const ASSIGNMENT_PREFIX: &str = "asg/";
pub const ASSET_PREFIX: &str = "asset/";
pub const APPLE_USER_PREFIX: &str = "vppuser/";
pub const USER_HOLD_PREFIX: &str = "userhold/";
pub const AWAITED_PREFIX: &str = "await/";
/// Prefixes of records filed under an account: `<prefix><account>/…`.
const ACCOUNT_SCOPED_PREFIXES: [&str; 10] = [
    SCOPE_PREFIX,
    SCOPE_TARGET_PREFIX,
    PROVENANCE_PREFIX,
    HOLD_PREFIX,
    AWAITED_PREFIX,
    OPERATION_PREFIX,
    ASSIGNMENT_PREFIX,
    ASSET_PREFIX,
    APPLE_USER_PREFIX,
    USER_HOLD_PREFIX,
];

fn enc(component: &str) -> String {
    form_urlencoded::byte_serialize(component.as_bytes()).collect()
}

/// The key of an account record.
pub fn account_key(account_id: &str) -> String {
    format!("{ACCOUNT_PREFIX}{account_id}")
}

/// The key of a policy record.
pub fn policy_key(policy_id: &str) -> String {
    format!("{POLICY_PREFIX}{policy_id}")
}

/// The key of record `index` of a policy's targets.
pub fn scope_key(account_id: &str, policy_id: &str, index: u32) -> String {
    format!("{SCOPE_PREFIX}{}/{}/{index}", enc(account_id), enc(policy_id))
}

/// The key of the record of one target in a policy's scope, as engines before [`scope_key`] wrote it.
pub fn scope_target_key(account_id: &str, policy_id: &str, target: &str) -> String {
    format!("{SCOPE_TARGET_PREFIX}{}/{}/{}", enc(account_id), enc(policy_id), enc(target))
}

/// The key of a device fact record.
pub fn device_key(serial_number: &str) -> String {
    format!("{DEVICE_PREFIX}{}", enc(serial_number))
}

/// The key of a user fact record.
pub fn user_key(client_user_id: &str) -> String {
    format!("{USER_PREFIX}{}", enc(client_user_id))
}

/// The device or user a fact record's key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactKey {
    Device(String),
    User(String),
}

/// The device or user a fact record's key names; `None` for any other key.
pub fn fact_of_key(key: &str) -> Option<FactKey> {
    if let Some(serial) = key.strip_prefix(DEVICE_PREFIX) {
        return Some(FactKey::Device(dec(serial)));
    }
    key.strip_prefix(USER_PREFIX).map(|user| FactKey::User(dec(user)))
}

/// Whether a stored record belongs to one account: its account record, the pairs, operations and
/// mirror records filed under it, and the policies that use it. Device and user facts and the
/// settings belong to no account.
pub(crate) fn belongs_to_account(record: &LoadedRecord, account_id: &str) -> bool {
    if record.key.starts_with(POLICY_PREFIX) {
        return record.value.account_id().as_deref() == Some(account_id);
    }
    if let Some(id) = record.key.strip_prefix(ACCOUNT_PREFIX) {
        return id == account_id;
    }
    let encoded = enc(account_id);
    ACCOUNT_SCOPED_PREFIXES
        .iter()
        .any(|prefix| record.key.strip_prefix(prefix).and_then(|rest| rest.split('/').next()) == Some(encoded.as_str()))
}

/// Whether a stored record belongs to no account (device and user facts, settings).
pub fn is_global(key: &str) -> bool {
    key.starts_with(DEVICE_PREFIX) || key.starts_with(USER_PREFIX) || key == SETTINGS_KEY
}

/// Which account a stored record belongs to: see [`account_of_record`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordAccount {
    /// The record belongs to this account (the id as the host knows it, not encoded).
    Account(String),
    /// A record of no account: device and user facts, settings (and any key the engine does not write).
    NoAccount,
    /// A policy record whose value was not given: a policy names its account only in its value.
    InValue,
}

/// The account a stored record belongs to, as [`belongs_to_account`] decides it, from the key —
/// and for a policy record from `value` (for a delete, the value stored under the key; `None`:
/// not given, the answer is then [`RecordAccount::InValue`]). Hosts that share one store
/// between instances fence each write by it (the JavaScript `accountOfRecord`).
pub fn account_of_record(key: &str, value: Option<&serde_json::Value>) -> RecordAccount {
    if key.starts_with(POLICY_PREFIX) {
        return match value {
            None => RecordAccount::InValue,
            Some(value) => match value.get("accountId").and_then(serde_json::Value::as_str) {
                Some(id) => RecordAccount::Account(id.to_owned()),
                None => RecordAccount::NoAccount,
            },
        };
    }
    if let Some(id) = key.strip_prefix(ACCOUNT_PREFIX) {
        return RecordAccount::Account(id.to_owned());
    }
    for prefix in ACCOUNT_SCOPED_PREFIXES {
        if let Some(rest) = key.strip_prefix(prefix) {
            return RecordAccount::Account(dec(rest.split('/').next().unwrap_or(rest)));
        }
    }
    RecordAccount::NoAccount
}

/// One key component back from `application/x-www-form-urlencoded` (`+` is a space).
fn dec(component: &str) -> String {
    percent_encoding::percent_decode_str(&component.replace('+', " ")).decode_utf8_lossy().into_owned()
}

/// Where the records that [`crate::Engine::adopt`] keeps for one account are stored, so that a
/// store can read them alone (key lookups and range scans) instead of every record: the account's
/// own records and (unless left out, see [`account_key_ranges`]) the records of no account (device
/// and user facts, settings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountKeyRanges {
    /// Exact keys: the account record and the settings.
    pub keys: Vec<String>,
    /// Key prefixes, each ending in `/`: every key that starts with one (the records filed under
    /// the account, device and user facts).
    pub prefixes: Vec<String>,
    /// Records under these prefixes name their account only in their value: they belong to the
    /// account when the value's `field` is its id (policies).
    pub by_value: Vec<ValueKeyed>,
}

/// Records under `prefix` whose value's `field` names their account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValueKeyed {
    pub prefix: &'static str,
    pub field: &'static str,
}

/// The key ranges of one account's records and, with `shared`, of the records of no account (see
/// [`AccountKeyRanges`]): a record is in them exactly when `belongs_to_account(record, account_id)`,
/// or `shared && is_global(key)`. An engine adopting several accounts in a row needs the records of
/// no account with the first adoption only: [`crate::Engine::adopt`] keeps just the facts it lacks and
/// the settings when given, and it is told every fact and setting since it started.
pub fn account_key_ranges(account_id: &str, shared: bool) -> AccountKeyRanges {
    let encoded = enc(account_id);
    let mut keys = vec![account_key(account_id)];
    let mut prefixes: Vec<String> = ACCOUNT_SCOPED_PREFIXES.iter().map(|prefix| format!("{prefix}{encoded}/")).collect();
    if shared {
        keys.push(SETTINGS_KEY.to_owned());
        prefixes.extend([DEVICE_PREFIX.to_owned(), USER_PREFIX.to_owned()]);
    }
    AccountKeyRanges { keys, prefixes, by_value: vec![ValueKeyed { prefix: POLICY_PREFIX, field: "accountId" }] }
}

/// The key of an operation record.
pub fn operation_key(account_id: &str, operation_id: u64) -> String {
    format!("{OPERATION_PREFIX}{}/{operation_id}", enc(account_id))
}

/// The key of an asset record of an account's mirror.
pub fn asset_key(account_id: &str, adam_id: &str, pricing: PricingParam) -> String {
    format!("{ASSET_PREFIX}{}/{}/{}", enc(account_id), enc(adam_id), pricing.name())
}

/// The key of a record of a user Apple knows, in an account's mirror.
pub fn apple_user_key(account_id: &str, client_user_id: &str) -> String {
    format!("{APPLE_USER_PREFIX}{}/{}", enc(account_id), enc(client_user_id))
}

/// The key of a user not to register at Apple again.
pub fn user_hold_key(account_id: &str, client_user_id: &str) -> String {
    format!("{USER_HOLD_PREFIX}{}/{}", enc(account_id), enc(client_user_id))
}

/// The last key components naming a device (`d/<serial>`) or a user (`u/<clientUserId>`).
fn target_path(serial_number: &Option<String>, client_user_id: &Option<String>) -> String {
    match (serial_number, client_user_id) {
        (Some(serial), _) => format!("d/{}", enc(serial)),
        (None, Some(user)) => format!("u/{}", enc(user)),
        (None, None) => "?/".to_owned(),
    }
}

impl PairRecord {
    /// The record's key under `prefix` ([`PROVENANCE_PREFIX`], [`HOLD_PREFIX`] or [`AWAITED_PREFIX`]).
    pub fn key(&self, prefix: &str) -> String {
        let pair = &self.pair;
        let pricing = pair.pricing_param.name();
        let target = target_path(&pair.serial_number, &pair.client_user_id);
        format!("{prefix}{}/{}/{pricing}/{target}", enc(&self.account_id), enc(&pair.adam_id))
    }
}

impl AssignmentsRecord {
    /// The record's key under `prefix` ([`ASSIGNMENT_PREFIX`] or [`PROVENANCE_PREFIX`]):
    /// `<prefix><account>/d/<serial>` or `<prefix><account>/u/<clientUserId>`.
    pub fn key(&self, prefix: &str) -> String {
        format!("{prefix}{}/{}", enc(&self.account_id), target_path(&self.serial_number, &self.client_user_id))
    }
}

/// Whether `key` is a provenance record of one pair, as engines before per-target provenance
/// wrote them (`prov/<account>/<adamId>/<pricing>/<d|u>/<target>`), not of one device or user
/// (`prov/<account>/<d|u>/<target>`).
pub fn is_pair_provenance_key(key: &str) -> bool {
    key.strip_prefix(PROVENANCE_PREFIX).is_some_and(|rest| rest.split('/').count() >= 5)
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use crate::persist::StoredRecord;
    use crate::vocab::LicensePair;

    /// One record of every kind the engine writes for `account_id`, plus the records of no account.
    fn records_of(account_id: &str) -> Vec<StoredRecord> {
        let record = |key: String| StoredRecord { key, value: serde_json::json!({ "accountId": account_id }) };
        let pair = |serial: Option<&str>, user: Option<&str>| PairRecord {
            account_id: account_id.to_owned(),
            pair: LicensePair {
                adam_id: "40 8/+".to_owned(),
                pricing_param: PricingParam::Stdq,
                serial_number: serial.map(str::to_owned),
                client_user_id: user.map(str::to_owned),
            },
            reason: None,
        };
        let held = AssignmentsRecord {
            account_id: account_id.to_owned(),
            serial_number: Some("S/1 +".to_owned()),
            client_user_id: None,
            adam_ids: Vec::new(),
            plus_adam_ids: Vec::new(),
            confirmed_since: Vec::new(),
            plus_confirmed_since: Vec::new(),
        };
        vec![
            record(account_key(account_id)),
            record(policy_key(&format!("p of {account_id}"))),
            record(scope_key(account_id, "p/1", 3)),
            record(scope_target_key(account_id, "p/1", "S 1")),
            record(pair(Some("S1"), None).key(PROVENANCE_PREFIX)),
            record(held.key(PROVENANCE_PREFIX)),
            record(pair(None, Some("u/1")).key(HOLD_PREFIX)),
            record(pair(Some("S%1"), None).key(AWAITED_PREFIX)),
            record(operation_key(account_id, 7)),
            record(held.key(ASSIGNMENT_PREFIX)),
            record(asset_key(account_id, "408", PricingParam::Plus)),
            record(apple_user_key(account_id, "u 1")),
            record(user_hold_key(account_id, "u+1")),
        ]
    }

    fn global_records() -> Vec<StoredRecord> {
        [device_key("S/1"), user_key("u 1"), SETTINGS_KEY.to_owned()].map(|key| StoredRecord { key, value: serde_json::json!({}) }).into()
    }

    /// Ids that encode differently, contain each other, or hold the characters keys separate with.
    const IDS: [&str; 8] = ["a", "A", "ab", "a b", "a+b", "a/1", "ä%2F", "a%2F1"];

    #[test]
    fn the_records_of_every_kind_name_the_account_they_belong_to() {
        let scoped: Vec<String> = records_of("a").iter().map(|r| r.key.clone()).collect();
        for prefix in ACCOUNT_SCOPED_PREFIXES {
            assert!(scoped.iter().any(|key| key.starts_with(prefix)), "no record of {prefix} in the test");
        }
        for id in IDS {
            for record in records_of(id) {
                assert_eq!(account_of_record(&record.key, Some(&record.value)), RecordAccount::Account(id.to_owned()), "{}", record.key);
                assert!(belongs_to_account(&record.clone().into(), id) && !is_global(&record.key), "{}", record.key);
                for other in IDS.iter().filter(|other| **other != id) {
                    assert!(!belongs_to_account(&record.clone().into(), other), "{} is not {other}'s", record.key);
                }
            }
        }
        for record in global_records() {
            assert_eq!(account_of_record(&record.key, Some(&record.value)), RecordAccount::NoAccount, "{}", record.key);
            assert!(is_global(&record.key));
        }
        let policy = policy_key("p");
        assert_eq!(account_of_record(&policy, None), RecordAccount::InValue, "a policy without its value");
        assert_eq!(account_of_record(&policy, Some(&serde_json::Value::Null)), RecordAccount::NoAccount, "nothing stored");
        assert_eq!(account_of_record(&scope_key("a/1", "p", 0), None), RecordAccount::Account("a/1".to_owned()), "no value needed");
    }

    #[test]
    fn provenance_keys_of_one_pair_are_told_from_those_of_one_device_or_user() {
        for id in IDS {
            for record in records_of(id).into_iter().filter(|r| r.key.starts_with(PROVENANCE_PREFIX)) {
                let per_pair = record.key.contains("/STDQ/");
                assert_eq!(is_pair_provenance_key(&record.key), per_pair, "{}", record.key);
            }
        }
        assert!(!is_pair_provenance_key(&scope_target_key("a", "p/1", "S/1")), "another prefix");
    }

    #[test]
    fn an_accounts_key_ranges_hold_exactly_the_records_adopt_keeps_with_or_without_the_shared_ones() {
        let everything: Vec<StoredRecord> = IDS.iter().flat_map(|id| records_of(id)).chain(global_records()).collect();
        for (id, shared) in IDS.iter().flat_map(|id| [(*id, true), (*id, false)]) {
            let ranges = account_key_ranges(id, shared);
            assert!(ranges.prefixes.iter().all(|prefix| prefix.ends_with('/')), "range ends are the prefix with '/' → '0'");
            let in_ranges = |record: &StoredRecord| {
                ranges.keys.contains(&record.key)
                    || ranges.prefixes.iter().any(|prefix| record.key.starts_with(prefix.as_str()))
                    || ranges.by_value.iter().any(|by| {
                        record.key.starts_with(by.prefix) && record.value.get(by.field).and_then(serde_json::Value::as_str) == Some(id)
                    })
            };
            for record in &everything {
                let expected = (shared && is_global(&record.key)) || belongs_to_account(&record.clone().into(), id);
                assert_eq!(in_ranges(record), expected, "{} for account {id} (shared: {shared})", record.key);
            }
        }
    }
}
