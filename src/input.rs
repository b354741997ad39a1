//! Everything the host tells the engine: commands, Apple's answers, and the passing of time.

use std::collections::BTreeMap;

use serde::de::{Deserializer, Error};
use serde::Deserialize;

use crate::apple::wire::PricingParam;
use crate::json_object;
use crate::policy::AppPolicy;

/// One input for [`crate::Engine::handle_input`].
///
/// The host passes account commands as the administrator issues them, every answer to a
/// [`crate::Request`] (or the network error instead), and [`Input::Timeout`] when the timer
/// armed from [`crate::Output::Timeout`] fires.
///
/// From JSON, an input is an object tagged by `type` (`{"type": "refresh", "accountId": "a1"}`),
/// with the variant's fields in camelCase; unknown fields are refused.
//
// The derive (`remote = "Self"`) reads the externally tagged form (`{"refresh": {...}}`); the
// `Deserialize` impl below moves the tag there. That reads the fields once, through
// `serde_json::Value`, instead of through serde's `Content` buffer (wasm size).
#[derive(Debug, Clone, Deserialize)]
#[serde(remote = "Self", rename_all = "camelCase", rename_all_fields = "camelCase", deny_unknown_fields)]
pub enum Input {
    /// Add an Apps and Books account from an uploaded sToken. The engine then reads the
    /// location's client config, claims it if nobody has, and runs a full refresh.
    AddAccount { account_id: String, name: String, token: String },
    /// Rename an account and/or replace its token (the way out of *token invalid*).
    EditAccount {
        account_id: String,
        name: Option<String>,
        token: Option<String>,
    },
    /// Delete an account. Refused while an app policy uses it.
    DeleteAccount { account_id: String },
    /// Validate the token and reach Apple (`GET /client/config`); answered by a `testResult` event.
    TestAccount { account_id: String },
    /// Start a full refresh now.
    Refresh { account_id: String },
    /// Take the location back from another MDM (`POST /client/config` with our `mdmInfo`).
    ReclaimOwnership { account_id: String },
    /// Create or replace an app policy.
    SetPolicy {
        #[serde(deserialize_with = "crate::json_object::strict")]
        policy: AppPolicy,
    },
    /// Remove an app policy; the licenses it alone wanted are reclaimed.
    RemovePolicy { policy_id: String },
    /// Targets entering or leaving a policy's scope (labels or groups changed). A target leaving
    /// is reclaimed at once unless another policy still wants it.
    UpdatePolicyTargets {
        policy_id: String,
        #[serde(default)]
        add: Vec<String>,
        #[serde(default)]
        remove: Vec<String>,
    },
    /// A device enrolled (or re-enrolled: licenses it holds are reported ready again).
    DeviceEnrolled {
        serial_number: String,
        client_user_id: Option<String>,
        #[serde(default)]
        shared_ipad: bool,
    },
    /// A device was retired: its licenses are reclaimed.
    DeviceRetired { serial_number: String },
    /// The device reported the app installed (lifts an earlier hold).
    AppInstalled { serial_number: String, adam_id: String },
    /// The user removed the app from the device: its license is reclaimed and not reassigned.
    AppRemoved { serial_number: String, adam_id: String },
    /// The install failed or was cancelled: the license is reclaimed and not reassigned.
    InstallFailed {
        serial_number: String,
        adam_id: String,
        #[serde(default)]
        cancelled: bool,
    },
    /// An app installed unmanaged became managed: it needs a license (ready again if held).
    AppConvertedToManaged { serial_number: String, adam_id: String },
    /// The host wants to push an app update: `licenseReady` again where the license is held.
    UpdatePush { serial_number: String, adam_id: String },
    /// A user the MDM manages (registered at Apple when a user-license policy needs it).
    UserAdded { client_user_id: String, email: Option<String>, managed_apple_id: Option<String> },
    /// A user left the MDM: their licenses are reclaimed.
    UserRemoved { client_user_id: String },
    /// An administrator reclaims one license this MDM assigned.
    ReclaimLicense {
        account_id: String,
        adam_id: String,
        pricing_param: PricingParam,
        serial_number: Option<String>,
        client_user_id: Option<String>,
    },
    /// An administrator reclaims every license of an app this MDM assigned in the account.
    ReclaimApp { account_id: String, adam_id: String, pricing_param: PricingParam },
    /// An administrator reclaims every license this MDM assigned in the account.
    ReclaimAccount { account_id: String },
    /// Release every license this MDM assigned that is no longer used, in every account.
    Reconcile,
    /// Adopt other MDMs' assignments a policy wants; release the rest (revocable apps only).
    CleanUp { account_id: String },
    /// Emit `notifyUser` for every released license, or stop doing so.
    SetLicenseRemovalNotification { enabled: bool },
    /// The HTTP answer to the request with this id. Header names may have any case.
    Response {
        id: u64,
        status: u16,
        #[serde(default)]
        headers: BTreeMap<String, String>,
        #[serde(default)]
        body: String,
    },
    /// The request with this id got no HTTP answer (DNS, TLS, connection reset, timeout).
    NetworkError { id: u64, message: String },
    /// The timer fired; due work is done on the next [`crate::Engine::poll_output`].
    Timeout,
}

