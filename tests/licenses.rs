//! License decisions: assignment, batching, confirmation, pools, users, rules, reclaim,
//! Reconcile, Clean Up and notifications, in simulated time against the fake Apple.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;
use support::fake_apple::Org;
use support::{Harness, Trace, NOTIFICATION_TOKEN};
use vpp_license_engine::{AppPolicy, Event, ExplainQuery, Input, LicenseType, PricingParam};

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60_000;

fn app(i: usize) -> String {
    format!("{}", 400_000_000 + i)
}

fn serial(i: usize) -> String {
    format!("SERIAL{i:05}")
}

fn user(i: usize) -> String {
    format!("user-{i}")
}

/// An org with `apps` apps of `licenses` licenses each, nothing assigned, `users` registered users.
fn org(apps: usize, licenses: i64, users: usize) -> Org {
    let mut org = Org::generated("PS01", apps, 0, users);
    for asset in &mut org.assets {
        asset["totalCount"] = json!(licenses);
        asset["availableCount"] = json!(licenses);
    }
    org
}

/// A synced account "a1" on `org`; returns its token.
fn synced(h: &mut Harness, org: Org) -> String {
    let token = h.org("ORG1", org);
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    token
}

fn policy(id: &str, adam: &str, license_type: LicenseType, targets: impl IntoIterator<Item = String>) -> Input {
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

fn enroll(h: &mut Harness, serials: impl IntoIterator<Item = String>) {
    for serial_number in serials {
        h.input(Input::DeviceEnrolled { serial_number, client_user_id: None, shared_ipad: false }).unwrap();
    }
}

fn posts(h: &Harness, purpose: &str) -> usize {
    h.requests().iter().filter(|(_, r)| r.purpose == purpose).count()
}

fn ready(h: &Harness) -> Vec<(String, Option<String>, Option<String>)> {
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

fn released(h: &Harness) -> Vec<(String, Option<String>, String)> {
    h.events()
        .iter()
        .filter_map(|e| match e {
            Event::LicenseReleased { adam_id, serial_number, reason, .. } => Some((adam_id.clone(), serial_number.clone(), reason.clone())),
            _ => None,
        })
        .collect()
}

fn assigned_at_apple(h: &mut Harness, token: &str) -> usize {
    h.apple.org(token).assignments.len()
}

// ============================================================================ batching and confirmation

#[test]
fn one_app_to_2500_devices_takes_3_associate_requests_and_is_ready_only_after_apple_confirms() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 3000, 0));
    enroll(&mut h, (0..2500).map(serial));
    h.input(policy("p1", &app(0), LicenseType::Device, (0..2500).map(serial))).unwrap();
    h.run_for(SECOND);
    assert_eq!(posts(&h, "associateAssets"), 3);
    assert!(ready(&h).is_empty(), "nothing is ready before Apple confirms");
    h.run_for(5 * SECOND);
    assert_eq!(ready(&h).len(), 2500);
    assert_eq!(assigned_at_apple(&mut h, &token), 2500);
    assert_eq!(posts(&h, "associateAssets"), 3, "no request per device, no retries");
    assert!(h.engine.pending_operations("a1").unwrap().is_empty());
    assert!(h.notification_answers.iter().all(|s| *s == 200));
}

#[test]
fn thirty_apps_to_the_same_1000_devices_take_2_requests() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(30, 1000, 0));
    enroll(&mut h, (0..1000).map(serial));
    for a in 0..30 {
        h.input(policy(&format!("p{a}"), &app(a), LicenseType::Device, (0..1000).map(serial))).unwrap();
    }
    h.run_for(MINUTE);
    assert_eq!(posts(&h, "associateAssets"), 2);
    assert_eq!(ready(&h).len(), 30_000);
}

#[test]
fn thirty_apps_to_2500_users_take_6_requests() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(30, 3000, 2500));
    for a in 0..30 {
        h.input(policy(&format!("p{a}"), &app(a), LicenseType::User, (0..2500).map(user))).unwrap();
    }
    h.run_for(MINUTE);
    assert_eq!(posts(&h, "createUsers"), 0, "the users are registered already");
    assert_eq!(posts(&h, "associateAssets"), 6);
    assert_eq!(ready(&h).len(), 75_000);
}

