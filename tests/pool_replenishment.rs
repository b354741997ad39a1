//! Pool replenishment (issue 17, item 5; fleetdm/fleet#25624): targets waiting for want of
//! licenses are assigned as soon as Apple's counts grow — by an `ASSET_COUNT` notification or a
//! sync — without any administrator step, and the shortfall is reported over
//! (`insufficientLicenses` with `shortBy` 0, `appCounts`' `shortBy` back to 0).

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;
use support::scenario::{enroll, org, policy, ready, serial, synced, MINUTE};
use support::{app, Harness, Trace};
use vpp_license_engine::{Event, LicenseType};

fn shortfalls(h: &Harness) -> Vec<usize> {
    h.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::InsufficientLicenses { short_by, .. } => Some(*short_by),
            _ => None,
        })
        .collect()
}

fn short_by(h: &Harness) -> usize {
    h.engine.app_counts("a1").unwrap()[0].short_by
}

/// Five devices in scope of an app with two licenses: two are assigned, three wait.
fn short_pool(h: &mut Harness) -> String {
    let token = synced(h, org(1, 2, 0));
    enroll(h, (0..5).map(serial));
    h.input(policy("p1", &app(0), LicenseType::Device, (0..5).map(serial))).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(h).len(), 2);
    assert_eq!(shortfalls(h), [3]);
    assert_eq!(short_by(h), 3, "appCounts shows how many licenses the waiting targets lack");
    h.take_trace();
    token
}

#[test]
fn a_purchase_notified_by_asset_count_assigns_the_waiting_targets_and_reports_the_shortfall_over() {
    let mut h = Harness::with_notifications();
    let token = short_pool(&mut h);

    h.apple.purchase(&token, &app(0), 3, h.now);
    h.run_for(MINUTE);
    let mut served: Vec<Option<String>> = ready(&h).into_iter().map(|(_, serial, _)| serial).collect();
    served.sort();
    assert_eq!(served, (2..5).map(|i| Some(serial(i))).collect::<Vec<_>>(), "the three waiting devices, without an administrator step");
    assert_eq!(shortfalls(&h), [0], "the shortfall is reported over");
    assert_eq!(short_by(&h), 0);
    let associated = h.trace.iter().position(|t| matches!(t, Trace::Sent { request, .. } if request.purpose == "associateAssets"));
    let first_ready = h.trace.iter().position(|t| matches!(t, Trace::Emitted { event: Event::LicenseReady { .. }, .. }));
    assert!(associated < first_ready, "licenseReady follows Apple's confirmation of the association");
    assert!(!h.requests_for("a1").iter().any(|(_, r)| Harness::endpoint(r).starts_with("assets?")), "the notification was enough");
}

#[test]
fn counts_rising_in_a_sync_assign_the_waiting_targets_without_a_notification() {
    let mut h = Harness::new();
    let token = short_pool(&mut h);

    // The purchase's notification is never delivered (notifications are off): the next delta sync sees the counts.
    h.apple.purchase(&token, &app(0), 1, h.now);
    h.run_for(31 * MINUTE);
    assert_eq!(ready(&h).len(), 1);
    assert_eq!(shortfalls(&h), [2], "still short by two");
    assert_eq!(short_by(&h), 2);
    h.take_trace();

    h.apple.purchase(&token, &app(0), 5, h.now);
    h.run_for(31 * MINUTE);
    assert_eq!(ready(&h).len(), 2);
    assert_eq!(shortfalls(&h), [0]);
    assert_eq!(short_by(&h), 0);
    h.take_trace();
    h.run_for(31 * MINUTE);
    assert!(shortfalls(&h).is_empty(), "over is reported once");
}

#[test]
fn targets_apple_refused_with_9709_are_assigned_once_a_purchase_grows_the_pool() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 3, 0));
    // Another MDM took every license since our sync: Apple refuses all three with 9709.
    h.apple.org(&token).assets[0]["availableCount"] = json!(0);
    enroll(&mut h, (0..3).map(serial));
    h.input(policy("p1", &app(0), LicenseType::Device, (0..3).map(serial))).unwrap();
    h.run_for(MINUTE);
    assert!(ready(&h).is_empty());
    assert_eq!(shortfalls(&h).first(), Some(&3), "the refusal is a shortfall");
    assert_eq!(short_by(&h), 3);
    h.take_trace();

    h.apple.purchase(&token, &app(0), 3, h.now);
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 3, "every refused device, without an administrator step");
    assert_eq!(shortfalls(&h).last(), Some(&0));
    assert_eq!(short_by(&h), 0);
}
