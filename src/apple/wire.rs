//! Apple's JSON bodies, as the engine reads and writes them: the envelope every answer carries,
//! client config, pages of assets, assignments and users, and the requests and `/status`
//! answers of asynchronous events. Unknown fields are ignored; fields the engine relies on are
//! required, so a malformed body is a typed parse error.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer, Serialize};

pub use crate::vocab::{PricingParam, ProductType};

/// `mdmInfo`: which device management service claims the location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdmInfo {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub metadata: String,
}

/// Fields any authenticated response may carry, and the error fields any response may carry.
/// Parsed first from every body: ownership is checked on every response, and an
/// `errorNumber` is an error whatever the HTTP status.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    pub mdm_info: Option<MdmInfo>,
    pub error_number: Option<i64>,
    pub error_message: Option<String>,
}

/// `ClientConfigResponse` (GET and POST `/client/config`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    pub location_name: Option<String>,
    #[serde(default, rename = "countryISO2ACode")]
    pub country_code: Option<String>,
    pub u_id: Option<String>,
}

/// `ClientConfigRequest` body used to claim a location (and subscribe to notifications).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimRequest<'a> {
    pub mdm_info: &'a MdmInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_auth_token: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub notification_types: Option<[&'static str; 4]>,
}

/// The notification types the engine subscribes to.
pub const NOTIFICATION_TYPES: [&str; 4] = ["ASSET_MANAGEMENT", "ASSET_COUNT", "USER_MANAGEMENT", "USER_ASSOCIATED"];

/// `ResponseAsset` from `GET /assets`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Asset {
    #[serde(deserialize_with = "string_or_number")]
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub product_type: ProductType,
    pub total_count: i64,
    pub assigned_count: i64,
    pub available_count: i64,
    #[serde(default)]
    pub retired_count: i64,
    #[serde(default)]
    pub device_assignable: bool,
    #[serde(default)]
    pub revocable: bool,
    /// Apple's platform names (`iOS`, `macOS`, `tvOS`, `watchOS`, `visionOS`); absent: not known.
    #[serde(default)]
    pub supported_platforms: Vec<String>,
}

/// Apple's counts of one asset in one account, and what Apple allows with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetCounts {
    pub product_type: ProductType,
    pub total_count: i64,
    pub assigned_count: i64,
    pub available_count: i64,
    pub retired_count: i64,
    pub device_assignable: bool,
    pub revocable: bool,
    /// The platforms Apple says the asset supports, as Apple spells them (empty: not known).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supported_platforms: Vec<String>,
}

impl AssetCounts {
    /// Total count Apple reports for free ("unlimited") apps and books.
    pub const UNLIMITED: i64 = 2_147_483_647;

    /// Whether the asset is free (its pool never runs out).
    pub fn unlimited(&self) -> bool {
        self.total_count == Self::UNLIMITED
    }
}

impl Asset {
    /// Apple's counts of the asset, as the engine keeps them.
    pub fn counts(&self) -> AssetCounts {
        AssetCounts {
            product_type: self.product_type,
            total_count: self.total_count,
            assigned_count: self.assigned_count,
            available_count: self.available_count,
            retired_count: self.retired_count,
            device_assignable: self.device_assignable,
            revocable: self.revocable,
            supported_platforms: self.supported_platforms.clone(),
        }
    }
}

/// `Assignment` from `GET /assignments` or a notification: exactly one of the two targets is
/// set. Its strings borrow from the body when they need no unescaping, so a page of a thousand
/// assignments is read without copying each id ([`Assignment::into_owned`] keeps one).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Assignment<'a> {
    #[serde(borrow, deserialize_with = "string_or_number")]
    pub adam_id: Cow<'a, str>,
    pub pricing_param: PricingParam,
    #[serde(borrow)]
    pub serial_number: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub client_user_id: Option<Cow<'a, str>>,
}

impl Assignment<'_> {
    /// The same assignment, owning its strings.
    pub fn into_owned(self) -> Assignment<'static> {
        Assignment {
            adam_id: Cow::Owned(self.adam_id.into_owned()),
            pricing_param: self.pricing_param,
            serial_number: self.serial_number.map(|s| Cow::Owned(s.into_owned())),
            client_user_id: self.client_user_id.map(|s| Cow::Owned(s.into_owned())),
        }
    }
}

/// `ResponseUser` from `GET /users`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub client_user_id: String,
    pub email: Option<String>,
    pub status: Option<String>,
    pub invite_code: Option<String>,
    pub id_hash: Option<String>,
}

