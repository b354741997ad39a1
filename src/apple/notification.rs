//! Notifications Apple POSTs to the MDM: authentication and parsing.
//!
//! Anyone can POST to the endpoint: the bearer is compared in constant time. (Apple may deliver
//! a notification more than once; the engine applies a `notificationId` once.) Notifications
//! speed things up but never replace `/status` polling.

use serde::de::Error;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::apple::wire::{Assignment, PricingParam, User};
use crate::base::json_object::{self, FieldReader};
use crate::base::secret::Secret;

/// Whether `authorization` is `Bearer <secret>`, compared in constant time.
pub fn bearer_matches(authorization: Option<&str>, secret: &Secret) -> bool {
    let Some(presented) = authorization.and_then(|h| h.trim().strip_prefix("Bearer ")) else { return false };
    bool::from(presented.as_bytes().ct_eq(secret.expose().as_bytes()))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope {
    notification_id: String,
    notification_type: String,
    #[serde(default)]
    notification: serde_json::Value,
    u_id: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ManagementType {
    Associate,
    Disassociate,
    Revoke,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ManagementResult {
    Success,
    Failure,
}

#[derive(Debug, Clone)]
pub struct NotificationError {
    pub error_number: Option<i64>,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone)]
pub struct AssetManagement {
    pub event_id: Option<String>,
    pub result: ManagementResult,
    pub kind: ManagementType,
    pub assignments: Vec<Assignment<'static>>,
    pub error: Option<NotificationError>,
}

#[derive(Debug, Clone)]
pub struct AssetCount {
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub count_delta: i64,
}

/// `USER_MANAGEMENT`: the outcome of a create, update or retire event.
#[derive(Debug, Clone)]
pub struct UserManagement {
    pub event_id: Option<String>,
    pub result: Option<ManagementResult>,
    pub users: Vec<User>,
    pub error: Option<NotificationError>,
}

#[derive(Debug, Clone)]
pub enum Notification {
    Test,
    AssetManagement(AssetManagement),
    AssetCount(AssetCount),
    UserManagement(UserManagement),
    /// `USER_ASSOCIATED`: users who accepted their invitation.
    UsersAssociated(Vec<User>),
    /// A type this engine does not act on (subscriptions): acknowledged and ignored.
    Ignored,
}

/// A parsed notification.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub notification_id: String,
    pub u_id: Option<String>,
    pub notification: Notification,
}

/// Parses a notification body. The error says what is wrong (for the 400 answer's log).
pub fn parse(body: &str) -> Result<Parsed, String> {
    let envelope: Envelope = serde_json::from_str(body).map_err(|e| format!("not a notification: {e}"))?;
    let kind = envelope.notification_type.as_str();
    let notification = match kind {
        "TEST_NOTIFICATION" => Notification::Test,
        "ASSET_MANAGEMENT" => Notification::AssetManagement(payload(envelope.notification, kind, |f| {
            Ok(AssetManagement {
                event_id: f.optional("eventId")?,
                result: f.required("result")?,
                kind: f.required("type")?,
                assignments: owned_assignments(f.optional("assignments")?)?,
                error: error(f)?,
            })
        })?),
        "ASSET_COUNT" => Notification::AssetCount(payload(envelope.notification, kind, |f| {
            Ok(AssetCount {
                adam_id: f.required("adamId")?,
                pricing_param: f.required("pricingParam")?,
                count_delta: f.required("countDelta")?,
            })
        })?),
        "USER_MANAGEMENT" => Notification::UserManagement(payload(envelope.notification, kind, |f| {
            Ok(UserManagement {
                event_id: f.optional("eventId")?,
                result: f.optional("result")?,
                users: f.optional("users")?,
                error: error(f)?,
            })
        })?),
        "USER_ASSOCIATED" => Notification::UsersAssociated(payload(envelope.notification, kind, |f| f.optional("associatedUsers"))?),
        _ => Notification::Ignored,
    };
    Ok(Parsed { notification_id: envelope.notification_id, u_id: envelope.u_id, notification })
}

/// Reads the `notification` object of a notification of type `kind` field by field (unknown
/// fields are ignored; a derived reader would add a visitor per payload type).
fn payload<T>(
    value: serde_json::Value,
    kind: &str,
    read: impl FnOnce(&mut FieldReader<serde_json::Error>) -> Result<T, serde_json::Error>,
) -> Result<T, String> {
    let invalid = |e: serde_json::Error| format!("malformed {kind} notification: {e}");
    let fields = json_object::object(value).map_err(invalid)?;
    read(&mut FieldReader::new(fields)).map_err(invalid)
}

/// The assignments of a payload, read from its JSON value and kept.
fn owned_assignments(list: Vec<serde_json::Value>) -> Result<Vec<Assignment<'static>>, serde_json::Error> {
    list.iter().map(|value| Assignment::deserialize(value).map(Assignment::into_owned)).collect()
}

