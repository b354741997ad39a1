//! Helpers of the license scenario tests: a synced account on a generated location, policies,
//! enrollments, and what the harness saw (requests by purpose, licenses ready and released).

use serde_json::json;
use vpp_license_engine::{AppPolicy, Event, Input, LicenseType, PricingParam};

use super::fake_apple::Org;
use super::Harness;

pub const SECOND: u64 = 1_000;
pub const MINUTE: u64 = 60_000;

pub fn serial(i: usize) -> String {
    format!("SERIAL{i:05}")
}

pub fn user(i: usize) -> String {
    format!("user-{i}")
}

/// An org with `apps` apps of `licenses` licenses each, nothing assigned, `users` registered users.
pub fn org(apps: usize, licenses: i64, users: usize) -> Org {
    let mut org = Org::generated("PS01", apps, 0, users);
    for asset in &mut org.assets {
        asset["totalCount"] = json!(licenses);
        asset["availableCount"] = json!(licenses);
    }
    org
}

/// A synced account "a1" on `org`; returns its token.
pub fn synced(h: &mut Harness, org: Org) -> String {
    let token = h.org("ORG1", org);
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    token
}

pub fn policy(id: &str, adam: &str, license_type: LicenseType, targets: impl IntoIterator<Item = String>) -> Input {
    Input::SetPolicy {
        policy: AppPolicy {
            policy_id: id.into(),
            name: format!("Policy {id}"),
            account_id: "a1".into(),
            adam_id: adam.into(),
            pricing_param: PricingParam::Stdq,
            license_type,
            targets: targets.into_iter().collect(),
        },
    }
}

pub fn enroll(h: &mut Harness, serials: impl IntoIterator<Item = String>) {
    for serial_number in serials {
        h.input(Input::DeviceEnrolled { serial_number, client_user_id: None, shared_ipad: false, enrollment_id: None, user_enrollment: false, platform: None }).unwrap();
    }
}

/// Takes one device's app license back and holds it: the user removed the app (`kind` 0), the install failed (1),
/// or an administrator reclaimed it (2).
pub fn take_back(kind: u32, serial_number: String, adam_id: String) -> Input {
    match kind {
        0 => Input::AppRemoved { serial_number, adam_id },
        1 => Input::InstallFailed { serial_number, adam_id, cancelled: false, reason: None },
        _ => Input::ReclaimLicense {
            account_id: "a1".into(),
            adam_id,
            pricing_param: PricingParam::Stdq,
            serial_number: Some(serial_number),
            client_user_id: None,
        },
    }
}

pub fn posts(h: &Harness, purpose: &str) -> usize {
    h.requests().iter().filter(|(_, r)| r.purpose == purpose).count()
}

pub fn ready(h: &Harness) -> Vec<(String, Option<String>, Option<String>)> {
    h.events()
        .iter()
        .filter_map(|e| match e {
            Event::LicenseReady { adam_id, serial_number, client_user_id, .. } => {
                Some((adam_id.clone(), serial_number.clone(), client_user_id.clone()))
            }
            _ => None,
        })
        .collect()
}

pub fn released(h: &Harness) -> Vec<(String, Option<String>, String)> {
    h.events()
        .iter()
        .filter_map(|e| match e {
            Event::LicenseReleased { adam_id, serial_number, reason, .. } => Some((adam_id.clone(), serial_number.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

pub fn assigned_at_apple(h: &mut Harness, token: &str) -> usize {
    h.apple.org(token).assignments.len()
}
