//! What the MDM knows about devices and users, as the host reports it. Engine-wide: a device
//! may hold licenses from several accounts.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceFacts {
    /// The enrolled user (client user id), if any.
    pub client_user_id: Option<String>,
    pub shared_ipad: bool,
    pub retired: bool,
    /// Apps (adam ids) the device reported installed.
    pub installed: BTreeSet<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFacts {
    pub email: Option<String>,
    pub managed_apple_id: Option<String>,
    pub removed: bool,
}

#[derive(Debug, Default)]
pub struct Facts {
    pub devices: BTreeMap<String, DeviceFacts>,
    pub users: BTreeMap<String, UserFacts>,
    /// The devices each user is enrolled on.
    devices_of_user: BTreeMap<String, BTreeSet<String>>,
}

impl Facts {
    /// Records a device fact, keeping the user → devices index current.
    pub fn set_device(&mut self, serial: &str, facts: DeviceFacts) {
        if let Some(old_user) = self.devices.get(serial).and_then(|d| d.client_user_id.clone()) {
            if let Some(devices) = self.devices_of_user.get_mut(&old_user) {
                devices.remove(serial);
            }
        }
        if let Some(user) = &facts.client_user_id {
            self.devices_of_user.entry(user.clone()).or_default().insert(serial.to_owned());
        }
        self.devices.insert(serial.to_owned(), facts);
    }

    pub fn user_of_device(&self, serial: &str) -> Option<&str> {
        self.devices.get(serial)?.client_user_id.as_deref()
    }

    pub fn user_removed(&self, user: &str) -> bool {
        self.users.get(user).is_some_and(|u| u.removed)
    }

    /// Whether every device the user is enrolled on (at least one) is a shared iPad.
    pub fn user_only_on_shared_ipads(&self, user: &str) -> bool {
        let Some(devices) = self.devices_of_user.get(user).filter(|d| !d.is_empty()) else { return false };
        devices.iter().all(|serial| self.devices.get(serial).is_some_and(|d| d.shared_ipad && !d.retired))
    }
}