#[test]
fn revoking_every_license_of_250_retired_devices_takes_3_requests() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(30, 1000, 0));
    enroll(&mut h, (0..250).map(serial));
    // Devices hold different mixes of apps, so per-app disassociation would need many requests.
    for a in 0..30 {
        let targets = (0..250).filter(move |d| (d * d * 7 + a * a * 13 + d * a) % 10 < 7).map(serial);
        h.input(policy(&format!("p{a}"), &app(a), LicenseType::Device, targets)).unwrap();
    }
    h.run_for(MINUTE);
    let held = assigned_at_apple(&mut h, &token);
    assert!(held > 4_000);
    for d in 0..250 {
        h.input(Input::DeviceRetired { serial_number: serial(d) }).unwrap();
    }
    h.run_for(MINUTE);
    assert_eq!(posts(&h, "revokeAssets"), 3);
    assert_eq!(posts(&h, "disassociateAssets"), 0);
    assert_eq!(assigned_at_apple(&mut h, &token), 0);
    assert_eq!(released(&h).len(), held);
    assert!(released(&h).iter().all(|(_, _, reason)| reason == "the device was retired"));
}

#[test]
fn releasing_one_app_from_many_devices_disassociates_instead_of_revoking() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(2, 1000, 0));
    enroll(&mut h, (0..250).map(serial));
    h.input(policy("p0", &app(0), LicenseType::Device, (0..250).map(serial))).unwrap();
    h.input(policy("p1", &app(1), LicenseType::Device, (0..250).map(serial))).unwrap();
    h.run_for(MINUTE);
    h.input(Input::RemovePolicy { policy_id: "p1".into() }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(posts(&h, "disassociateAssets"), 1);
    assert_eq!(posts(&h, "revokeAssets"), 0, "revoke would take app 0 away too");
    assert_eq!(released(&h).len(), 250);
}

#[test]
fn without_notifications_status_is_polled_30_seconds_apart_and_confirms() {
    let mut h = Harness::new();
    h.apple.event_delay = 95 * SECOND;
    synced(&mut h, org(1, 10, 0));
    enroll(&mut h, [serial(0)]);
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(5 * MINUTE);
    let submitted = h.requests().iter().find(|(_, r)| r.purpose == "associateAssets").unwrap().0;
    let polls: Vec<u64> = h.requests().iter().filter(|(_, r)| r.purpose == "eventStatus").map(|(at, _)| at - submitted).collect();
    assert_eq!(polls, [30 * SECOND, 60 * SECOND, 90 * SECOND, 120 * SECOND]);
    assert_eq!(ready(&h).len(), 1);
}

#[test]
fn an_event_still_pending_after_10_minutes_is_submitted_again() {
    let mut h = Harness::new();
    h.apple.event_delay = 60 * MINUTE;
    synced(&mut h, org(1, 10, 0));
    enroll(&mut h, [serial(0)]);
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(11 * MINUTE);
    let submits: Vec<u64> = h.requests().iter().filter(|(_, r)| r.purpose == "associateAssets").map(|(at, _)| *at).collect();
    assert_eq!(submits.len(), 2);
    assert!(submits[1] - submits[0] >= 10 * MINUTE && submits[1] - submits[0] < 11 * MINUTE, "{submits:?}");
}

// ============================================================================ pools

#[test]
fn a_pool_of_10_for_25_devices_requests_exactly_10_reports_15_short_and_assigns_the_rest_after_a_purchase() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 10, 0));
    enroll(&mut h, (0..25).map(serial));
    h.input(policy("p1", &app(0), LicenseType::Device, (0..25).map(serial))).unwrap();
    h.run_for(MINUTE);
    let first = h.requests().iter().find(|(_, r)| r.purpose == "associateAssets").unwrap().1.body.clone().unwrap();
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["serialNumbers"].as_array().unwrap().len(), 10);
    let shortfalls: Vec<usize> = h
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::InsufficientLicenses { short_by, .. } => Some(*short_by),
            _ => None,
        })
        .collect();
    assert_eq!(shortfalls, [15]);
    assert_eq!(ready(&h).len(), 10);
    assert!(h.events().iter().any(|e| matches!(e, Event::LowLicenses { available: 0, .. })));

    // 15 more licenses are bought: Apple sends ASSET_COUNT.
    h.apple.org(&token).assets[0]["totalCount"] = json!(25);
    h.apple.org(&token).assets[0]["availableCount"] = json!(15);
    let body = json!({"notificationId": "count-1", "notificationType": "ASSET_COUNT", "uId": "1",
                      "notification": {"adamId": app(0), "countDelta": 15, "pricingParam": "STDQ"}});
    let auth = format!("Bearer {NOTIFICATION_TOKEN}");
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), &body.to_string(), h.now), 200);
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 25);
    assert_eq!(assigned_at_apple(&mut h, &token), 25);
    assert_eq!(posts(&h, "associateAssets"), 2);
}

