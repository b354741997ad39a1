//! Apple's limits: the per-request limits service config sends (defaults until its first answer),
//! and the numbers Apple documents once for all: how many pages may be in flight, how often an
//! event may be polled and when it is submitted again. (The "unlimited" pool size is
//! [`super::wire::AssetCounts::UNLIMITED`]; error numbers are in [`super::errors`].)

use std::collections::BTreeMap;

use crate::base::time::{Millis, MINUTE, SECOND};

/// Apple: "don't submit more than five requests simultaneously" when paging.
pub const MAX_PAGES_IN_FLIGHT: u32 = 5;

/// Minimum time between two `/status` polls of one event.
pub const POLL_INTERVAL: Millis = 30 * SECOND;

/// A request still pending after this long is submitted again.
pub const RESUBMIT_AFTER: Millis = 10 * MINUTE;

/// Request limits. Field names follow Apple's keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_assets: u32,
    pub max_serial_numbers: u32,
    pub max_client_user_ids: u32,
    pub max_revoke_serial_numbers: u32,
    pub max_revoke_client_user_ids: u32,
    pub max_users: u32,
    pub max_request_per_second: u32,
    pub max_notification_length: u32,
    pub max_mdm_id_length: u32,
    pub max_mdm_name_length: u32,
    pub max_mdm_metadata_length: u32,
    /// Every key Apple sent, including ones this engine does not use.
    pub raw: BTreeMap<String, i64>,
}

impl Default for Limits {
    /// Apple's documented example values.
    fn default() -> Self {
        Self {
            max_assets: 25,
            max_serial_numbers: 1000,
            max_client_user_ids: 1000,
            max_revoke_serial_numbers: 100,
            max_revoke_client_user_ids: 100,
            max_users: 100,
            max_request_per_second: 15,
            max_notification_length: 512,
            max_mdm_id_length: 100,
            max_mdm_name_length: 100,
            max_mdm_metadata_length: 255,
            raw: BTreeMap::new(),
        }
    }
}

impl Limits {
    /// Takes each known key Apple sent; a missing, zero or negative value keeps the current one.
    pub(super) fn merge(&mut self, raw: &BTreeMap<String, i64>) {
        let slots: [(&str, &mut u32); 11] = [
            ("maxAssets", &mut self.max_assets),
            ("maxSerialNumbers", &mut self.max_serial_numbers),
            ("maxClientUserIds", &mut self.max_client_user_ids),
            ("maxRevokeSerialNumbers", &mut self.max_revoke_serial_numbers),
            ("maxRevokeClientUserIds", &mut self.max_revoke_client_user_ids),
            ("maxUsers", &mut self.max_users),
            ("maxRequestPerSecond", &mut self.max_request_per_second),
            ("maxNotificationLength", &mut self.max_notification_length),
            ("maxMdmIdLength", &mut self.max_mdm_id_length),
            ("maxMdmNameLength", &mut self.max_mdm_name_length),
            ("maxMdmMetadataLength", &mut self.max_mdm_metadata_length),
        ];
        for (key, slot) in slots {
            if let Some(value) = raw.get(key).and_then(|v| u32::try_from(*v).ok()).filter(|v| *v > 0) {
                *slot = value;
            }
        }
        self.raw = raw.clone();
    }
}
