//! Everything the host tells the engine: commands, Apple's answers, and the passing of time.

use std::collections::BTreeMap;

use serde::de::{Deserializer, Error};
use serde::Deserialize;

use crate::apple::wire::PricingParam;
use crate::base::json_object;
use crate::policy::AppPolicy;

/// One input for [`crate::Engine::handle_input`].
///
/// The host passes account commands as the administrator issues them, every answer to a
/// [`crate::Request`] (or the network error instead), and [`Input::Timeout`] when the timer
/// armed from [`crate::Output::Timeout`] fires.
///
/// From JSON, an input is an object tagged by `type` (`{"type": "refresh", "accountId": "a1"}`),
/// with the variant's fields in camelCase; unknown fields are refused. It is read by hand (below):
/// a derived reader would buffer the object in serde's `Content` and add a visitor per variant
/// (wasm size).
#[derive(Debug, Clone)]
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
    /// Take the location back from another MDM (`POST /client/config` with our `mdmInfo`). The
    /// choice is stored: after a restart the engine claims again until the claim succeeds.
    ReclaimOwnership { account_id: String },
    /// Create or replace an app policy.
    SetPolicy { policy: AppPolicy },
    /// Remove an app policy; the licenses it alone wanted are reclaimed.
    RemovePolicy { policy_id: String },
    /// Targets entering or leaving a policy's scope (labels or groups changed). A target leaving
    /// is reclaimed at once unless another policy still wants it.
    UpdatePolicyTargets {
        policy_id: String,
        add: Vec<String>,
        remove: Vec<String>,
    },
    /// A device enrolled. Reporting what the engine already knows (a host replaying its facts at
    /// start-up) changes nothing and emits nothing. A *re-enrollment* (the device was wiped or
    /// retired and enrolled again) reports the licenses it holds ready again: a device the engine
    /// knew as retired, or a new `enrollment_id` (any string that changes with each enrollment).
    DeviceEnrolled {
        serial_number: String,
        client_user_id: Option<String>,
        shared_ipad: bool,
        enrollment_id: Option<String>,
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
        headers: BTreeMap<String, String>,
        body: String,
    },
    /// The request with this id got no HTTP answer (DNS, TLS, connection reset, timeout).
    NetworkError { id: u64, message: String },
    /// The timer fired; due work is done on the next [`crate::Engine::poll_output`].
    Timeout,
}

