//! Engine configuration, given once at construction.

use serde::de::{Deserialize, Deserializer};

use crate::apple::limits::{Limits, MAX_PAGES_IN_FLIGHT, RESUBMIT_AFTER};
use crate::apple::service_config::APPLE_SERVICE_CONFIG_URL;
use crate::apple::wire::MdmInfo;
use crate::base::backoff::BackoffPolicy;
use crate::base::json_object::{self, FieldReader};
use crate::base::secret::Secret;
use crate::base::time::{Millis, DAY, MINUTE, SECOND};
use crate::contract::error::EngineError;

/// The longest `coalesceMs` accepted: license work never waits longer than a minute for company.
pub const MAX_COALESCE_MS: Millis = MINUTE;

/// How the engine behaves; given to [`crate::Engine::new`] or [`crate::Engine::restore`].
/// Only `mdm_info` is required ([`EngineConfig::new`] fills in every default). From JavaScript it is
/// the `EngineConfig` object of the TypeScript contract, where each option is documented.
/// Read from JSON (camelCase fields, unknown ones refused) by hand, below.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize), serde(rename_all = "camelCase"))] // the contract test's sample
pub struct EngineConfig {
    /// The identity written into each location's client config to claim it.
    pub mdm_info: MdmInfo,
    pub service_config_url: String,
    /// Seed for backoff jitter.
    pub seed: u64,
    pub service_config_interval_ms: Millis,
    pub delta_sync_interval_ms: Millis,
    pub full_refresh_interval_ms: Millis,
    pub max_pages_in_flight: u32,
    pub backoff_base_ms: Millis,
    pub backoff_max_ms: Millis,
    /// Added to the one-second window of `maxRequestPerSecond`, so that network jitter can't
    /// put more than the limit into one of Apple's seconds.
    pub rate_limit_margin_ms: Millis,
    /// Where Apple POSTs notifications (`<url>/<accountId>`) and the bearer it must present.
    pub notifications: Option<NotificationConfig>,
    /// `lowLicenses` fires when an app's available count drops to this or below.
    pub low_license_threshold: i64,
    /// Initial state of the license removal notification toggle.
    pub license_removal_notification: bool,
    /// How often Reconcile runs on its own.
    pub reconcile_interval_ms: Millis,
    /// An association sent without an answer (a crash, a lost response) may or may not have
    /// reached Apple. Sending it again could assign twice, so the engine waits this long for
    /// Apple to finish it, syncs, and sends only the pairs Apple does not show.
    pub unconfirmed_settle_ms: Millis,
    /// License work (associations, releases, revokes, user creation) waits at most this long for
    /// more work to join it in the same requests; 0 sends at once (the `coalesce` module explains the window).
    pub coalesce_ms: Millis,
    /// The wait ends early once no new license work has arrived for this long (a lone change
    /// leaves after it). A value above `coalesce_ms` acts as `coalesce_ms`.
    pub coalesce_quiet_ms: Millis,
}

/// Notification endpoint settings. `Debug` hides the token.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(test, derive(serde::Serialize), serde(rename_all = "camelCase"))] // the contract test's sample
pub struct NotificationConfig {
    pub url: String,
    pub auth_token: Secret,
}

// Read field by field: a derived reader adds a visitor per struct (wasm size).
impl<'de> Deserialize<'de> for EngineConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut f = FieldReader::<D::Error>::new(json_object::object(deserializer)?);
        let notifications = match f.optional::<Option<json_object::Fields>>("notifications")? {
            None => None,
            Some(fields) => {
                let mut n = FieldReader::<D::Error>::new(fields);
                let config = NotificationConfig { url: n.required("url")?, auth_token: n.required("authToken")? };
                n.finish()?;
                Some(config)
            }
        };
        let config = Self {
            mdm_info: f.object("mdmInfo")?,
            service_config_url: f.or("serviceConfigUrl", defaults::service_config_url)?,
            seed: f.optional("seed")?,
            service_config_interval_ms: f.or("serviceConfigIntervalMs", defaults::service_config_interval)?,
            delta_sync_interval_ms: f.or("deltaSyncIntervalMs", defaults::delta_sync_interval)?,
            full_refresh_interval_ms: f.or("fullRefreshIntervalMs", defaults::full_refresh_interval)?,
            max_pages_in_flight: f.or("maxPagesInFlight", defaults::max_pages_in_flight)?,
            backoff_base_ms: f.or("backoffBaseMs", defaults::backoff_base)?,
            backoff_max_ms: f.or("backoffMaxMs", defaults::backoff_max)?,
            rate_limit_margin_ms: f.or("rateLimitMarginMs", defaults::rate_limit_margin)?,
            notifications,
            low_license_threshold: f.or("lowLicenseThreshold", defaults::low_license_threshold)?,
            license_removal_notification: f.optional("licenseRemovalNotification")?,
            reconcile_interval_ms: f.or("reconcileIntervalMs", defaults::reconcile_interval)?,
            unconfirmed_settle_ms: f.or("unconfirmedSettleMs", defaults::unconfirmed_settle)?,
            coalesce_ms: f.or("coalesceMs", defaults::coalesce)?,
            coalesce_quiet_ms: f.or("coalesceQuietMs", defaults::coalesce_quiet)?,
        };
        f.finish()?;
        Ok(config)
    }
}

