//! App policies: what the host wants licensed, per account.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::vocab::{LicenseType, PricingParam};

/// One app (or book) the host wants licensed from one account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppPolicy {
    pub policy_id: String,
    /// Shown to administrators, e.g. when deleting an account that this policy uses.
    pub name: String,
    pub account_id: String,
    pub adam_id: String,
    pub pricing_param: PricingParam,
    pub license_type: LicenseType,
    /// Targets in scope: serial numbers for device licenses, client user ids for user licenses.
    #[serde(default)]
    pub targets: BTreeSet<String>,
}
