//! What the engine tells the host and its users.

use serde::Serialize;

use crate::base::time::Millis;
use crate::vocab::{AccountStatus, LicensePair, PricingParam, SyncKind};

/// Events for the host and UI. None of them carries a secret.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Event {
    AccountStatusChanged { account_id: String, status: AccountStatus, reason: String },
    /// Sent once per threshold (30, 15, 7 and 1 days before expiry).
    TokenExpiring { account_id: String, threshold_days: u32, expires_at: Millis },
    TestResult { account_id: String, ok: bool, message: String, location_name: Option<String> },
    OwnershipLost { account_id: String, owner_name: String, owner_id: String },
    OwnershipClaimed { account_id: String },
    SyncStarted { account_id: String, kind: SyncKind },
    SyncProgress { account_id: String, kind: SyncKind, pages_done: u32, pages_total: u32 },
    SyncCompleted { account_id: String, kind: SyncKind, assets: usize, assignments: usize, users: usize },
    /// No request for the account (or, with `account_id` null, for service config) before `until`.
    Backoff { account_id: Option<String>, until: Millis, reason: String },
    ServiceConfigUpdated { limits: std::collections::BTreeMap<String, i64> },
    RequestFailed { account_id: Option<String>, purpose: String, error_number: Option<i64>, message: String },
    /// Apple confirmed the license: send the install (or update) command now.
    LicenseReady {
        account_id: String,
        adam_id: String,
        pricing_param: PricingParam,
        serial_number: Option<String>,
        client_user_id: Option<String>,
    },
    LicenseReleased {
        account_id: String,
        adam_id: String,
        pricing_param: PricingParam,
        serial_number: Option<String>,
        client_user_id: Option<String>,
        reason: String,
    },
    /// License removal notification is on: tell the user this app's license was removed.
    NotifyUser { account_id: String, adam_id: String, serial_number: Option<String>, client_user_id: Option<String> },
    /// Targets wait for want of `short_by` licenses; `short_by` 0: the shortfall is over, they are being assigned.
    InsufficientLicenses { account_id: String, adam_id: String, pricing_param: PricingParam, short_by: usize },
    LowLicenses { account_id: String, adam_id: String, pricing_param: PricingParam, available: i64, threshold: i64 },
    /// The user must accept Apple's invitation (no Managed Apple ID): deliver `invite_url`.
    InviteUser { account_id: String, client_user_id: String, email: Option<String>, invite_url: String },
    AssignmentFailed {
        account_id: String,
        adam_id: String,
        pricing_param: PricingParam,
        serial_number: Option<String>,
        client_user_id: Option<String>,
        error_number: Option<i64>,
        message: String,
    },
}

impl Event {
    /// `licenseReady` for `pair` of account `account_id`.
    pub fn license_ready(account_id: &str, pair: LicensePair) -> Self {
        let LicensePair { adam_id, pricing_param, serial_number, client_user_id } = pair;
        Event::LicenseReady { account_id: account_id.to_owned(), adam_id, pricing_param, serial_number, client_user_id }
    }

    /// `licenseReleased` for `pair` of account `account_id`.
    pub fn license_released(account_id: &str, pair: LicensePair, reason: String) -> Self {
        let LicensePair { adam_id, pricing_param, serial_number, client_user_id } = pair;
        Event::LicenseReleased { account_id: account_id.to_owned(), adam_id, pricing_param, serial_number, client_user_id, reason }
    }

    /// `notifyUser` for `pair` of account `account_id` (license removal notification is on).
    pub fn notify_user(account_id: &str, pair: &LicensePair) -> Self {
        Event::NotifyUser {
            account_id: account_id.to_owned(),
            adam_id: pair.adam_id.clone(),
            serial_number: pair.serial_number.clone(),
            client_user_id: pair.client_user_id.clone(),
        }
    }

    /// `assignmentFailed` for `pair` of account `account_id`.
    pub fn assignment_failed(account_id: &str, pair: LicensePair, error_number: Option<i64>, message: String) -> Self {
        let LicensePair { adam_id, pricing_param, serial_number, client_user_id } = pair;
        Event::AssignmentFailed { account_id: account_id.to_owned(), adam_id, pricing_param, serial_number, client_user_id, error_number, message }
    }
}
