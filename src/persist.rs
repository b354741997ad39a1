//! Durable records: what the engine writes through `Output::Persist` and reads back in
//! [`crate::Engine::restore`]. Records are small and keyed, so a change writes only what
//! changed. Keys: `account/<id>`, `policy/<id>`.

use serde::{Deserialize, Serialize};

use crate::apple::wire::MdmInfo;
use crate::policy::AppPolicy;
use crate::secret::Secret;
use crate::sync::Cursors;
use crate::time::Millis;

pub const ACCOUNT_PREFIX: &str = "account/";
pub const POLICY_PREFIX: &str = "policy/";

pub fn account_key(account_id: &str) -> String {
    format!("{ACCOUNT_PREFIX}{account_id}")
}

pub fn policy_key(policy_id: &str) -> String {
    format!("{POLICY_PREFIX}{policy_id}")
}

/// Who manages the account's location, as far as the engine knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "camelCase")]
pub enum Ownership {
    /// Not verified yet.
    Unknown,
    /// Our `mdmInfo` is on the location.
    Ours,
    /// Another MDM's `mdmInfo` is on the location.
    Other(MdmInfo),
}

/// What an account must remember across restarts, besides its id, name and token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DurableAccount {
    pub location_name: Option<String>,
    pub country_code: Option<String>,
    pub ownership: Ownership,
    /// Why the token can't be used; `Some` stops all requests until the token is replaced.
    pub token_problem: Option<String>,
    pub cursors: Cursors,
    pub last_synced_at: Option<Millis>,
    /// A `Retry-After` deadline still in force after a restart.
    pub retry_after_until: Millis,
    pub warned_threshold: Option<u32>,
}

impl DurableAccount {
    pub fn new() -> Self {
        Self {
            location_name: None,
            country_code: None,
            ownership: Ownership::Unknown,
            token_problem: None,
            cursors: Cursors::default(),
            last_synced_at: None,
            retry_after_until: 0,
            warned_threshold: None,
        }
    }
}

/// The stored form of an account. `Debug` hides the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountRecord {
    pub account_id: String,
    pub name: String,
    pub token: Secret,
    #[serde(flatten)]
    pub durable: DurableAccount,
}

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Record {
    Account(AccountRecord),
    Policy(AppPolicy),
}

/// A record as read back from the store.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StoredRecord {
    pub key: String,
    pub value: serde_json::Value,
}
