//! Everything the host tells the engine: commands, Apple's answers, and the passing of time.

use std::collections::BTreeMap;

use crate::apple::wire::PricingParam;
use crate::contract::tagged_enum::tagged_enum;
use crate::policy::AppPolicy;

tagged_enum! {
    /// One input for [`crate::Engine::handle_input`].
    ///
    /// The host passes account commands as the administrator issues them, every answer to a
    /// [`crate::Request`] (or the network error instead), and [`Input::Timeout`] when the timer
    /// armed from [`crate::Output::Timeout`] fires.
    ///
    /// From JSON, an input is an object tagged by `type` (`{"type": "refresh", "accountId": "a1"}`),
    /// with the variant's fields in camelCase; unknown fields are refused. Each variant's fields are
    /// listed once, below, with their JSON names: [`tagged_enum!`](crate::contract::tagged_enum) makes the enum,
    /// its reader (by hand, not derived: a derived reader would buffer the object in serde's `Content`
    /// and add a visitor per variant, which costs wasm size) and the description the JS contract test
    /// compares with `binding_types.d.ts`.
    #[derive(Debug, Clone)]
    pub enum Input tagged "type", types TYPES {
        /// Add an Apps and Books account from an uploaded sToken. The engine then reads the
        /// location's client config, claims it if nobody has, and runs a full refresh.
        AddAccount = "addAccount" {
            account_id: String = required "accountId",
            name: String = required "name",
            token: String = required "token",
        },
        /// Rename an account and/or replace its token (the way out of *token invalid*).
        EditAccount = "editAccount" {
            account_id: String = required "accountId",
            name: Option<String> = optional "name",
            token: Option<String> = optional "token",
        },
        /// Delete an account. Refused while an app policy uses it.
        DeleteAccount = "deleteAccount" { account_id: String = required "accountId" },
        /// Validate the token and reach Apple (`GET /client/config`); answered by a `testResult` event.
        TestAccount = "testAccount" { account_id: String = required "accountId" },
        /// Start a full refresh now.
        Refresh = "refresh" { account_id: String = required "accountId" },
        /// Take the location back from another MDM (`POST /client/config` with our `mdmInfo`). The
        /// choice is stored: after a restart the engine claims again until the claim succeeds.
        ReclaimOwnership = "reclaimOwnership" { account_id: String = required "accountId" },
        /// Create or replace an app policy.
        SetPolicy = "setPolicy" { policy: AppPolicy = object "policy" },
        /// Remove an app policy; the licenses it alone wanted are reclaimed.
        RemovePolicy = "removePolicy" { policy_id: String = required "policyId" },
        /// Targets entering or leaving a policy's scope (labels or groups changed). A target leaving
        /// is reclaimed at once unless another policy still wants it.
        UpdatePolicyTargets = "updatePolicyTargets" {
            policy_id: String = required "policyId",
            add: Vec<String> = optional "add",
            remove: Vec<String> = optional "remove",
        },
        /// A device enrolled. Reporting what the engine already knows (a host replaying its facts at
        /// start-up) changes nothing and emits nothing. A *re-enrollment* (the device was wiped or
        /// retired and enrolled again) reports the licenses it holds ready again: a device the engine
        /// knew as retired, or a new `enrollment_id` (any string that changes with each enrollment).
        /// A user-enrolled (BYOD) device gets no device licenses (Apple ignores them): see
        /// `licenses::eligibility`. `platform` is Apple's name of the device's platform (`iOS`, …).
        DeviceEnrolled = "deviceEnrolled" {
            serial_number: String = required "serialNumber",
            client_user_id: Option<String> = optional "clientUserId",
            shared_ipad: bool = optional "sharedIpad",
            enrollment_id: Option<String> = optional "enrollmentId",
            user_enrollment: bool = optional "userEnrollment",
            platform: Option<String> = optional "platform",
        },
        /// A device was retired: its licenses are reclaimed.
        DeviceRetired = "deviceRetired" { serial_number: String = required "serialNumber" },
        /// The device reported the app installed (lifts an earlier hold).
        AppInstalled = "appInstalled" {
            serial_number: String = required "serialNumber",
            adam_id: String = required "adamId",
        },
        /// The user removed the app from the device: its license is reclaimed and not reassigned.
        AppRemoved = "appRemoved" {
            serial_number: String = required "serialNumber",
            adam_id: String = required "adamId",
        },
        /// The install failed or was cancelled: the license is reclaimed and not reassigned. With
        /// `reason` `"licenseNotFound"` (the device found no license) the pair is checked with Apple
        /// first: associated again if Apple does not show it, kept if it does; a second such report
        /// within a day reclaims it. Other reasons count as none.
        InstallFailed = "installFailed" {
            serial_number: String = required "serialNumber",
            adam_id: String = required "adamId",
            cancelled: bool = optional "cancelled",
            reason: Option<String> = optional "reason",
        },
        /// An app installed unmanaged became managed: it needs a license (ready again if held).
        AppConvertedToManaged = "appConvertedToManaged" {
            serial_number: String = required "serialNumber",
            adam_id: String = required "adamId",
        },
        /// The host wants to push an app update: `licenseReady` again where the license is held.
        UpdatePush = "updatePush" {
            serial_number: String = required "serialNumber",
            adam_id: String = required "adamId",
        },
        /// A user the MDM manages (registered at Apple when a user-license policy needs it).
        UserAdded = "userAdded" {
            client_user_id: String = required "clientUserId",
            email: Option<String> = optional "email",
            managed_apple_id: Option<String> = optional "managedAppleId",
        },
        /// A user left the MDM: their licenses are reclaimed.
        UserRemoved = "userRemoved" { client_user_id: String = required "clientUserId" },
        /// An administrator reclaims one license this MDM assigned.
        ReclaimLicense = "reclaimLicense" {
            account_id: String = required "accountId",
            adam_id: String = required "adamId",
            pricing_param: PricingParam = required "pricingParam",
            serial_number: Option<String> = optional "serialNumber",
            client_user_id: Option<String> = optional "clientUserId",
        },
        /// An administrator reclaims every license of an app this MDM assigned in the account.
        ReclaimApp = "reclaimApp" {
            account_id: String = required "accountId",
            adam_id: String = required "adamId",
            pricing_param: PricingParam = required "pricingParam",
        },
        /// An administrator reclaims every license this MDM assigned in the account.
        ReclaimAccount = "reclaimAccount" { account_id: String = required "accountId" },
        /// Release every license this MDM assigned that is no longer used, in every account.
        Reconcile = "reconcile",
        /// Adopt other MDMs' assignments a policy wants; release the rest (revocable apps only).
        CleanUp = "cleanUp" { account_id: String = required "accountId" },
        /// Emit `notifyUser` for every released license, or stop doing so.
        SetLicenseRemovalNotification = "setLicenseRemovalNotification" { enabled: bool = required "enabled" },
        /// The HTTP answer to the request with this id. Header names may have any case.
        Response = "response" {
            id: u64 = required "id",
            status: u16 = required "status",
            headers: BTreeMap<String, String> = optional "headers",
            body: String = optional "body",
        },
        /// The request with this id got no HTTP answer (DNS, TLS, connection reset, timeout).
        NetworkError = "networkError" {
            id: u64 = required "id",
            message: String = required "message",
        },
        /// The timer fired; due work is done on the next [`crate::Engine::poll_output`].
        Timeout = "timeout",
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
    fn an_install_failure_reads_its_optional_reason_and_refuses_one_that_is_not_a_string() {
        let input = parse(r#"{"type": "installFailed", "serialNumber": "S1", "adamId": "1", "reason": "licenseNotFound"}"#).unwrap();
        assert!(matches!(input, Input::InstallFailed { reason: Some(r), cancelled: false, .. } if r == "licenseNotFound"));
        let input = parse(r#"{"type": "installFailed", "serialNumber": "S1", "adamId": "1", "reason": null}"#).unwrap();
        assert!(matches!(input, Input::InstallFailed { reason: None, .. }));
        let error = parse(r#"{"type": "installFailed", "serialNumber": "S1", "adamId": "1", "reason": 9610}"#).unwrap_err();
        assert!(error.contains("invalid type"), "{error}");
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
        assert!(matches!(input, Input::DeviceEnrolled { client_user_id: None, shared_ipad: false, user_enrollment: false, platform: None, .. }));
        let input = parse(r#"{"type": "updatePolicyTargets", "policyId": "p", "add": ["S1"]}"#).unwrap();
        assert!(matches!(input, Input::UpdatePolicyTargets { add, remove, .. } if add == ["S1"] && remove.is_empty()));
        let error = parse(r#"{"type": "refresh", "accountId": "a1", "x": 1}"#).unwrap_err();
        assert_eq!(error, "unknown field `x`, expected `accountId`");
        let error = parse(r#"{"type": "appRemoved", "serialNumber": "S1", "adamId": "1", "x": 1}"#).unwrap_err();
        assert_eq!(error, "unknown field `x`, expected one of `serialNumber`, `adamId`");
    }
}