#[test]
fn free_apps_consume_a_license_from_their_unlimited_pool() {
    let mut h = Harness::with_notifications();
    let mut o = org(1, 0, 0);
    o.assets[0]["totalCount"] = json!(2_147_483_647);
    o.assets[0]["availableCount"] = json!(2_147_483_647);
    synced(&mut h, o);
    enroll(&mut h, (0..3).map(serial));
    h.input(policy("p1", &app(0), LicenseType::Device, (0..3).map(serial))).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 3);
    let counts = &h.engine.app_counts("a1").unwrap()[0];
    assert!(counts.unlimited);
    assert_eq!(counts.assigned_count, 3);
}

#[test]
fn per_target_failures_are_handled_per_target() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 10, 0));
    // Another MDM took 8 licenses since our sync: Apple can only give 2 of our 5.
    h.apple.org(&token).assets[0]["availableCount"] = json!(2);
    enroll(&mut h, (0..5).map(serial));
    h.input(policy("p1", &app(0), LicenseType::Device, (0..5).map(serial))).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 2);
    assert!(h.events().iter().any(|e| matches!(e, Event::InsufficientLicenses { short_by: 3, .. })));
    let why = h
        .engine
        .explain("a1", &ExplainQuery { adam_id: app(0), pricing_param: PricingParam::Stdq, serial_number: Some(serial(4)), client_user_id: None })
        .unwrap();
    assert!(!why.has_license);
    assert_eq!(why.reason, "not enough licenses available");
}

// ============================================================================ notifications

#[test]
fn duplicate_reordered_and_forged_notifications_change_nothing_beyond_the_first_valid_one() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(1, 10, 0));
    let count = |delta: i64, id: &str| {
        json!({"notificationId": id, "notificationType": "ASSET_COUNT", "uId": "1",
               "notification": {"adamId": app(0), "countDelta": delta, "pricingParam": "STDQ"}})
        .to_string()
    };
    let auth = format!("Bearer {NOTIFICATION_TOKEN}");
    let total = |h: &Harness| h.engine.app_counts("a1").unwrap()[0].total_count;
    assert_eq!(h.engine.handle_notification("a1", Some("Bearer wrong-secret-000000000000"), &count(100, "x"), h.now), 401);
    assert_eq!(h.engine.handle_notification("a1", None, &count(100, "x"), h.now), 401);
    assert_eq!(total(&h), 10, "forged: nothing changed");
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), &count(5, "n1"), h.now), 200);
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), &count(5, "n1"), h.now), 200);
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), &count(-2, "n2"), h.now), 200);
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), &count(5, "n1"), h.now), 200);
    assert_eq!(total(&h), 13, "each notification applied once, in whatever order");
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), "{not json", h.now), 400);
    let other_location = count(50, "n3").replace("\"uId\":\"1\"", "\"uId\":\"999\"");
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), &other_location, h.now), 400);
    assert_eq!(h.engine.handle_notification("nobody", Some(&auth), &count(50, "n4"), h.now), 404);
    assert_eq!(total(&h), 13);
}

#[test]
fn the_claim_subscribes_to_notifications_for_the_account() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(1, 10, 0));
    let claim = h.requests().iter().find(|(_, r)| r.purpose == "claimOwnership").unwrap().1.body.clone().unwrap();
    let claim: serde_json::Value = serde_json::from_str(&claim).unwrap();
    assert_eq!(claim["notificationUrl"], "https://mdm.test/apple/a1");
    assert_eq!(claim["notificationAuthToken"], NOTIFICATION_TOKEN);
    assert_eq!(claim["notificationTypes"], json!(["ASSET_MANAGEMENT", "ASSET_COUNT", "USER_MANAGEMENT", "USER_ASSOCIATED"]));
    assert!(!format!("{:?}", h.engine).contains(NOTIFICATION_TOKEN), "the notification secret is hidden in Debug output");
}

// ============================================================================ trace helpers

#[test]
fn license_ready_is_never_emitted_before_apples_confirmation_arrives() {
    let mut h = Harness::new();
    h.apple.event_delay = 40 * SECOND;
    synced(&mut h, org(1, 10, 0));
    enroll(&mut h, [serial(0)]);
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(2 * MINUTE);
    let complete = h
        .trace
        .iter()
        .position(|t| matches!(t, Trace::Answered { body, .. } if body.contains(r#""eventStatus":"COMPLETE""#)))
        .expect("a COMPLETE status");
    let first_ready = h
        .trace
        .iter()
        .position(|t| matches!(t, Trace::Emitted { event: Event::LicenseReady { .. }, .. }))
        .expect("license ready");
    assert!(first_ready > complete);
}
