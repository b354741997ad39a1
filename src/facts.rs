//! What the MDM knows about devices and users, as the host reports it. Engine-wide: a device
//! may hold licenses from several accounts.

use std::collections::{BTreeMap, BTreeSet, HashMap};

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
    /// The host's id of the device's current enrollment, if it gives one (a new one is a re-enrollment).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enrollment_id: Option<String>,
    /// A user enrollment (BYOD): Apple ignores device licenses for it. Absent in records written
    /// before it existed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub user_enrollment: bool,
    /// Apple's name of the device's platform (`iOS`, `macOS`, …), if the host gave it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserFacts {
    pub email: Option<String>,
    pub managed_apple_id: Option<String>,
    pub removed: bool,
}

/// Facts by serial number or client user id. Looked up by name only, never walked in order: a
/// hash map, so that a fact costs the same at a thousand devices as at a million.
pub type ByName<V> = HashMap<String, V, foldhash::fast::FixedState>;

#[derive(Debug, Default)]
pub struct Facts {
    pub devices: ByName<DeviceFacts>,
    pub users: ByName<UserFacts>,
    /// The devices each user is enrolled on.
    devices_of_user: BTreeMap<String, BTreeSet<String>>,
}

impl Facts {
    /// Records a device fact, keeping the user → devices index current.
    pub fn set_device(&mut self, serial: &str, facts: DeviceFacts) {
        let old_user = self.devices.get(serial).and_then(|d| d.client_user_id.as_deref());
        if old_user != facts.client_user_id.as_deref() {
            if let Some(user) = old_user {
                let emptied = self.devices_of_user.get_mut(user).is_some_and(|devices| devices.remove(serial) && devices.is_empty());
                if emptied {
                    self.devices_of_user.remove(user);
                }
            }
            if let Some(user) = &facts.client_user_id {
                self.devices_of_user.entry(user.clone()).or_default().insert(serial.to_owned());
            }
        }
        match self.devices.get_mut(serial) {
            Some(known) => *known = facts,
            None => {
                self.devices.insert(serial.to_owned(), facts);
            }
        }
    }

    /// Puts back what was known of a device before a preview changed it (`None`: nothing).
    pub fn put_back_device(&mut self, serial: &str, facts: Option<DeviceFacts>) {
        match facts {
            Some(facts) => self.set_device(serial, facts),
            None => {
                self.set_device(serial, DeviceFacts::default());
                self.devices.remove(serial);
            }
        }
    }

    /// Takes the facts of `other` about devices and users these facts do not have (an adopted
    /// account's records). Costs what `other` holds.
    pub fn absorb(&mut self, other: Facts) {
        for (serial, facts) in other.devices {
            if !self.devices.contains_key(&serial) {
                self.set_device(&serial, facts);
            }
        }
        for (user, facts) in other.users {
            self.users.entry(user).or_insert(facts);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn enrolled(user: &str, shared_ipad: bool) -> DeviceFacts {
        DeviceFacts { client_user_id: Some(user.to_owned()), shared_ipad, ..DeviceFacts::default() }
    }

    #[test]
    fn a_device_counts_for_the_user_it_was_last_enrolled_with_only() {
        let mut facts = Facts::default();
        facts.set_device("S1", enrolled("alice", true));
        assert!(facts.user_only_on_shared_ipads("alice"));

        facts.set_device("S1", enrolled("bob", true));
        assert!(!facts.user_only_on_shared_ipads("alice"), "alice is on no device any more");
        assert!(facts.user_only_on_shared_ipads("bob"));

        facts.set_device("S2", enrolled("bob", false));
        facts.set_device("S1", enrolled("bob", true)); // enrolled again with the same user
        assert!(!facts.user_only_on_shared_ipads("bob"), "bob is on S2 too, which is not shared");

        facts.set_device("S2", enrolled("alice", false));
        assert!(facts.user_only_on_shared_ipads("bob"), "bob is left on S1 alone");
        facts.set_device("S1", DeviceFacts::default()); // enrolled without a user
        assert!(!facts.user_only_on_shared_ipads("bob"));
        assert_eq!(facts.devices["S1"], DeviceFacts::default());
    }

    #[test]
    fn absorbing_takes_only_the_devices_and_users_not_known_yet() {
        let mut facts = Facts::default();
        facts.set_device("S1", DeviceFacts { retired: true, ..enrolled("alice", false) });
        let mut stored = Facts::default();
        stored.set_device("S1", enrolled("alice", false));
        stored.set_device("S2", enrolled("bob", true));
        stored.users.insert("bob".to_owned(), UserFacts::default());
        facts.absorb(stored);
        assert!(facts.devices["S1"].retired, "the newer fact stays");
        assert!(facts.user_only_on_shared_ipads("bob"), "S2 came, with its user index");
        assert!(facts.users.contains_key("bob"));
    }
}
