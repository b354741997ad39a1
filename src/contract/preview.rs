//! What [`crate::Engine::preview`] answers: what a list of inputs would do, before it is applied.

use serde::Serialize;

use crate::base::time::Millis;
use crate::vocab::PricingParam;

/// What a change would do, counted over everything, per account, or per app of an account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewFigures {
    /// Licenses that would be assigned.
    pub assign: usize,
    /// Licenses that would be released (reclaimed), ours and other MDMs' (Clean Up).
    pub release: usize,
    /// Licenses the targets in scope would lack afterwards (see `AppCountView.shortBy`), where that changes.
    pub short_by: usize,
    /// Of `release`, licenses another MDM assigned (Clean Up).
    pub other_mdm_released: usize,
    /// Requests to Apple that would be sent (associate, disassociate, revoke, create users); an
    /// app's figure counts each request that concerns it.
    pub requests: usize,
    /// Devices that would get or lose a license.
    pub devices: usize,
    /// Users that would get or lose a license.
    pub users: usize,
}

/// What a change would do in one account, and how long its requests would take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountPreview {
    pub account_id: String,
    pub figures: PreviewFigures,
    /// Apple's rate limit (service config), requests per second.
    pub max_request_per_second: u32,
    /// How long the account may not send yet (`Retry-After`, backoff).
    pub wait_ms: Millis,
    /// Why it may not send yet, when `waitMs` > 0.
    pub wait_reason: Option<String>,
    /// About how long until the last request is sent: the wait, then the requests at the rate limit.
    pub estimated_ms: Millis,
}

/// What a change would do to one app (adam id and pricing) of one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AppPreview {
    pub account_id: String,
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub figures: PreviewFigures,
}

/// How many licenses would be released for one reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseReason {
    pub reason: String,
    pub count: usize,
}

/// The answer of [`crate::Engine::preview`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PreviewReport {
    pub totals: PreviewFigures,
    /// The accounts the change touches, by id.
    pub accounts: Vec<AccountPreview>,
    /// The apps with something to do, by account and app.
    pub apps: Vec<AppPreview>,
    pub releases_by_reason: Vec<ReleaseReason>,
    /// About how long until every account sent its last request (accounts send in parallel).
    pub estimated_ms: Millis,
}