/// The `type` of every input, for the error naming an unknown one.
const TYPES: &[&str] = &[
    "addAccount",
    "editAccount",
    "deleteAccount",
    "testAccount",
    "refresh",
    "reclaimOwnership",
    "setPolicy",
    "removePolicy",
    "updatePolicyTargets",
    "deviceEnrolled",
    "deviceRetired",
    "appInstalled",
    "appRemoved",
    "installFailed",
    "appConvertedToManaged",
    "updatePush",
    "userAdded",
    "userRemoved",
    "reclaimLicense",
    "reclaimApp",
    "reclaimAccount",
    "reconcile",
    "cleanUp",
    "setLicenseRemovalNotification",
    "response",
    "networkError",
    "timeout",
];

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut fields = json_object::object(deserializer)?;
        let tag: String = json_object::take(&mut fields, "type")?;
        // Inputs without fields ignore any others.
        match tag.as_str() {
            "reconcile" => return Ok(Input::Reconcile),
            "timeout" => return Ok(Input::Timeout),
            _ => {}
        }
        let mut f = json_object::FieldReader::<D::Error>::new(fields);
        let input = match tag.as_str() {
            "addAccount" => Input::AddAccount { account_id: f.required("accountId")?, name: f.required("name")?, token: f.required("token")? },
            "editAccount" => {
                Input::EditAccount { account_id: f.required("accountId")?, name: f.optional("name")?, token: f.optional("token")? }
            }
            "deleteAccount" => Input::DeleteAccount { account_id: f.required("accountId")? },
            "testAccount" => Input::TestAccount { account_id: f.required("accountId")? },
            "refresh" => Input::Refresh { account_id: f.required("accountId")? },
            "reclaimOwnership" => Input::ReclaimOwnership { account_id: f.required("accountId")? },
            "setPolicy" => Input::SetPolicy { policy: f.object("policy")? },
            "removePolicy" => Input::RemovePolicy { policy_id: f.required("policyId")? },
            "updatePolicyTargets" => Input::UpdatePolicyTargets {
                policy_id: f.required("policyId")?,
                add: f.optional("add")?,
                remove: f.optional("remove")?,
            },
            "deviceEnrolled" => Input::DeviceEnrolled {
                serial_number: f.required("serialNumber")?,
                client_user_id: f.optional("clientUserId")?,
                shared_ipad: f.optional("sharedIpad")?,
                enrollment_id: f.optional("enrollmentId")?,
            },
            "deviceRetired" => Input::DeviceRetired { serial_number: f.required("serialNumber")? },
            "appInstalled" => Input::AppInstalled { serial_number: f.required("serialNumber")?, adam_id: f.required("adamId")? },
            "appRemoved" => Input::AppRemoved { serial_number: f.required("serialNumber")?, adam_id: f.required("adamId")? },
            "installFailed" => Input::InstallFailed {
                serial_number: f.required("serialNumber")?,
                adam_id: f.required("adamId")?,
                cancelled: f.optional("cancelled")?,
            },
            "appConvertedToManaged" => {
                Input::AppConvertedToManaged { serial_number: f.required("serialNumber")?, adam_id: f.required("adamId")? }
            }
            "updatePush" => Input::UpdatePush { serial_number: f.required("serialNumber")?, adam_id: f.required("adamId")? },
            "userAdded" => Input::UserAdded {
                client_user_id: f.required("clientUserId")?,
                email: f.optional("email")?,
                managed_apple_id: f.optional("managedAppleId")?,
            },
            "userRemoved" => Input::UserRemoved { client_user_id: f.required("clientUserId")? },
            "reclaimLicense" => Input::ReclaimLicense {
                account_id: f.required("accountId")?,
                adam_id: f.required("adamId")?,
                pricing_param: f.required("pricingParam")?,
                serial_number: f.optional("serialNumber")?,
                client_user_id: f.optional("clientUserId")?,
            },
            "reclaimApp" => Input::ReclaimApp {
                account_id: f.required("accountId")?,
                adam_id: f.required("adamId")?,
                pricing_param: f.required("pricingParam")?,
            },
            "reclaimAccount" => Input::ReclaimAccount { account_id: f.required("accountId")? },
            "cleanUp" => Input::CleanUp { account_id: f.required("accountId")? },
            "setLicenseRemovalNotification" => Input::SetLicenseRemovalNotification { enabled: f.required("enabled")? },
            "response" => Input::Response {
                id: f.required("id")?,
                status: f.required("status")?,
                headers: f.optional("headers")?,
                body: f.optional("body")?,
            },
            "networkError" => Input::NetworkError { id: f.required("id")?, message: f.required("message")? },
            _ => return Err(D::Error::unknown_variant(&tag, TYPES)),
        };
        f.finish()?;
        Ok(input)
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

    #[test]
    fn every_type_is_known_optional_fields_default_and_unknown_fields_are_named() {
        for tag in TYPES {
            if let Err(error) = parse(&format!(r#"{{"type": "{tag}"}}"#)) {
                assert!(error.contains("missing field"), "{tag}: {error}");
            }
        }
        let input = parse(r#"{"type": "deviceEnrolled", "serialNumber": "S1"}"#).unwrap();
        assert!(matches!(input, Input::DeviceEnrolled { client_user_id: None, shared_ipad: false, .. }));
        let input = parse(r#"{"type": "updatePolicyTargets", "policyId": "p", "add": ["S1"]}"#).unwrap();
        assert!(matches!(input, Input::UpdatePolicyTargets { add, remove, .. } if add == ["S1"] && remove.is_empty()));
        let error = parse(r#"{"type": "refresh", "accountId": "a1", "x": 1}"#).unwrap_err();
        assert_eq!(error, "unknown field `x`, expected `accountId`");
        let error = parse(r#"{"type": "appRemoved", "serialNumber": "S1", "adamId": "1", "x": 1}"#).unwrap_err();
        assert_eq!(error, "unknown field `x`, expected one of `serialNumber`, `adamId`");
    }
}
