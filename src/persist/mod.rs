//! Durable records: what the engine writes through `Output::Persist` and reads back in
//! [`crate::Engine::restore`]. Records are small and keyed ([`keys`]), so a change writes only
//! what changed. Each record is a serde type whose JSON is what the store holds; records are read
//! field by field and ignore fields they do not know (a newer engine may write them).

pub mod keys;

use serde::de::{Deserializer, Error};
use serde::{Deserialize, Serialize};

use crate::apple::wire::{AssetCounts, AssetRef, MdmInfo, NewUser};
use crate::base::json_object::{self, deserialize_fields, deserialize_streamed};
use crate::base::secret::Secret;
use crate::base::time::Millis;
use crate::facts::{DeviceFacts, UserFacts};
use crate::policy::{Policy, Scope};
use crate::vocab::{Cursors, LicensePair, LicenseType, OperationKind, PricingParam};
use keys::{scope_key, scope_target_key};

/// A policy as stored: everything but its targets, which are [`ScopeRecord`]s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyRecord {
    pub policy_id: String,
    pub name: String,
    pub account_id: String,
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub license_type: LicenseType,
    /// How many [`ScopeRecord`]s hold the targets; 0 in a record of an engine before them (its
    /// targets are per-target records, or inline): a restore writes the scope again.
    pub scope_records: u32,
    /// Targets kept in the policy record itself, as engines before `scope/` records wrote them:
    /// read, never written (a restore moves them into scope records).
    #[serde(rename = "targets", skip_serializing_if = "Vec::is_empty")]
    pub inline_targets: Vec<String>,
}

impl PolicyRecord {
    /// The stored form of a policy (its targets go to scope records).
    pub fn of(policy: &Policy) -> Self {
        Self {
            policy_id: policy.policy_id.clone(),
            name: policy.name.clone(),
            account_id: policy.account_id.clone(),
            adam_id: policy.adam_id.clone(),
            pricing_param: policy.pricing_param,
            license_type: policy.license_type,
            scope_records: policy.scope.buckets(),
            inline_targets: Vec::new(),
        }
    }

    /// The policy it stores, its scope still empty.
    pub fn into_policy(self) -> Policy {
        Policy {
            policy_id: self.policy_id,
            name: self.name,
            account_id: self.account_id,
            adam_id: self.adam_id,
            pricing_param: self.pricing_param,
            license_type: self.license_type,
            scope: Scope::stored_in(self.scope_records),
        }
    }
}

/// One of the records that hold a policy's targets (serial numbers or client user ids, by the
/// policy's license type): those its [`Scope`] places in record `index`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeRecord {
    pub account_id: String,
    pub policy_id: String,
    pub index: u32,
    pub targets: Vec<String>,
}

impl ScopeRecord {
    /// The record's key: `targets/<account>/<policy>/<index>`.
    pub fn key(&self) -> String {
        scope_key(&self.account_id, &self.policy_id, self.index)
    }
}

/// One target in a policy's scope, as engines before [`ScopeRecord`]s stored it
/// (`scope/<account>/<policy>/<target>`): read, never written (a restore moves them into scope records).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScopeTargetRecord {
    pub account_id: String,
    pub policy_id: String,
    pub target: String,
}

impl ScopeTargetRecord {
    /// The record's key: `scope/<account>/<policy>/<target>`.
    pub fn key(&self) -> String {
        scope_target_key(&self.account_id, &self.policy_id, &self.target)
    }
}

/// An asset of an account's mirror, with Apple's counts (adjusted by confirmed changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetRecord {
    pub account_id: String,
    pub adam_id: String,
    pub pricing_param: PricingParam,
    #[serde(flatten)]
    pub counts: AssetCounts,
}

/// A user Apple knows, in an account's mirror.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppleUserRecord {
    pub account_id: String,
    pub client_user_id: String,
    pub email: Option<String>,
    pub status: Option<String>,
    pub invite_code: Option<String>,
}

/// One (app, device or user) pair of an account: a pair not to assign again (a hold, with its
/// reason), or a pair Apple may still assign for us (awaited). Engines before per-target
/// provenance also wrote one per assignment this instance made: read (a restore writes them again
/// as [`AssignmentsRecord`]s under `prov/`), never written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PairRecord {
    pub account_id: String,
    #[serde(flatten)]
    pub pair: LicensePair,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The apps assigned to one device or user of an account: under `asg/`, those Apple has assigned
