//! Answers for the UI, computed from the engine's state without I/O.

use serde::{Deserialize, Serialize};

use crate::apple::wire::AssetCounts;
use crate::base::time::Millis;
use crate::vocab::{AccountStatus, LicensePair, OperationKind, PricingParam, ProductType};

/// One row of the account list ([`crate::Engine::accounts`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountView {
    pub account_id: String,
    pub name: String,
    pub status: AccountStatus,
    /// Human-readable explanation of `status` (hover text).
    pub status_reason: String,
    pub org_name: String,
    pub location_name: Option<String>,
    pub country_code: Option<String>,
    pub last_synced_at: Option<Millis>,
    pub token_expires_at: Millis,
    pub other_mdm_name: Option<String>,
    pub policy_ids: Vec<String>,
}

/// One app (or book) across every account that has it ([`crate::Engine::app_totals`]): the sums of
/// its counts and each account's share.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppTotalView {
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub product_type: ProductType,
    /// The platforms Apple says the app supports, as Apple spells them (`iOS`, `macOS`, `tvOS`,
    /// `watchOS`, `visionOS`); empty when Apple did not say.
    pub supported_platforms: Vec<String>,
    /// Summed over the accounts; 2147483647 when the app is free (unlimited) in any of them.
    pub total_count: i64,
    pub assigned_count: i64,
    /// Summed over the accounts; 2147483647 when the app is free (unlimited) in any of them.
    pub available_count: i64,
    pub retired_count: i64,
    pub unlimited: bool,
    /// Each account's counts, by account id.
    pub accounts: Vec<AppCountInAccount>,
}

/// One account's counts of an app, in an [`AppTotalView`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppCountInAccount {
    pub account_id: String,
    pub total_count: i64,
    pub assigned_count: i64,
    pub available_count: i64,
    pub retired_count: i64,
}

/// License counts of one app (or book) in one account ([`crate::Engine::app_counts`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppCountView {
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub product_type: ProductType,
    /// The platforms Apple says the app supports, as Apple spells them; empty when Apple did not say.
    pub supported_platforms: Vec<String>,
    pub total_count: i64,
    pub assigned_count: i64,
    pub available_count: i64,
    pub retired_count: i64,
    pub device_assignable: bool,
    pub revocable: bool,
    pub unlimited: bool,
    /// Licenses the targets waiting for this app lack (0: none wait for want of licenses).
    pub short_by: usize,
}

impl AppCountView {
    /// The view of an asset's counts, with the licenses planning found missing.
    pub fn new(adam_id: String, pricing_param: PricingParam, counts: &AssetCounts, short_by: usize) -> Self {
        Self {
            adam_id,
            pricing_param,
            product_type: counts.product_type,
            supported_platforms: counts.supported_platforms.clone(),
            total_count: counts.total_count,
            assigned_count: counts.assigned_count,
            available_count: counts.available_count,
            retired_count: counts.retired_count,
            device_assignable: counts.device_assignable,
            revocable: counts.revocable,
            unlimited: counts.unlimited(),
            short_by,
        }
    }
}

/// Largest page [`crate::Engine::assignments`] returns.
pub const MAX_ASSIGNMENT_PAGE: usize = 10_000;

/// Filter and page for [`crate::Engine::assignments`]; every filter is optional.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(Serialize))] // the contract test's sample
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AssignmentQuery {
    pub adam_id: Option<String>,
    pub serial_number: Option<String>,
    pub client_user_id: Option<String>,
    #[serde(default)]
    pub offset: usize,
    #[serde(default = "default_limit")]
    pub limit: usize,
}

fn default_limit() -> usize {
    100
}

impl Default for AssignmentQuery {
    fn default() -> Self {
        Self { adam_id: None, serial_number: None, client_user_id: None, offset: 0, limit: default_limit() }
    }
}

/// One assignment: an app (or book) and the device or user holding its license.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentView {
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub serial_number: Option<String>,
    pub client_user_id: Option<String>,
}

impl From<LicensePair> for AssignmentView {
    fn from(pair: LicensePair) -> Self {
        let LicensePair { adam_id, pricing_param, serial_number, client_user_id } = pair;
        Self { adam_id, pricing_param, serial_number, client_user_id }
    }
}

