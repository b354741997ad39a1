//! The keys of the stored records (components percent-encoded): `account/<id>`, `policy/<id>` (a policy without its
//! targets), `scope/<account>/<policy>/<target>` (one per target in a policy's scope, so that a
//! one-target scope change writes one small record, not the whole policy),
//! `prov/<account>/<adamId>/<pricing>/<d|u>/<target>` (one per assignment this instance made),
//! `hold/<account>/…` (pairs not to assign again, with why), `await/<account>/…` (pairs of
//! unanswered associations Apple may still make), `op/<account>/<operation>`
//! (operations in flight at Apple), the account's mirror of Apple's data (`asg/<account>/<d|u>/<target>`
//! one per device or user with the apps Apple assigned to it, `asset/<account>/<adamId>/<pricing>`
//! with the counts, `vppuser/<account>/<id>` one per user Apple knows), `userhold/<account>/<id>` (users Apple refused to register),
//! `device/<serial>`, `user/<id>`, `settings`.


use super::{AssignmentsRecord, PairRecord, StoredRecord};
use crate::vocab::PricingParam;

/// Key prefixes and keys of the stored records (see the module documentation).
pub const ACCOUNT_PREFIX: &str = "account/";
pub const POLICY_PREFIX: &str = "policy/";
pub const SCOPE_PREFIX: &str = "scope/";
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
const ACCOUNT_SCOPED_PREFIXES: [&str; 9] = [
    SCOPE_PREFIX,
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

/// The key of the record of one target in a policy's scope.
pub fn scope_key(account_id: &str, policy_id: &str, target: &str) -> String {
    format!("{SCOPE_PREFIX}{}/{}/{}", enc(account_id), enc(policy_id), enc(target))
}

/// The key of a device fact record.
pub fn device_key(serial_number: &str) -> String {
    format!("{DEVICE_PREFIX}{}", enc(serial_number))
}

/// The key of a user fact record.
pub fn user_key(client_user_id: &str) -> String {
    format!("{USER_PREFIX}{}", enc(client_user_id))
}

/// Whether a stored record belongs to one account: its account record, the pairs, operations and
/// mirror records filed under it, and the policies that use it. Device and user facts and the
/// settings belong to no account.
pub fn belongs_to_account(record: &StoredRecord, account_id: &str) -> bool {
    if record.key.starts_with(POLICY_PREFIX) {
        return record.value.get("accountId").and_then(serde_json::Value::as_str) == Some(account_id);
    }
    if let Some(id) = record.key.strip_prefix(ACCOUNT_PREFIX) {
        return id == account_id;
    }
    let encoded = enc(account_id);
    ACCOUNT_SCOPED_PREFIXES.iter().any(|prefix| {
        record.key.strip_prefix(prefix).and_then(|rest| rest.split('/').next()) == Some(encoded.as_str())
    })
}

/// Whether a stored record belongs to no account (device and user facts, settings).
pub fn is_global(key: &str) -> bool {
    key.starts_with(DEVICE_PREFIX) || key.starts_with(USER_PREFIX) || key == SETTINGS_KEY
}

/// The key of an operation record.
pub fn operation_key(account_id: &str, operation_id: u64) -> String {
    format!("{OPERATION_PREFIX}{}/{operation_id}", enc(account_id))
}

/// The key of an asset record of an account's mirror.
pub fn asset_key(account_id: &str, adam_id: &str, pricing: PricingParam) -> String {
    format!("{ASSET_PREFIX}{}/{}/{}", enc(account_id), enc(adam_id), pricing_name(pricing))
}

/// The key of a record of a user Apple knows, in an account's mirror.
pub fn apple_user_key(account_id: &str, client_user_id: &str) -> String {
    format!("{APPLE_USER_PREFIX}{}/{}", enc(account_id), enc(client_user_id))
}

/// The key of a user not to register at Apple again.
pub fn user_hold_key(account_id: &str, client_user_id: &str) -> String {
    format!("{USER_HOLD_PREFIX}{}/{}", enc(account_id), enc(client_user_id))
}

fn pricing_name(pricing: PricingParam) -> &'static str {
    match pricing {
        PricingParam::Stdq => "STDQ",
        PricingParam::Plus => "PLUS",
    }
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
        let pricing = pricing_name(pair.pricing_param);
        let target = target_path(&pair.serial_number, &pair.client_user_id);
        format!("{prefix}{}/{}/{pricing}/{target}", enc(&self.account_id), enc(&pair.adam_id))
    }
}

impl AssignmentsRecord {
    /// The record's key: `asg/<account>/d/<serial>` or `asg/<account>/u/<clientUserId>`.
    pub fn key(&self) -> String {
        format!("{ASSIGNMENT_PREFIX}{}/{}", enc(&self.account_id), target_path(&self.serial_number, &self.client_user_id))
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn the_host_shim_fences_every_prefix_the_engine_files_under_an_account() {
        let shim = include_str!("../../host-shim/account-keys.js");
        let list = shim.lines().find(|l| l.starts_with("const ACCOUNT_SCOPED_PREFIXES")).expect("the shim's list");
        for prefix in ACCOUNT_SCOPED_PREFIXES {
            assert!(list.contains(&format!("'{prefix}'")), "host-shim/account-keys.js does not know {prefix}");
        }
    }
}