/// (the mirror); under `prov/`, those this instance assigned (provenance, without confirmation
/// times). One record per target, so a full refresh of a million assignments (or a Clean Up
/// adopting them) writes one record per device or user, and a change rewrites only the record of
/// the device or user it touched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentsRecord {
    pub account_id: String,
    pub serial_number: Option<String>,
    pub client_user_id: Option<String>,
    /// The adam ids of the assets assigned with pricing `STDQ`.
    pub adam_ids: Vec<String>,
    /// The adam ids of the assets assigned with pricing `PLUS`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plus_adam_ids: Vec<String>,
    /// When this engine first saw Apple confirm each of `adam_ids`, in the same order (Unix
    /// seconds, 0 unknown). Absent from records written before it was kept: unknown.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub confirmed_since: Vec<u32>,
    /// The same for `plus_adam_ids`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plus_confirmed_since: Vec<u32>,
}

/// A user of an account Apple refused to register, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserHoldRecord {
    pub account_id: String,
    pub client_user_id: String,
    pub reason: String,
}

/// An operation sent (or about to be sent) to Apple.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OperationRecord {
    pub account_id: String,
    pub operation_id: u64,
    pub kind: OperationKind,
    pub assets: Vec<AssetRef>,
    pub serial_numbers: Vec<String>,
    pub client_user_ids: Vec<String>,
    pub users: Vec<NewUser>,
    pub reason: String,
    /// Set once Apple accepted the request.
    pub event_id: Option<String>,
    pub submitted_at: Option<Millis>,
    /// When an association was sent (before its answer): after a crash, it may have reached Apple.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sent_at: Option<Millis>,
}

/// What the MDM reported about one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceRecord {
    pub serial_number: String,
    #[serde(flatten)]
    pub facts: DeviceFacts,
}

/// What the MDM reported about one user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub client_user_id: String,
    #[serde(flatten)]
    pub facts: UserFacts,
}

/// Engine-wide settings changed at run time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsRecord {
    pub license_removal_notification: bool,
}

/// Who manages the account's location, as far as the engine knows. Stored as an object tagged
/// by `state`; an MDM's fields sit next to the tag.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Ownership {
    /// Not verified yet.
    #[default]
    Unknown,
    /// Our `mdmInfo` is on the location.
    Ours,
    /// Another MDM's `mdmInfo` is on the location.
    Other(MdmInfo),
}

/// What an account must remember across restarts, besides its id, name and token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DurableAccount {
    /// Apple's id of the location (`uId`), from client config.
    pub u_id: Option<String>,
    pub location_name: Option<String>,
    pub country_code: Option<String>,
    pub ownership: Ownership,
    /// Why the token can't be used; `Some` stops all requests until the token is replaced.
    pub token_problem: Option<String>,
    pub cursors: Cursors,
    pub last_synced_at: Option<Millis>,
    pub last_full_refresh_at: Option<Millis>,
    /// The store holds the whole mirror as of `cursors` (else a restart runs a full refresh).
    pub mirror_stored: bool,
    /// A `Retry-After` deadline still in force after a restart.
    pub retry_after_until: Millis,
    pub warned_threshold: Option<u32>,
    /// The administrator chose Reclaim Ownership and the claim has not succeeded yet: a restart
    /// claims again instead of forgetting the choice.
    pub claim_requested: bool,
}

/// The stored form of an account. `Debug` hides the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRecord {
    pub account_id: String,
    pub name: String,
    pub token: Secret,
    #[serde(flatten)]
    pub durable: DurableAccount,
}

// Records are read by hand, field by field (unknown fields are ignored: a newer engine may
// have written them): a derived reader adds a visitor per record, and serde's derive would
// buffer the flattened fields and the tagged `Ownership` in its `Content` type (see
// `crate::base::json_object`). The round-trip tests below check the names against `Serialize`.

deserialize_fields!(PolicyRecord, |f| Self {
    policy_id: f.required("policyId")?,
    name: f.required("name")?,
    account_id: f.required("accountId")?,
    adam_id: f.required("adamId")?,
    pricing_param: f.required("pricingParam")?,
    license_type: f.required("licenseType")?,
    scope_records: f.optional("scopeRecords")?,
    inline_targets: f.optional("targets")?,
});

deserialize_streamed!(ScopeRecord {
    account_id: String = required "accountId",
    policy_id: String = required "policyId",
    index: u32 = required "index",
    targets: Vec<String> = required "targets",
});

deserialize_fields!(ScopeTargetRecord, |f| Self {
    account_id: f.required("accountId")?,
    policy_id: f.required("policyId")?,
    target: f.required("target")?,
});