/// The optional `error` object of a payload.
fn error<E: Error>(fields: &mut FieldReader<E>) -> Result<Option<NotificationError>, E> {
    let Some(error) = fields.optional::<Option<json_object::Fields>>("error")? else { return Ok(None) };
    let mut error = FieldReader::<E>::new(error);
    Ok(Some(NotificationError { error_number: error.optional("errorNumber")?, error_message: error.optional("errorMessage")? }))
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn only_the_exact_bearer_is_accepted() {
        let secret = Secret::new("s3cret".into());
        assert!(bearer_matches(Some("Bearer s3cret"), &secret));
        for wrong in [None, Some(""), Some("s3cret"), Some("Bearer s3cre"), Some("Bearer s3cret2"), Some("Basic s3cret")] {
            assert!(!bearer_matches(wrong, &secret), "{wrong:?}");
        }
    }

    #[test]
    fn apples_failure_example_parses() {
        let parsed = parse(
            r#"{ "notification": { "assignments": [ {"adamId": "1234", "pricingParam": "STDQ", "serialNumber": "device1"},
                 {"adamId": "1234", "pricingParam": "STDQ", "clientUserId": "user1"} ],
                 "error": {"errorMessage": "There aren't enough assets available to complete this association.", "errorNumber": 9709},
                 "eventId": "f743928c", "result": "FAILURE", "type": "ASSOCIATE" },
               "notificationId": "eba66", "notificationType": "ASSET_MANAGEMENT", "uId": "2049025000431439" }"#,
        )
        .unwrap();
        assert_eq!(parsed.notification_id, "eba66");
        let Notification::AssetManagement(m) = parsed.notification else { panic!("wrong type") };
        assert_eq!(m.result, ManagementResult::Failure);
        assert_eq!(m.assignments.len(), 2);
        assert_eq!(m.error.unwrap().error_number, Some(9709));
    }

    #[test]
    fn every_payload_type_parses_and_extra_fields_are_ignored() {
        let envelope = |kind: &str, payload: &str| {
            parse(&format!(r#"{{"notificationId": "n", "notificationType": "{kind}", "notification": {payload}}}"#)).unwrap().notification
        };
        let count = envelope("ASSET_COUNT", r#"{"adamId": "1", "pricingParam": "PLUS", "countDelta": -3, "new": 1}"#);
        assert!(matches!(count, Notification::AssetCount(c) if c.adam_id == "1" && c.pricing_param == PricingParam::Plus && c.count_delta == -3));
        let users = r#"{"eventId": "e", "result": "SUCCESS", "users": [{"clientUserId": "u1"}], "error": {"errorNumber": 1}}"#;
        let Notification::UserManagement(m) = envelope("USER_MANAGEMENT", users) else { panic!("wrong type") };
        assert_eq!((m.event_id.as_deref(), m.result, m.users.len()), (Some("e"), Some(ManagementResult::Success), 1));
        assert_eq!(m.error.and_then(|e| e.error_number), Some(1));
        let Notification::UserManagement(m) = envelope("USER_MANAGEMENT", "{}") else { panic!("wrong type") };
        assert!(m.result.is_none() && m.users.is_empty() && m.error.is_none());
        let associated = envelope("USER_ASSOCIATED", r#"{"associatedUsers": [{"clientUserId": "u1"}, {"clientUserId": "u2"}]}"#);
        assert!(matches!(associated, Notification::UsersAssociated(users) if users.len() == 2));
        let managed = envelope("ASSET_MANAGEMENT", r#"{"result": "SUCCESS", "type": "REVOKE", "error": null}"#);
        assert!(matches!(managed, Notification::AssetManagement(m) if m.kind == ManagementType::Revoke && m.assignments.is_empty()));
    }

    #[test]
    fn garbage_is_refused_with_a_reason() {
        assert!(parse("{").is_err());
        assert!(parse(r#"{"notificationId": "1", "notificationType": "ASSET_COUNT", "notification": {"adamId": 5}}"#).is_err());
        let missing = parse(r#"{"notificationId": "1", "notificationType": "ASSET_MANAGEMENT"}"#).unwrap_err();
        assert!(missing.starts_with("malformed ASSET_MANAGEMENT notification: invalid type: null"), "{missing}");
        let result = parse(r#"{"notificationId": "1", "notificationType": "ASSET_MANAGEMENT", "notification": {"type": "ASSOCIATE"}}"#);
        assert!(result.unwrap_err().contains("missing field `result`"));
    }
}