/// One page of a paginated endpoint. `records` is `assets`, `assignments` or `users`. The
/// [`Envelope`] fields are read in the same pass, so a page body is parsed once.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    #[serde(default = "Vec::new", alias = "assets", alias = "assignments", alias = "users")]
    pub records: Vec<T>,
    pub current_page_index: Option<u32>,
    pub next_page_index: Option<u32>,
    pub total_pages: Option<u32>,
    pub version_id: Option<String>,
    pub mdm_info: Option<MdmInfo>,
    pub error_number: Option<i64>,
    pub error_message: Option<String>,
}

impl<T> Page<T> {
    /// Takes the envelope fields out of the page.
    pub fn take_envelope(&mut self) -> Envelope {
        Envelope { mdm_info: self.mdm_info.take(), error_number: self.error_number.take(), error_message: self.error_message.take() }
    }
}

/// Apple documents asset ids as strings; some notifications carry integers. Accept both (read
/// directly, without buffering the value as an untagged enum would), borrowing the text when
/// `S` can (`Cow<'de, str>`).
fn string_or_number<'de, D, S>(deserializer: D) -> Result<S, D::Error>
where
    D: Deserializer<'de>,
    S: From<&'de str> + From<String>,
{
    struct Id<S>(std::marker::PhantomData<S>);
    impl<'de, S: From<&'de str> + From<String>> serde::de::Visitor<'de> for Id<S> {
        type Value = S;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or a non-negative integer")
        }
        fn visit_borrowed_str<E: serde::de::Error>(self, text: &'de str) -> Result<S, E> {
            Ok(S::from(text))
        }
        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<S, E> {
            Ok(S::from(text.to_owned()))
        }
        fn visit_string<E: serde::de::Error>(self, text: String) -> Result<S, E> {
            Ok(S::from(text))
        }
        fn visit_u64<E: serde::de::Error>(self, number: u64) -> Result<S, E> {
            Ok(S::from(number.to_string()))
        }
    }
    deserializer.deserialize_any(Id(std::marker::PhantomData))
}

// ---------------------------------------------------------------- asynchronous events

/// A user to register at Apple (`RequestUser`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NewUser {
    pub client_user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub managed_apple_id: Option<String>,
}

/// `{adamId, pricingParam}` as Apple writes assets in requests, failures and notifications.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssetRef {
    pub adam_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pricing_param: Option<PricingParam>,
}

/// `EventResponse`: Apple accepted the request.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventResponse {
    pub event_id: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum EventStatus {
    Pending,
    Complete,
    Failed,
}

/// `StatusResponse` from `GET /status`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusResponse {
    pub event_status: EventStatus,
    #[serde(default)]
    pub failures: Vec<Failure>,
}

/// One `ErrorResponse` in `failures[]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Failure {
    pub error_number: Option<i64>,
    pub error_message: Option<String>,
    pub error_info: Option<ErrorInfo>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    #[serde(default)]
    pub assets: Vec<AssetRef>,
    #[serde(default)]
    pub client_user_ids: Vec<String>,
    #[serde(default)]
    pub serial_numbers: Vec<String>,
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn apples_example_assets_page_parses() {
        let page: Page<Asset> = serde_json::from_str(
            r#"{ "assets": [ { "adamId": "408709785", "assignedCount": 5000, "availableCount": 10000,
                "deviceAssignable": true, "pricingParam": "STDQ", "productType": "App", "retiredCount": 0,
                "revocable": true, "supportedPlatforms": ["iOS"], "totalCount": 15000 } ],
                "currentPageIndex": 0, "size": 5, "tokenExpirationDate": "2030-11-08T22:33:22+0000",
                "totalPages": 1, "uId": "2049025000431439", "versionId": "70e8c740" }"#,
        )
        .unwrap();
        assert_eq!(page.records.len(), 1);
        assert_eq!(page.records[0].total_count, 15000);
        assert_eq!(page.next_page_index, None);
        assert_eq!(page.version_id.as_deref(), Some("70e8c740"));
    }

    #[test]
    fn numeric_adam_ids_are_accepted() {
        let a: Assignment = serde_json::from_str(
            r#"{"adamId": 408709785, "pricingParam": "PLUS", "serialNumber": "S1"}"#,
        )
        .unwrap();
        assert_eq!(a.adam_id, "408709785");
        let negative = serde_json::from_str::<Assignment>(r#"{"adamId": -4, "pricingParam": "STDQ", "serialNumber": "S1"}"#);
        assert!(negative.is_err());
    }
}