deserialize_fields!(AssetRecord, |f| Self {
    account_id: f.required("accountId")?,
    adam_id: f.required("adamId")?,
    pricing_param: f.required("pricingParam")?,
    counts: AssetCounts {
        product_type: f.required("productType")?,
        total_count: f.required("totalCount")?,
        assigned_count: f.required("assignedCount")?,
        available_count: f.required("availableCount")?,
        retired_count: f.required("retiredCount")?,
        device_assignable: f.required("deviceAssignable")?,
        revocable: f.required("revocable")?,
        supported_platforms: f.optional("supportedPlatforms")?,
    },
});

deserialize_fields!(AppleUserRecord, |f| Self {
    account_id: f.required("accountId")?,
    client_user_id: f.required("clientUserId")?,
    email: f.optional("email")?,
    status: f.optional("status")?,
    invite_code: f.optional("inviteCode")?,
});

deserialize_fields!(PairRecord, |f| Self {
    account_id: f.required("accountId")?,
    pair: LicensePair {
        adam_id: f.required("adamId")?,
        pricing_param: f.required("pricingParam")?,
        serial_number: f.optional("serialNumber")?,
        client_user_id: f.optional("clientUserId")?,
    },
    reason: f.optional("reason")?,
});

deserialize_streamed!(AssignmentsRecord {
    account_id: String = required "accountId",
    serial_number: Option<String> = optional "serialNumber",
    client_user_id: Option<String> = optional "clientUserId",
    adam_ids: Vec<String> = required "adamIds",
    plus_adam_ids: Vec<String> = optional "plusAdamIds",
    confirmed_since: Vec<u32> = optional "confirmedSince",
    plus_confirmed_since: Vec<u32> = optional "plusConfirmedSince",
});

deserialize_fields!(UserHoldRecord, |f| Self {
    account_id: f.required("accountId")?,
    client_user_id: f.required("clientUserId")?,
    reason: f.required("reason")?,
});

deserialize_fields!(OperationRecord, |f| Self {
    account_id: f.required("accountId")?,
    operation_id: f.required("operationId")?,
    kind: f.required("kind")?,
    assets: f.required("assets")?,
    serial_numbers: f.required("serialNumbers")?,
    client_user_ids: f.required("clientUserIds")?,
    users: f.required("users")?,
    reason: f.required("reason")?,
    event_id: f.optional("eventId")?,
    submitted_at: f.optional("submittedAt")?,
    sent_at: f.optional("sentAt")?,
});

deserialize_fields!(SettingsRecord, |f| Self { license_removal_notification: f.required("licenseRemovalNotification")? });

deserialize_fields!(DurableAccount, |f| Self {
    u_id: f.optional("uId")?,
    location_name: f.optional("locationName")?,
    country_code: f.optional("countryCode")?,
    ownership: f.required("ownership")?,
    token_problem: f.optional("tokenProblem")?,
    cursors: f.required("cursors")?,
    last_synced_at: f.optional("lastSyncedAt")?,
    last_full_refresh_at: f.optional("lastFullRefreshAt")?,
    mirror_stored: f.optional("mirrorStored")?,
    retry_after_until: f.required("retryAfterUntil")?,
    warned_threshold: f.optional("warnedThreshold")?,
    claim_requested: f.optional("claimRequested")?,
});

deserialize_fields!(DeviceRecord, |f| Self { serial_number: f.required("serialNumber")?, facts: f.rest()? });

deserialize_fields!(UserRecord, |f| Self { client_user_id: f.required("clientUserId")?, facts: f.rest()? });

deserialize_fields!(AccountRecord, |f| Self {
    account_id: f.required("accountId")?,
    name: f.required("name")?,
    token: f.required("token")?,
    durable: f.rest()?,
});

impl<'de> Deserialize<'de> for Ownership {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const STATES: &[&str] = &["unknown", "ours", "other"];
        let mut fields = json_object::object(deserializer)?;
        let state: String = json_object::take(&mut fields, "state")?;
        match state.as_str() {
            "unknown" => Ok(Self::Unknown),
            "ours" => Ok(Self::Ours),
            "other" => json_object::rest(fields).map(Self::Other),
            _ => Err(D::Error::unknown_variant(&state, STATES)),
        }
    }
}

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Record {
    Account(AccountRecord),
    Policy(PolicyRecord),
    Scope(ScopeRecord),
    Pair(PairRecord),
    Assignments(AssignmentsRecord),
    Asset(AssetRecord),
    AppleUser(AppleUserRecord),
    UserHold(UserHoldRecord),
    Operation(OperationRecord),
    Device(DeviceRecord),
    User(UserRecord),
    Settings(SettingsRecord),
}

/// A record as read back from the store.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(test, derive(Serialize))] // the contract test's sample
pub struct StoredRecord {
    pub key: String,
    pub value: serde_json::Value,
}

