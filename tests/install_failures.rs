//! "COMPLETE is not proof" (issue 17, item 1; fleetdm/fleet#20449, #50909): an install that fails
//! because the device found no license (`installFailed` with `reason: "licenseNotFound"`) is
//! checked with Apple instead of reclaimed: associated again when Apple does not show the pair,
//! reported and kept when it does; a second report within a day releases the pair.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use support::scenario::{enroll, org, policy, posts, ready, released, serial, synced, user, MINUTE};
use support::{app, Harness, DAY};
use vpp_license_engine::{Event, Input, LicenseType};

fn install_failed(h: &mut Harness, reason: Option<&str>) {
    let input = Input::InstallFailed { serial_number: serial(0), adam_id: app(0), cancelled: false, reason: reason.map(str::to_owned) };
    h.input(input).unwrap();
}

/// One device in scope of an app, its license confirmed.
fn licensed(h: &mut Harness) -> String {
    let token = synced(h, org(1, 10, 0));
    enroll(h, [serial(0)]);
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(h).len(), 1);
    h.take_trace();
    token
}

/// The assignment vanished at Apple although its event was COMPLETE (a phantom association).
fn lose_at_apple(h: &mut Harness, token: &str) {
    let org = h.apple.org(token);
    org.assignments.retain(|(_, a)| a["serialNumber"] != serial(0));
    org.version += 1;
    org.recount();
}

/// The device's license vanished at Apple and the device reported it not found once: the
/// engine checked and associated the pair again.
fn reported_once_after_apple_lost_it(h: &mut Harness) -> String {
    let token = licensed(h);
    lose_at_apple(h, &token);
    install_failed(h, Some("licenseNotFound"));
    h.run_for(MINUTE);
    token
}

fn failures(h: &Harness) -> Vec<String> {
    h.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::AssignmentFailed { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn checks(h: &Harness) -> Vec<String> {
    h.requests().into_iter().filter(|(_, r)| r.purpose == "checkAssignment").map(|(_, r)| Harness::endpoint(r)).collect()
}

#[test]
fn license_not_found_for_a_pair_apple_does_not_show_associates_it_again_instead_of_reclaiming() {
    let mut h = Harness::with_notifications();
    let token = reported_once_after_apple_lost_it(&mut h);
    assert_eq!(checks(&h), [format!("assignments?serialNumber={}&adamId={}&pricingParam=STDQ", serial(0), app(0))]);
    assert_eq!(posts(&h, "associateAssets"), 1, "associated again");
    assert_eq!(ready(&h).len(), 1, "licenseReady follows the new confirmation");
    assert!(released(&h).is_empty(), "nothing reclaimed");
    assert!(failures(&h).is_empty());
    assert_eq!(h.apple.org(&token).assignments.iter().filter(|(_, a)| a["serialNumber"] == serial(0)).count(), 1);
}

#[test]
fn license_not_found_for_a_pair_apple_shows_reports_the_install_error_and_keeps_the_license() {
    let mut h = Harness::with_notifications();
    let token = licensed(&mut h);

    install_failed(&mut h, Some("licenseNotFound"));
    h.run_for(MINUTE);
    assert_eq!(checks(&h).len(), 1);
    let failures = failures(&h);
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("licenseNotFound") && failures[0].contains("kept"), "{failures:?}");
    assert_eq!(posts(&h, "associateAssets") + posts(&h, "disassociateAssets") + posts(&h, "revokeAssets"), 0);
    assert!(released(&h).is_empty());
    assert_eq!(h.apple.org(&token).assignments.len(), 1, "the license stays");
}

#[test]
fn a_second_license_not_found_within_a_day_releases_the_pair_with_assignment_failed() {
    let mut h = Harness::with_notifications();
    let token = reported_once_after_apple_lost_it(&mut h);
    assert_eq!(ready(&h).len(), 1);
    h.take_trace();

    h.run_for(DAY / 2);
    install_failed(&mut h, Some("licenseNotFound"));
    h.run_for(MINUTE);
    assert!(checks(&h).is_empty(), "no second check");
    let failures = failures(&h);
    assert_eq!(failures.len(), 1);
    assert!(failures[0].contains("licenseNotFound") && failures[0].contains("released"), "{failures:?}");
    assert_eq!(released(&h).len(), 1);
    assert!(h.apple.org(&token).assignments.is_empty(), "the license went back to the pool");
}

#[test]
fn license_not_found_a_day_apart_is_checked_each_time() {
    let mut h = Harness::with_notifications();
    licensed(&mut h);
    install_failed(&mut h, Some("licenseNotFound"));
    h.run_for(DAY + MINUTE);
    install_failed(&mut h, Some("licenseNotFound"));
    h.run_for(MINUTE);
    assert_eq!(checks(&h).len(), 2);
    assert!(released(&h).is_empty());
}

#[test]
fn install_failures_without_a_known_reason_reclaim_as_before() {
    for reason in [None, Some("somethingElse")] {
        let mut h = Harness::with_notifications();
        licensed(&mut h);
        install_failed(&mut h, reason);
        h.run_for(MINUTE);
        assert!(checks(&h).is_empty());
        let released = released(&h);
        assert_eq!(released.len(), 1, "{reason:?}");
        assert_eq!(released[0].2, "the installation failed");
    }
}

#[test]
fn license_not_found_on_a_device_checks_its_users_user_license() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 10, 1));
    h.input(Input::DeviceEnrolled { serial_number: serial(0), client_user_id: Some(user(0)), shared_ipad: false, enrollment_id: None, user_enrollment: false, platform: None }).unwrap();
    h.input(policy("p1", &app(0), LicenseType::User, [user(0)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 1);
    h.take_trace();
    h.apple.org(&token).assignments.retain(|(_, a)| a["clientUserId"] != user(0));

    install_failed(&mut h, Some("licenseNotFound"));
    h.run_for(MINUTE);
    assert_eq!(checks(&h), [format!("assignments?clientUserId={}&adamId={}&pricingParam=STDQ", user(0), app(0))]);
    assert_eq!(posts(&h, "associateAssets"), 1, "the user's license is associated again");
    assert_eq!(ready(&h).len(), 1);
    assert!(released(&h).is_empty());
}
