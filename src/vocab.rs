//! The engine's vocabulary: the names and keys that inputs, events, store records, views and the
//! state machines share, each defined once.
//!
//! * **Named** (strings, as the host and Apple spell them): a [`LicensePair`] (an app and the
//!   device or user holding its license) and the enums of the JavaScript API ([`PricingParam`], [`ProductType`], [`LicenseType`], [`SyncKind`],
//!   [`AccountStatus`], [`OperationKind`]).
//! * **Interned** (inside one account, where names are ids of its interner): [`AssetKey`],
//!   [`Target`] and [`AssignmentKey`], small `Copy` keys ordered so that one device's or user's
//!   pairs are one range of any ordered set.
//!
//! Store records embed the named types with `#[serde(flatten)]`; the events and views of the
//! JavaScript contract keep their fields spelled out, one struct per TypeScript type (as the
//! contract test in `src/contract/` describes them), and are built from these by conversion.
//! Either way the JSON is the same.

use serde::{Deserialize, Serialize};

/// The edition of an app or book: `STDQ` (standard) or `PLUS` (high quality).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum PricingParam {
    #[serde(rename = "STDQ")]
    Stdq,
    #[serde(rename = "PLUS")]
    Plus,
}

impl PricingParam {
    /// Apple's name of the edition (in store keys and query strings).
    pub fn name(self) -> &'static str {
        match self {
            PricingParam::Stdq => "STDQ",
            PricingParam::Plus => "PLUS",
        }
    }
}

/// Whether an asset is an app or a book.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProductType {
    App,
    Book,
}

/// Whether a policy licenses devices (serial numbers) or users (client user ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LicenseType {
    Device,
    User,
}

/// A full refresh or a delta sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum SyncKind {
    Full,
    Delta,
}

/// Version cursors for delta syncs: the `versionId` of the first page of the last traversal.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cursors {
    pub assignments: Option<String>,
    pub users: Option<String>,
}

impl Cursors {
    /// Whether a delta sync can start from these (both cursors known).
    pub fn allow_delta(&self) -> bool {
        self.assignments.is_some() && self.users.is_some()
    }
}

/// An account's status, with a human-readable reason alongside wherever it is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(test, derive(Deserialize))] // the contract test reads its names
#[serde(rename_all = "camelCase")]
pub enum AccountStatus {
    /// Reading the location's client config, or claiming it.
    Checking,
    /// A full refresh is running.
    Syncing,
    /// Owned by this MDM and in sync.
    Active,
    /// Apple asked us to wait (`Retry-After`), or failures are being retried with backoff.
    BackingOff,
    /// Another MDM's `mdmInfo` is on the location: no requests until Reclaim Ownership.
    OwnedByOtherMdm,
    /// Expired, revoked or rejected token: no requests until the token is replaced.
    TokenInvalid,
}

/// A license or user change Apple handles asynchronously (an `eventId` to follow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OperationKind {
    Associate,
    Disassociate,
    Revoke,
    CreateUsers,
}

impl OperationKind {
    /// The request's `purpose` (its endpoint, for logs and metrics).
    pub fn purpose(self) -> &'static str {
        match self {
            OperationKind::Associate => "associateAssets",
            OperationKind::Disassociate => "disassociateAssets",
            OperationKind::Revoke => "revokeAssets",
            OperationKind::CreateUsers => "createUsers",
        }
    }
}

/// One license by name: an app (or book) edition and the device (`serial_number`) or user
/// (`client_user_id`) holding it. Exactly one of the two is set, except where the host asks a
/// question with neither or both (refused there). Stored records embed it; the events and views
/// of the JavaScript contract spell its fields out (their JSON is the same) and are built from it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LicensePair {
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub serial_number: Option<String>,
    pub client_user_id: Option<String>,
}

impl LicensePair {
    /// The device's serial number or the user's client user id, when exactly one is given.
    pub fn target_name(&self) -> Option<&str> {
        match (&self.serial_number, &self.client_user_id) {
            (Some(serial), None) => Some(serial),
            (None, Some(user)) => Some(user),
            _ => None,
        }
    }
}

/// An asset inside one account: Apple keys assets by (adamId, pricingParam); the adam id is an
/// id of the account's interner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssetKey {
    pub adam_id: u32,
    pub pricing: PricingParam,
}

/// Who holds a license inside one account: a device (serial number) or a user (client user id),
/// by interned id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    Device(u32),
    User(u32),
}

impl Target {
    /// The interned serial number or client user id.
    pub fn id(self) -> u32 {
        match self {
            Target::Device(id) | Target::User(id) => id,
        }
    }
}

/// One license inside one account: an asset held by a target. Ordered by target first, so that
/// the pairs of one device or user are one range of any ordered set of keys
/// ([`AssignmentKey::range_of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AssignmentKey {
    pub target: Target,
    pub asset: AssetKey,
}

impl AssignmentKey {
    /// The keys of every asset `target` may hold, as a range of an ordered set.
    pub fn range_of(target: Target) -> std::ops::RangeInclusive<AssignmentKey> {
        let first = AssetKey { adam_id: 0, pricing: PricingParam::Stdq };
        let last = AssetKey { adam_id: u32::MAX, pricing: PricingParam::Plus };
        AssignmentKey { target, asset: first }..=AssignmentKey { target, asset: last }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    #[test]
    fn a_flattened_pair_is_written_as_flat_fields_in_order() {
        #[derive(Serialize)]
        #[serde(rename_all = "camelCase")]
        struct Holder {
            account_id: &'static str,
            #[serde(flatten)]
            pair: LicensePair,
            reason: &'static str,
        }
        let pair = LicensePair { adam_id: "1".into(), pricing_param: PricingParam::Plus, serial_number: None, client_user_id: Some("u".into()) };
        let json = serde_json::to_string(&Holder { account_id: "a", pair, reason: "r" }).unwrap();
        assert_eq!(json, r#"{"accountId":"a","adamId":"1","pricingParam":"PLUS","serialNumber":null,"clientUserId":"u","reason":"r"}"#);
    }
}