deserialize_fields!(StoredRecord, |f| Self { key: f.required("key")?, value: f.required("value")? });

/// A record as read back from a store that keeps JSON text, the value not parsed: restoring from
/// these, each value is read straight into the engine's record as it is parsed (a million-license
/// store is never a JSON tree), several times faster than from parsed values.
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(Serialize))] // the contract test's sample
pub struct StoredRecordJson {
    pub key: String,
    /// The record's value as JSON text.
    pub json: String,
}

deserialize_fields!(StoredRecordJson, |f| Self { key: f.required("key")?, json: f.required("json")? });

/// Its key only: an account record's value holds its sToken.
impl std::fmt::Debug for StoredRecordJson {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredRecordJson").field("key", &self.key).finish_non_exhaustive()
    }
}

/// A store record as [`crate::Engine::restore`] and [`crate::Engine::adopt`] take it: made from a
/// [`StoredRecord`] or a [`StoredRecordJson`] (`.into()`).
pub struct LoadedRecord {
    pub(crate) key: String,
    pub(crate) value: LoadedValue,
}

/// Its key only: an account record's value holds its sToken.
impl std::fmt::Debug for LoadedRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedRecord").field("key", &self.key).finish_non_exhaustive()
    }
}

pub(crate) enum LoadedValue {
    Parsed(serde_json::Value),
    Text(String),
}

impl From<StoredRecord> for LoadedRecord {
    fn from(StoredRecord { key, value }: StoredRecord) -> Self {
        Self { key, value: LoadedValue::Parsed(value) }
    }
}

impl From<StoredRecordJson> for LoadedRecord {
    fn from(StoredRecordJson { key, json }: StoredRecordJson) -> Self {
        Self { key, value: LoadedValue::Text(json) }
    }
}