/// A page of assignments: `total` matches, `items` from `offset` on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentPage {
    pub total: usize,
    pub offset: usize,
    pub items: Vec<AssignmentView>,
}

/// One app (or book) of one account in the usage report ([`crate::Engine::app_report`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppReportRow {
    pub account_id: String,
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub product_type: ProductType,
    /// Licenses purchased (Apple's `totalCount`; 2147483647 when the app is free).
    pub total_count: i64,
    /// Assignments Apple holds that this instance made.
    pub used_by_us: usize,
    /// Assignments Apple holds that another MDM (or Apple Business Manager) made.
    pub used_by_others: usize,
    /// Associations sent or awaited that Apple has not confirmed yet.
    pub pending: i64,
    /// Apple's `availableCount` as of the last sync.
    pub available_count: i64,
    pub unlimited: bool,
}

/// Page of [`crate::Engine::assignment_report`]: from after `after` (a cursor the previous page
/// returned; none: from the start), at most `limit` rows, of one app (`adam_id`, and `pricing_param`
/// if given) or of all.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(Serialize))] // the contract test's sample
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReportPageQuery {
    pub after: Option<String>,
    pub adam_id: Option<String>,
    pub pricing_param: Option<PricingParam>,
    #[serde(default = "default_limit")]
    pub limit: usize,
}

impl Default for ReportPageQuery {
    fn default() -> Self {
        Self { after: None, adam_id: None, pricing_param: None, limit: default_limit() }
    }
}

/// One assignment in the usage report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentReportRow {
    pub account_id: String,
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub serial_number: Option<String>,
    pub client_user_id: Option<String>,
    /// Whether this instance made it (else another MDM or Apple Business Manager did).
    pub ours: bool,
    /// When this engine first saw Apple confirm it (whole seconds); `None` when unknown (stored
    /// by an engine that did not keep it).
    pub confirmed_since: Option<Millis>,
    /// The policy that wants it, if one does.
    pub policy_id: Option<String>,
}

/// A page of the assignment report: `next` is the cursor of the following page (`None`: this
/// was the last), `total` the rows of the whole report (with the app filter) when this page was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AssignmentReportPage {
    pub rows: Vec<AssignmentReportRow>,
    pub next: Option<String>,
    pub total: usize,
}

/// When the engine next needs the host to call it, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Wakeup {
    pub at: Millis,
    pub reason: String,
    pub account_id: Option<String>,
}

/// Counters for monitoring ([`crate::Engine::stats`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineStats {
    pub requests_issued: u64,
    pub responses_handled: u64,
    /// Answers whose id the engine did not know (late, duplicated or forged): counted and dropped.
    pub unknown_responses: u64,
    pub requests_in_flight: usize,
    /// Times the host's clock was found far behind the engine's (a glitched `now` had run it ahead).
    pub clock_rewinds: u64,
}

/// What an sToken says about itself (`decodeToken` in JavaScript).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenInfo {
    pub org_name: String,
    pub expires_at: Millis,
}

/// An operation Apple has not finished (or that is not sent yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingOperationView {
    pub operation_id: u64,
    pub kind: OperationKind,
    pub event_id: Option<String>,
    pub state: &'static str,
    pub assets: usize,
    pub targets: usize,
    pub submitted_at: Option<Millis>,
    pub reason: String,
}

/// The app and the device (`serial_number`) or user (`client_user_id`) for [`crate::Engine::explain`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[cfg_attr(test, derive(Serialize))] // the contract test's sample
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExplainQuery {
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub serial_number: Option<String>,
    pub client_user_id: Option<String>,
}

impl ExplainQuery {
    /// The license the question is about.
    pub fn pair(&self) -> LicensePair {
        LicensePair {
            adam_id: self.adam_id.clone(),
            pricing_param: self.pricing_param,
            serial_number: self.serial_number.clone(),
            client_user_id: self.client_user_id.clone(),
        }
    }
}

/// Whether the target holds a license of the app, and why (or why not), in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LicenseExplanation {
    pub has_license: bool,
    pub reason: String,
}