/// Variants without fields: their tag alone names them (other fields are ignored).
const UNIT_VARIANTS: [&str; 2] = ["reconcile", "timeout"];

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde_json::Value;
        let mut fields = json_object::object(deserializer)?;
        let tag: String = json_object::take(&mut fields, "type")?;
        let externally_tagged = if UNIT_VARIANTS.contains(&tag.as_str()) {
            Value::String(tag)
        } else {
            Value::Object(std::iter::once((tag, Value::Object(fields))).collect())
        };
        Input::deserialize(externally_tagged).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn parse(json: &str) -> Result<Input, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn inputs_are_tagged_by_type_with_camel_case_fields() {
        let input = parse(r#"{"type": "addAccount", "accountId": "a1", "name": "A", "token": "t"}"#).unwrap();
        assert!(matches!(input, Input::AddAccount { account_id, .. } if account_id == "a1"));
        let input = parse(r#"{"type": "response", "id": 3, "status": 503, "headers": {"Retry-After": "5"}}"#).unwrap();
        assert!(matches!(input, Input::Response { id: 3, status: 503, body, .. } if body.is_empty()));
        assert!(matches!(parse(r#"{"type": "timeout"}"#), Ok(Input::Timeout)));
    }

    #[test]
    fn unknown_types_unknown_fields_and_wrong_types_are_refused() {
        assert!(parse(r#"{"type": "launchMissiles"}"#).unwrap_err().contains("unknown variant"));
        assert!(parse(r#"{"type": "refresh", "accountId": "a1", "acountId": "typo"}"#).unwrap_err().contains("unknown field"));
        assert!(parse(r#"{"type": "refresh", "accountId": 5}"#).unwrap_err().contains("invalid type"));
        assert!(parse(r#"{"type": "response", "id": -1, "status": 200}"#).is_err());
        assert!(parse(r#"{"type": "refresh"}"#).unwrap_err().contains("missing field"));
        assert!(parse(r#"{"accountId": "a1"}"#).unwrap_err().contains("missing field `type`"));
        assert!(parse(r#"{"type": 5}"#).unwrap_err().contains("invalid type"));
        assert!(parse(r#"["refresh", "a1"]"#).unwrap_err().contains("invalid type"));
        let policy = r#"{"type": "setPolicy", "policy": ["p", "P", "a1", "1", "STDQ", "device", []]}"#;
        assert!(parse(policy).unwrap_err().contains("invalid type"));
    }

    #[test]
    fn the_tag_may_come_anywhere_and_fieldless_inputs_need_only_their_tag() {
        let input = parse(r#"{"accountId": "a1", "type": "refresh"}"#).unwrap();
        assert!(matches!(input, Input::Refresh { account_id } if account_id == "a1"));
        assert!(matches!(parse(r#"{"type": "reconcile"}"#), Ok(Input::Reconcile)));
        assert!(matches!(parse(r#"{"type": "timeout", "note": 1}"#), Ok(Input::Timeout)));
    }
}