impl LoadedValue {
    /// The value as the record type `T`, text through a JSON tree: for the kinds a store holds few of
    /// (one reader of text for all of them; a reader per kind costs wasm size, about 1 KB a kind).
    pub fn read<T: serde::de::DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        match self {
            Self::Parsed(value) => serde_json::from_value(value),
            Self::Text(text) => serde_json::from_value(serde_json::from_str(&text)?),
        }
    }

    /// The value as the record type `T`, text read straight into it: for the kinds a store holds
    /// hundreds of thousands of (the device and user records, the targets of policies).
    pub fn read_streamed<T: serde::de::DeserializeOwned>(self) -> Result<T, serde_json::Error> {
        match self {
            Self::Parsed(value) => serde_json::from_value(value),
            Self::Text(text) => serde_json::from_str(&text),
        }
    }

    /// The `accountId` field of an object value (policies name their account only there).
    pub fn account_id(&self) -> Option<String> {
        #[derive(Deserialize)]
        struct Named {
            #[serde(rename = "accountId")]
            account_id: String,
        }
        match self {
            Self::Parsed(value) => value.get("accountId").and_then(serde_json::Value::as_str).map(str::to_owned),
            Self::Text(text) => serde_json::from_str::<Named>(text).ok().map(|named| named.account_id),
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn round_trip<T: Serialize + serde::de::DeserializeOwned>(record: &T) -> T {
        serde_json::from_value(serde_json::to_value(record).unwrap()).unwrap()
    }

    #[test]
    fn records_with_flattened_fields_and_ownership_read_back_what_was_written() {
        let other = MdmInfo { id: "other".into(), name: "Other MDM".into(), metadata: "9".into() };
        for ownership in [Ownership::Unknown, Ownership::Ours, Ownership::Other(other)] {
            let durable = DurableAccount { ownership, last_synced_at: Some(5), ..DurableAccount::default() };
            let account = AccountRecord { account_id: "a1".into(), name: "A".into(), token: Secret::new("t".into()), durable };
            assert_eq!(round_trip(&account), account);
        }
        let facts = DeviceFacts { client_user_id: Some("u1".into()), shared_ipad: true, ..DeviceFacts::default() };
        let device = DeviceRecord { serial_number: "S1".into(), facts };
        assert_eq!(round_trip(&device), device);
        let user = UserRecord { client_user_id: "u1".into(), facts: UserFacts { removed: true, ..UserFacts::default() } };
        assert_eq!(round_trip(&user), user);
    }

    #[test]
    fn every_record_reads_back_what_was_written_with_and_without_its_optional_fields() {
        let (account_id, adam_id, pricing_param) = ("a/1".to_owned(), "408709785".to_owned(), PricingParam::Plus);
        let some = |s: &str| Some(s.to_owned());
        for (serial_number, client_user_id, reason) in [(some("S1"), None, some("userRemoved")), (None, some("u1"), None)] {
            let pair = LicensePair { adam_id: adam_id.clone(), pricing_param, serial_number, client_user_id };
            let record = PairRecord { account_id: account_id.clone(), pair, reason };
            assert_eq!(round_trip(&record), record);
        }
        for (serial_number, client_user_id, plus_adam_ids) in [(some("S1"), None, vec!["1".to_owned()]), (None, some("u1"), Vec::new())] {
            let adam_ids = vec![adam_id.clone(), "2".to_owned()];
            let plus_confirmed_since = vec![1_800_000_000; plus_adam_ids.len()];
            let (confirmed_since, account_id) = (vec![1_700_000_000, 0], account_id.clone());
            let held = AssignmentsRecord {
                account_id,
                serial_number,
                client_user_id,
                adam_ids,
                plus_adam_ids,
                confirmed_since,
                plus_confirmed_since,
            };
            assert_eq!(round_trip(&held), held);
        }
        let counts = AssetCounts {
            product_type: crate::vocab::ProductType::Book,
            total_count: 10,
            assigned_count: 4,
            available_count: 6,
            retired_count: 1,
            device_assignable: false,
            revocable: true,
            supported_platforms: vec!["iOS".to_owned(), "macOS".to_owned()],
        };
        let asset = AssetRecord { account_id: account_id.clone(), adam_id: adam_id.clone(), pricing_param, counts };
        assert_eq!(round_trip(&asset), asset);
        for (email, status, invite_code) in [(some("e@x"), some("Registered"), some("c")), (None, None, None)] {
            let user = AppleUserRecord { account_id: account_id.clone(), client_user_id: "u1".into(), email, status, invite_code };
            assert_eq!(round_trip(&user), user);
        }
        let hold = UserHoldRecord { account_id: account_id.clone(), client_user_id: "u1".into(), reason: "refused".into() };
        assert_eq!(round_trip(&hold), hold);
        let settings = SettingsRecord { license_removal_notification: true };
        assert_eq!(round_trip(&settings), settings);
        for (event_id, submitted_at, sent_at) in [(some("e1"), Some(7), None), (None, None, Some(3))] {
            let operation = OperationRecord {
                account_id: account_id.clone(),
                operation_id: 42,
                kind: OperationKind::CreateUsers,
                assets: vec![AssetRef { adam_id: adam_id.clone(), pricing_param: Some(pricing_param) }],
                serial_numbers: vec!["S1".into()],
                client_user_ids: vec!["u1".into()],
                users: vec![NewUser { client_user_id: "u1".into(), email: some("e@x"), managed_apple_id: None }],
                reason: "policy".into(),
                event_id,
                submitted_at,
                sent_at,
            };
            assert_eq!(round_trip(&operation), operation);
        }
        let durable = DurableAccount {
            u_id: some("2049025000431439"),
            location_name: some("School"),
            country_code: some("US"),
            ownership: Ownership::Ours,
            token_problem: some("expired"),
            cursors: Cursors { assignments: some("v1"), users: some("v2") },
            last_synced_at: Some(1),
            last_full_refresh_at: Some(2),
            mirror_stored: true,
            retry_after_until: 3,
            warned_threshold: Some(7),
            claim_requested: true,
        };
        assert_eq!(round_trip(&durable), durable);
    }

    #[test]
    fn records_ignore_fields_a_newer_engine_may_write() {
        let json = r#"{"accountId": "a", "clientUserId": "u", "reason": "r", "addedLater": [1]}"#;
        let hold: UserHoldRecord = serde_json::from_str(json).unwrap();
        assert_eq!(hold.reason, "r");
    }

    #[test]
    fn malformed_records_are_refused_with_the_field_named() {
        let error = |json: &str| serde_json::from_str::<AccountRecord>(json).unwrap_err().to_string();
        let durable = r#""cursors": {}, "retryAfterUntil": 0"#;
        assert!(error(&format!(r#"{{"name": "A", "token": "t", "ownership": {{"state": "ours"}}, {durable}}}"#))
            .contains("missing field `accountId`"));
        let unknown = format!(r#"{{"accountId": "a", "name": "A", "token": "t", "ownership": {{"state": "theirs"}}, {durable}}}"#);
        assert!(error(&unknown).contains("unknown variant `theirs`"));
        assert!(error(r#"["a", "A", "t"]"#).contains("invalid type"));
        let device = serde_json::from_str::<DeviceRecord>(r#"{"serialNumber": 7, "sharedIpad": false}"#).unwrap_err();
        assert!(device.to_string().contains("invalid type"));
    }
}