mod defaults {
    use super::*;
    pub fn service_config_url() -> String {
        APPLE_SERVICE_CONFIG_URL.to_owned()
    }
    pub fn service_config_interval() -> Millis {
        5 * MINUTE
    }
    pub fn delta_sync_interval() -> Millis {
        30 * MINUTE
    }
    pub fn full_refresh_interval() -> Millis {
        DAY
    }
    pub fn max_pages_in_flight() -> u32 {
        MAX_PAGES_IN_FLIGHT
    }
    pub fn backoff_base() -> Millis {
        SECOND
    }
    pub fn backoff_max() -> Millis {
        5 * MINUTE
    }
    pub fn rate_limit_margin() -> Millis {
        250
    }
    pub fn low_license_threshold() -> i64 {
        5
    }
    pub fn reconcile_interval() -> Millis {
        DAY
    }
    pub fn unconfirmed_settle() -> Millis {
        RESUBMIT_AFTER
    }
    pub fn coalesce() -> Millis {
        5 * SECOND
    }
    pub fn coalesce_quiet() -> Millis {
        SECOND
    }
}

impl EngineConfig {
    /// A configuration with every default and the given identity.
    pub fn new(mdm_info: MdmInfo) -> Self {
        Self {
            mdm_info,
            service_config_url: defaults::service_config_url(),
            seed: 0,
            service_config_interval_ms: defaults::service_config_interval(),
            delta_sync_interval_ms: defaults::delta_sync_interval(),
            full_refresh_interval_ms: defaults::full_refresh_interval(),
            max_pages_in_flight: defaults::max_pages_in_flight(),
            backoff_base_ms: defaults::backoff_base(),
            backoff_max_ms: defaults::backoff_max(),
            rate_limit_margin_ms: defaults::rate_limit_margin(),
            notifications: None,
            low_license_threshold: defaults::low_license_threshold(),
            license_removal_notification: false,
            reconcile_interval_ms: defaults::reconcile_interval(),
            unconfirmed_settle_ms: defaults::unconfirmed_settle(),
            coalesce_ms: defaults::coalesce(),
            coalesce_quiet_ms: defaults::coalesce_quiet(),
        }
    }

    /// Checks what Apple would reject later (9723, 9724, 9725, 9713) and what makes no sense.
    pub fn validate(&self) -> Result<(), EngineError> {
        let limits = Limits::default();
        let info = &self.mdm_info;
        let fields = [
            ("mdmInfo.id", &info.id, limits.max_mdm_id_length),
            ("mdmInfo.name", &info.name, limits.max_mdm_name_length),
            ("mdmInfo.metadata", &info.metadata, limits.max_mdm_metadata_length),
        ];
        for (field, value, max) in fields {
            if value.trim().is_empty() {
                return Err(EngineError::Config(format!("{field} must not be empty (Apple requires id, name and metadata)")));
            }
            if value.chars().count() > max as usize {
                return Err(EngineError::Config(format!("{field} is longer than Apple's limit of {max} characters")));
            }
        }
        if !(1..=MAX_PAGES_IN_FLIGHT).contains(&self.max_pages_in_flight) {
            return Err(EngineError::Config(format!("maxPagesInFlight must be 1..={MAX_PAGES_IN_FLIGHT}")));
        }
        let intervals = [
            ("serviceConfigIntervalMs", self.service_config_interval_ms),
            ("deltaSyncIntervalMs", self.delta_sync_interval_ms),
            ("fullRefreshIntervalMs", self.full_refresh_interval_ms),
            ("backoffBaseMs", self.backoff_base_ms),
        ];
        for (field, value) in intervals {
            if value < SECOND {
                return Err(EngineError::Config(format!("{field} must be at least 1000")));
            }
        }
        if let Some(n) = &self.notifications {
            let limit = limits.max_notification_length as usize;
            if !n.url.starts_with("https://") && !n.url.starts_with("http://") {
                return Err(EngineError::Config("notifications.url must be an http(s) URL".to_owned()));
            }
            if n.auth_token.expose().len() < 16 || n.auth_token.expose().len() > limit {
                return Err(EngineError::Config(format!("notifications.authToken must be 16..={limit} characters")));
            }
        }
        if self.reconcile_interval_ms < SECOND {
            return Err(EngineError::Config("reconcileIntervalMs must be at least 1000".to_owned()));
        }
        if self.rate_limit_margin_ms > SECOND {
            return Err(EngineError::Config("rateLimitMarginMs must be 0..=1000".to_owned()));
        }
        if self.coalesce_ms > MAX_COALESCE_MS {
            return Err(EngineError::Config(format!("coalesceMs must be 0..={MAX_COALESCE_MS}")));
        }
        if self.backoff_max_ms < self.backoff_base_ms {
            return Err(EngineError::Config("backoffMaxMs must not be below backoffBaseMs".to_owned()));
        }
        if !self.service_config_url.starts_with("https://") && !self.service_config_url.starts_with("http://") {
            return Err(EngineError::Config("serviceConfigUrl must be an http(s) URL".to_owned()));
        }
        Ok(())
    }

    /// The exponential backoff policy these settings describe.
    pub fn backoff(&self) -> BackoffPolicy {
        BackoffPolicy { base: self.backoff_base_ms, max: self.backoff_max_ms }
    }
}
