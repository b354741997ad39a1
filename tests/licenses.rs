//! License decisions: assignment, batching, confirmation, pools, users, rules, reclaim,
//! Reconcile, Clean Up and notifications, in simulated time against the fake Apple.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;
use support::fake_apple::{EventFault, Fault, Flood, NotificationFault, Org};
use support::scenario::*;
use support::{app, Harness, Trace, NOTIFICATION_TOKEN};
use vpp_license_engine::{Event, ExplainQuery, Input, LicenseType, PricingParam};


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
    assert_eq!(posts(&h, "eventStatus"), 0, "the revokes were finished by their notifications");
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

/// The serial numbers of every associate request, in order.
fn associated_serials(h: &Harness) -> Vec<Vec<String>> {
    h.requests()
        .iter()
        .filter(|(_, r)| r.purpose == "associateAssets")
        .map(|(_, r)| {
            let body: serde_json::Value = serde_json::from_str(r.body.as_deref().unwrap()).unwrap();
            body["serialNumbers"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect()
        })
        .collect()
}

fn held_at_apple(h: &mut Harness, token: &str) -> Vec<String> {
    let mut serials: Vec<String> =
        h.apple.org(token).assignments.iter().map(|(_, a)| a["serialNumber"].as_str().unwrap().to_owned()).collect();
    serials.sort();
    serials
}

#[test]
fn a_resubmission_after_10_minutes_asks_only_for_pairs_still_wanted_and_a_late_completion_is_adopted_and_released() {
    let mut h = Harness::new(); // no notifications: /status says PENDING, then a sync shows the late completion
    let token = synced(&mut h, org(1, 2, 0));
    enroll(&mut h, (0..3).map(serial));
    h.apple.event_faults.push_back(EventFault::Slow(30 * MINUTE));
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0), serial(1)])).unwrap();
    h.run_for(5 * MINUTE);
    // Serial 1 leaves the scope and serial 2 enters it while Apple still works on the event.
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![serial(2)], remove: vec![serial(1)] }).unwrap();
    h.run_for(6 * MINUTE);
    // Serial 2 waits: the old event may still give serial 1 the pool's second license.
    assert_eq!(associated_serials(&h), [vec![serial(0), serial(1)], vec![serial(0)]]);
    h.run_for(3 * 60 * MINUTE);
    assert!(released(&h).iter().any(|(_, s, _)| s.as_deref() == Some(serial(1).as_str())), "adopted as ours, then released");
    assert_eq!(held_at_apple(&mut h, &token), [serial(0), serial(2)]);
    assert!(h.apple.overcommitted.is_empty(), "{:?}", h.apple.overcommitted);
}

#[test]
fn finishing_an_operation_keeps_the_pairs_a_newer_operation_is_associating_in_flight() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 2, 0));
    enroll(&mut h, (0..3).map(serial));
    // The first event fails one of its two devices (Apple's trouble: planned again, slowly), and
    // its success notification is lost: `/status` finishes it while the retry is at Apple.
    h.apple.event_faults.extend([EventFault::Partial(9603), EventFault::Slow(20 * MINUTE)]);
    h.apple.notification_faults.push_back(NotificationFault::Drop);
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0), serial(1)])).unwrap();
    h.run_for(2 * MINUTE);
    assert_eq!(associated_serials(&h).len(), 2, "the first request and the retry of its failed device");
    assert_eq!(h.engine.pending_operations("a1").unwrap().len(), 1, "the first one finished by /status");
    // A third device enters the scope: both licenses are taken or in flight.
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![serial(2)], remove: vec![] }).unwrap();
    h.run_for(5 * MINUTE);
    assert_eq!(associated_serials(&h).len(), 2, "nothing more is asked for while the retry is at Apple");
    h.run_for(25 * MINUTE);
    assert!(!associated_serials(&h).concat().contains(&serial(2)), "{:?}", associated_serials(&h));
    assert_eq!(held_at_apple(&mut h, &token), [serial(0), serial(1)]);
    assert!(h.apple.overcommitted.is_empty(), "{:?}", h.apple.overcommitted);
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
fn a_notification_flood_confirms_each_license_once_and_its_copies_after_the_status_answer_change_nothing() {
    // Apple Developer Forums 724381: one notification per app of at most 100 devices (25 here), in a
    // scrambled order over five minutes, some twice, while /status says COMPLETE long before.
    let mut h = Harness::with_notifications();
    h.trace_store = true;
    h.apple.flood = Some(Flood { max_assignments: 25, spread: 5 * MINUTE, duplicate_every: 3 });
    let token = synced(&mut h, org(2, 200, 0));
    enroll(&mut h, (0..150).map(serial));
    for a in 0..2 {
        h.input(policy(&format!("p{a}"), &app(a), LicenseType::Device, (0..150).map(serial))).unwrap();
    }
    h.run_for(MINUTE);
    // /status answered COMPLETE within the minute: every license is ready once, whatever came first.
    let mut seen = ready(&h);
    assert_eq!(seen.len(), 300, "each license ready once");
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 300, "no license reported twice");
    assert_eq!(assigned_at_apple(&mut h, &token), 300);
    let delivered_so_far = h.notification_answers.len();
    h.take_trace();
    h.run_for(10 * MINUTE);
    assert!(h.notification_answers.len() > delivered_so_far, "the flood went on after /status confirmed");
    assert!(h.notification_answers.iter().all(|s| *s == 200));
    let later = h.take_trace();
    let license_events = later.iter().filter(|t| matches!(t, Trace::Emitted { event: Event::LicenseReady { .. } | Event::LicenseReleased { .. }, .. })).count();
    assert_eq!(license_events, 0, "the late copies reported nothing");
    let pair_writes: Vec<&String> =
        later.iter().filter_map(|t| match t { Trace::Stored { key, .. } if key.starts_with("asg/") || key.starts_with("prov/") => Some(key), _ => None }).collect();
    assert!(pair_writes.is_empty(), "the late copies wrote nothing: {pair_writes:?}");
    assert_eq!(h.apple.fault_log.get("notification flood").copied(), Some(1), "one associate event for both apps");
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

#[test]
fn account_ids_are_percent_encoded_as_one_path_segment_in_the_notification_url() {
    let mut h = Harness::with_notifications();
    let token = h.org("ORG1", org(1, 10, 0));
    h.add_account("north campus/1+ü", &token);
    h.run_for(MINUTE);
    let claim = h.requests().iter().find(|(_, r)| r.purpose == "claimOwnership").unwrap().1.body.clone().unwrap();
    let claim: serde_json::Value = serde_json::from_str(&claim).unwrap();
    assert_eq!(claim["notificationUrl"], "https://mdm.test/apple/north%20campus%2F1%2B%C3%BC");
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

// ============================================================================ reclaim triggers

/// A synced account where device `SERIAL00000` holds app 0 through policy p1 (and p2 when `twice`).
fn one_device_licensed(twice: bool) -> (Harness, String) {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(2, 10, 2));
    enroll(&mut h, [serial(0)]);
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    if twice {
        h.input(policy("p2", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    }
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 1);
    (h, token)
}

fn remove_target(h: &mut Harness, policy_id: &str) {
    let input = Input::UpdatePolicyTargets { policy_id: policy_id.into(), add: vec![], remove: vec![serial(0)] };
    h.input(input).unwrap();
}

#[test]
fn leaving_a_policys_scope_reclaims_at_once_unless_another_policy_still_wants_the_license() {
    let (mut h, token) = one_device_licensed(true);
    remove_target(&mut h, "p1");
    h.run_for(MINUTE);
    assert!(released(&h).is_empty(), "p2 still wants it");
    remove_target(&mut h, "p2");
    h.run_for(MINUTE);
    assert_eq!(released(&h), [(app(0), Some(serial(0)), "left the scope of policy Policy p2".to_owned())]);
    assert_eq!(assigned_at_apple(&mut h, &token), 0);
}

#[test]
fn retiring_a_device_reclaims_its_licenses() {
    let (mut h, token) = one_device_licensed(false);
    h.input(Input::DeviceRetired { serial_number: serial(0) }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(released(&h).len(), 1);
    assert_eq!(assigned_at_apple(&mut h, &token), 0);
    assert!(h.engine.explain("a1", &device_query(0)).unwrap().reason.contains("retired"));
}

fn device_query(app_index: usize) -> ExplainQuery {
    ExplainQuery { adam_id: app(app_index), pricing_param: PricingParam::Stdq, serial_number: Some(serial(0)), client_user_id: None }
}

#[test]
fn an_app_removed_by_the_user_or_a_failed_or_cancelled_install_is_reclaimed_and_not_reassigned_until_installed_again() {
    for (input, reason) in [
        (Input::AppRemoved { serial_number: serial(0), adam_id: app(0) }, "the user removed the app from the device"),
        (Input::InstallFailed { serial_number: serial(0), adam_id: app(0), cancelled: false, reason: None }, "the installation failed"),
        (Input::InstallFailed { serial_number: serial(0), adam_id: app(0), cancelled: true, reason: None }, "the installation was cancelled"),
    ] {
        let (mut h, token) = one_device_licensed(false);
        h.input(input).unwrap();
        h.run_for(10 * MINUTE);
        assert_eq!(released(&h), [(app(0), Some(serial(0)), reason.to_owned())]);
        assert_eq!(posts(&h, "associateAssets"), 1, "not assigned again");
        assert_eq!(h.engine.explain("a1", &device_query(0)).unwrap().reason, reason);
        h.input(Input::AppInstalled { serial_number: serial(0), adam_id: app(0) }).unwrap();
        h.run_for(MINUTE);
        assert_eq!(assigned_at_apple(&mut h, &token), 1, "the hold is lifted");
    }
}

#[test]
fn an_administrator_reclaims_one_license_all_of_an_app_or_all_of_an_account() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(2, 10, 0));
    enroll(&mut h, (0..3).map(serial));
    h.input(policy("p0", &app(0), LicenseType::Device, (0..3).map(serial))).unwrap();
    h.input(policy("p1", &app(1), LicenseType::Device, (0..3).map(serial))).unwrap();
    h.run_for(MINUTE);
    assert_eq!(assigned_at_apple(&mut h, &token), 6);

    let one = Input::ReclaimLicense {
        account_id: "a1".into(),
        adam_id: app(0),
        pricing_param: PricingParam::Stdq,
        serial_number: Some(serial(0)),
        client_user_id: None,
    };
    h.input(one).unwrap();
    h.run_for(MINUTE);
    assert_eq!(assigned_at_apple(&mut h, &token), 5);
    h.input(Input::ReclaimApp { account_id: "a1".into(), adam_id: app(1), pricing_param: PricingParam::Stdq }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(assigned_at_apple(&mut h, &token), 2);
    h.input(Input::ReclaimAccount { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(assigned_at_apple(&mut h, &token), 0);
    assert!(released(&h).iter().all(|(_, _, reason)| reason == "reclaimed by an administrator"));
    assert_eq!(posts(&h, "associateAssets"), 1, "one batched assignment; reclaimed licenses are not reassigned");

    let not_ours = Input::ReclaimLicense {
        account_id: "a1".into(),
        adam_id: app(0),
        pricing_param: PricingParam::Stdq,
        serial_number: Some(serial(9)),
        client_user_id: None,
    };
    assert_eq!(h.input(not_ours).unwrap_err().code(), "NOT_ALLOWED");
}

#[test]
fn every_release_tells_the_user_while_the_license_removal_notification_is_on() {
    let (mut h, _) = one_device_licensed(false);
    h.input(Input::SetLicenseRemovalNotification { enabled: true }).unwrap();
    h.input(Input::DeviceRetired { serial_number: serial(0) }).unwrap();
    h.run_for(MINUTE);
    let notified: Vec<_> = h.events().into_iter().filter(|e| matches!(e, Event::NotifyUser { .. })).collect();
    assert_eq!(notified.len(), 1);
    assert_eq!(h.store["settings"]["licenseRemovalNotification"], true);

    let (mut h, _) = one_device_licensed(false);
    h.input(Input::DeviceRetired { serial_number: serial(0) }).unwrap();
    h.run_for(MINUTE);
    assert!(!h.events().iter().any(|e| matches!(e, Event::NotifyUser { .. })), "off by default");
}

// ============================================================================ Reconcile and Clean Up

/// An org where another MDM assigned app 0 to SERIAL00050 and SERIAL00051, and a book and a
/// non-revocable app are assigned too.
fn shared_org() -> Org {
    let mut o = org(4, 10, 2);
    o.assets[2]["productType"] = json!("Book");
    o.assets[2]["deviceAssignable"] = json!(false);
    o.assets[2]["revocable"] = json!(false);
    o.assets[3]["revocable"] = json!(false);
    for (adam, target) in [(app(0), json!({"serialNumber": serial(50)})), (app(0), json!({"serialNumber": serial(51)})),
                           (app(2), json!({"clientUserId": user(1)})), (app(3), json!({"serialNumber": serial(52)}))] {
        let mut a = json!({"adamId": adam, "pricingParam": "STDQ"});
        a.as_object_mut().unwrap().extend(target.as_object().unwrap().clone());
        o.assignments.push((1, a));
        if let Some(x) = o.assets.iter_mut().find(|x| x["adamId"] == json!(adam)) {
            x["assignedCount"] = json!(x["assignedCount"].as_i64().unwrap() + 1);
            x["availableCount"] = json!(x["availableCount"].as_i64().unwrap() - 1);
        }
    }
    o
}

#[test]
fn reconcile_releases_only_this_mdms_unused_licenses_and_never_books_or_non_revocable_apps() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, shared_org());
    // Ours: app 0 on SERIAL00000 (device), the book and the non-revocable app for user-0.
    enroll(&mut h, [serial(0)]);
    h.input(policy("p0", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.input(policy("book", &app(2), LicenseType::User, [user(0)])).unwrap();
    h.input(policy("fixed", &app(3), LicenseType::User, [user(0)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 3);
    // The device's user now holds our user license of app 0: the device license is no longer
    // wanted, but nothing nominated it — only Reconcile notices.
    h.input(policy("u0", &app(0), LicenseType::User, [user(0)])).unwrap();
    h.run_for(MINUTE);
    h.input(Input::DeviceEnrolled { serial_number: serial(0), client_user_id: Some(user(0)), shared_ipad: false, enrollment_id: None, user_enrollment: false, platform: None }).unwrap();
    h.input(Input::RemovePolicy { policy_id: "book".into() }).unwrap();
    h.input(Input::RemovePolicy { policy_id: "fixed".into() }).unwrap();
    h.run_for(MINUTE);
    assert!(released(&h).is_empty(), "books and non-revocable apps are never released");
    h.input(Input::Reconcile).unwrap();
    h.run_for(MINUTE);
    assert_eq!(released(&h), [(app(0), Some(serial(0)), "no longer used (Reconcile)".to_owned())]);
    let at_apple = &h.apple.org(&token).assignments;
    for other in [serial(50), serial(51), serial(52)] {
        assert!(at_apple.iter().any(|(_, a)| a["serialNumber"] == json!(other)), "{other} (another MDM's) untouched");
    }
    assert!(at_apple.iter().any(|(_, a)| a["adamId"] == json!(app(2))), "the book stays");
}

#[test]
fn reconcile_runs_by_itself_every_24_hours() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(1, 10, 1));
    h.run_for(25 * 60 * MINUTE);
    let wakeups = h.engine.next_wakeup();
    assert!(wakeups.at <= h.now + 24 * 60 * MINUTE);
    let first = h.trace.iter().position(|t| matches!(t, Trace::Emitted { event: Event::SyncStarted { .. }, .. }));
    assert!(first.is_some());
    // A license of ours whose policy vanished without a trigger (restored store without it) goes at the next Reconcile.
    let (mut h, token) = one_device_licensed(false);
    let records: Vec<_> = h.stored_records().into_iter().filter(|r| !r.key.starts_with("policy/") && !r.key.starts_with("targets/")).collect();
    let apple = std::mem::replace(&mut h.apple, support::fake_apple::FakeApple::new());
    let now = h.now;
    let mut restored = Harness::with_notifications();
    restored.apple = apple;
    restored.now = now;
    restored.add_account_mapping("a1", &token);
    restored.engine = vpp_license_engine::Engine::restore(restored.engine_config(), records, now).unwrap();
    restored.run_for(24 * 60 * MINUTE + MINUTE);
    assert_eq!(released(&restored).len(), 1);
}

#[test]
fn clean_up_adopts_other_mdms_licenses_a_policy_wants_releases_the_rest_and_never_touches_ours() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, shared_org());
    enroll(&mut h, [serial(0), serial(50)]);
    h.input(policy("p0", &app(0), LicenseType::Device, [serial(0), serial(50)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(posts(&h, "associateAssets"), 1);
    h.input(Input::CleanUp { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    // SERIAL00050 (another MDM's, wanted) is adopted; SERIAL00051 (unwanted) released; the
    // book and the non-revocable app are left alone; ours (SERIAL00000) untouched.
    assert_eq!(released(&h), [(app(0), Some(serial(51)), "assigned by another MDM (Clean Up)".to_owned())]);
    let at_apple: Vec<_> = h.apple.org(&token).assignments.iter().map(|(_, a)| a.clone()).collect();
    assert_eq!(at_apple.len(), 4);
    assert!(h.store.keys().any(|k| k.starts_with("prov/a1/") && k.ends_with("SERIAL00050")), "adopted into provenance");
    // Adopted licenses are ours now: leaving the scope reclaims them.
    h.input(Input::UpdatePolicyTargets { policy_id: "p0".into(), add: vec![], remove: vec![serial(50)] }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(released(&h).len(), 2);
}

#[test]
fn a_clean_up_adopting_many_pairs_on_few_devices_writes_one_provenance_record_per_device() {
    let (apps, devices) = (30, 3);
    let mut o = org(apps, 10, 0);
    for (a, asset) in o.assets.iter_mut().enumerate() {
        asset["assignedCount"] = json!(devices);
        asset["availableCount"] = json!(10 - devices);
        for d in 0..devices {
            o.assignments.push((1, json!({"adamId": app(a), "pricingParam": "STDQ", "serialNumber": serial(d)})));
        }
    }
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, o);
    enroll(&mut h, (0..devices).map(serial));
    for a in 0..apps {
        h.input(policy(&format!("p{a}"), &app(a), LicenseType::Device, (0..devices).map(serial))).unwrap();
    }
    h.run_for(MINUTE);
    assert_eq!(posts(&h, "associateAssets"), 0, "another MDM's licenses are there already");
    h.trace_store = true;
    h.take_trace();
    h.input(Input::CleanUp { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    let written: Vec<String> = h
        .take_trace()
        .into_iter()
        .filter_map(|t| match t {
            Trace::Stored { key, .. } if key.starts_with("prov/") => Some(key),
            _ => None,
        })
        .collect();
    let expected: Vec<String> = (0..devices).map(|d| format!("prov/a1/d/{}", serial(d))).collect();
    assert_eq!(written, expected, "{} pairs adopted, one record per device", apps * devices);
    let mut adopted: Vec<String> =
        h.store[&expected[0]]["adamIds"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    adopted.sort();
    let mut wanted: Vec<String> = (0..apps).map(app).collect();
    wanted.sort();
    assert_eq!(adopted, wanted);
    assert_eq!(h.apple.org(&token).assignments.len(), apps * devices, "nothing released");
}

// ============================================================================ rules

#[test]
fn no_device_license_for_a_device_whose_user_has_this_mdms_user_license_for_the_app() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(1, 10, 2));
    h.input(Input::DeviceEnrolled { serial_number: serial(0), client_user_id: Some(user(0)), shared_ipad: false, enrollment_id: None, user_enrollment: false, platform: None }).unwrap();
    h.input(policy("u", &app(0), LicenseType::User, [user(0)])).unwrap();
    h.run_for(MINUTE);
    h.input(policy("d", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h), [(app(0), None, Some(user(0)))]);
    let why = h.engine.explain("a1", &device_query(0)).unwrap();
    assert_eq!(why.reason, "the device's user already has a user license for this app from this MDM");
}

#[test]
fn shared_ipads_get_device_licenses_only() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(1, 10, 2));
    h.input(Input::DeviceEnrolled { serial_number: serial(0), client_user_id: Some(user(0)), shared_ipad: true, enrollment_id: None, user_enrollment: false, platform: None }).unwrap();
    h.input(policy("u", &app(0), LicenseType::User, [user(0)])).unwrap();
    h.input(policy("d", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h), [(app(0), Some(serial(0)), None)]);
    let query = ExplainQuery { adam_id: app(0), pricing_param: PricingParam::Stdq, serial_number: None, client_user_id: Some(user(0)) };
    assert_eq!(h.engine.explain("a1", &query).unwrap().reason, "shared iPads get device licenses only");
}

#[test]
fn books_are_user_only_and_apps_apple_marks_not_device_assignable_get_no_device_license() {
    let mut h = Harness::with_notifications();
    let mut o = org(2, 10, 1);
    o.assets[0]["productType"] = json!("Book");
    o.assets[0]["deviceAssignable"] = json!(false);
    o.assets[1]["deviceAssignable"] = json!(false);
    synced(&mut h, o);
    enroll(&mut h, [serial(0)]);
    h.input(policy("b", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.input(policy("n", &app(1), LicenseType::Device, [serial(0)])).unwrap();
    h.input(policy("bu", &app(0), LicenseType::User, [user(0)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h), [(app(0), None, Some(user(0)))], "only the book's user license");
    assert_eq!(h.engine.explain("a1", &device_query(0)).unwrap().reason, "books can only be licensed to users: assign the book to the device's user instead (a user license)");
    assert_eq!(h.engine.explain("a1", &device_query(1)).unwrap().reason, "Apple does not allow device licenses for this app");
}

// ============================================================================ users

#[test]
fn unknown_users_are_registered_in_batches_then_licensed_and_invited_unless_they_have_a_managed_apple_id() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 500, 0));
    for i in 0..150 {
        let managed = (i % 2 == 0).then(|| format!("maid-{i}@school.test"));
        h.input(Input::UserAdded { client_user_id: user(i), email: Some(format!("{i}@school.test")), managed_apple_id: managed }).unwrap();
    }
    h.input(policy("u", &app(0), LicenseType::User, (0..150).map(user))).unwrap();
    h.run_for(5 * MINUTE);
    assert_eq!(posts(&h, "createUsers"), 2, "150 users at maxUsers 100");
    assert_eq!(ready(&h).len(), 150);
    assert_eq!(posts(&h, "eventStatus"), 0, "notifications finished every operation, user creation included");
    assert!(h.engine.pending_operations("a1").unwrap().is_empty());
    assert_eq!(h.apple.org(&token).users.len(), 150);
    h.run_for(31 * MINUTE); // the delta sync brings the invitation codes
    let invites: Vec<(String, String)> = h
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::InviteUser { client_user_id, invite_url, .. } => Some((client_user_id.clone(), invite_url.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(invites.len(), 75, "only users without a Managed Apple ID are invited");
    assert!(invites.iter().all(|(u, url)| url.contains(&format!("inviteCode=code-{u}"))), "{:?}", invites.first());
}

#[test]
fn user_associated_notification_marks_the_user_associated() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(1, 10, 2));
    let body = json!({"notificationId": "ua-1", "notificationType": "USER_ASSOCIATED", "uId": "1",
                      "notification": {"associatedUsers": [{"clientUserId": user(0), "status": "Associated", "idHash": "x"}]}});
    let auth = format!("Bearer {NOTIFICATION_TOKEN}");
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), &body.to_string(), h.now), 200);
    h.input(policy("u", &app(0), LicenseType::User, [user(0)])).unwrap();
    h.run_for(MINUTE);
    assert!(!h.events().iter().any(|e| matches!(e, Event::InviteUser { .. })), "an associated user needs no invitation");
    assert_eq!(ready(&h).len(), 1);
}

// ============================================================================ re-enrollment and durability

#[test]
fn a_re_enrolled_device_or_an_update_push_gets_license_ready_again_without_a_new_assignment() {
    let (mut h, _) = one_device_licensed(false);
    let enrolled = |enrollment_id: Option<&str>| Input::DeviceEnrolled {
        serial_number: serial(0),
        client_user_id: None,
        shared_ipad: false,
        enrollment_id: enrollment_id.map(str::to_owned),
        user_enrollment: false,
        platform: None,
    };
    h.input(enrolled(Some("wiped-and-enrolled-again"))).unwrap();
    h.input(Input::UpdatePush { serial_number: serial(0), adam_id: app(0) }).unwrap();
    h.input(Input::UpdatePush { serial_number: serial(0), adam_id: app(1) }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 3, "first assignment, re-enrollment, update push of app 0");
    assert_eq!(posts(&h, "associateAssets"), 1);

    // A host replaying its facts at start-up: the same enrollment, or no enrollment id, changes nothing.
    h.input(enrolled(Some("wiped-and-enrolled-again"))).unwrap();
    h.input(enrolled(None)).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 3, "a replayed fact emits nothing");

    // A retired device enrolled again is a re-enrollment too (its license was released, so it is assigned anew).
    h.input(Input::DeviceRetired { serial_number: serial(0) }).unwrap();
    h.run_for(MINUTE);
    h.input(enrolled(None)).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 4);
    assert_eq!(posts(&h, "associateAssets"), 2);
}

#[test]
fn after_a_restart_a_stored_event_is_polled_and_completed_without_submitting_again() {
    let mut h = Harness::new();
    h.apple.event_delay = 5 * MINUTE;
    let token = synced(&mut h, org(1, 10, 0));
    enroll(&mut h, [serial(0)]);
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(10 * SECOND);
    assert_eq!(posts(&h, "associateAssets"), 1);
    assert!(h.store.keys().any(|k| k.starts_with("op/a1/")), "the operation is stored with its eventId");
    let event_id = h.engine.pending_operations("a1").unwrap()[0].event_id.clone().expect("accepted");

    let mut restored = Harness::new();
    restored.now = h.now;
    restored.apple = std::mem::replace(&mut h.apple, support::fake_apple::FakeApple::new());
    restored.add_account_mapping("a1", &token);
    restored.engine = vpp_license_engine::Engine::restore(restored.engine_config(), h.stored_records(), h.now).unwrap();
    restored.run_for(10 * MINUTE);
    assert_eq!(posts(&restored, "associateAssets"), 0, "not submitted twice");
    let polled: Vec<_> = restored.requests().iter().filter(|(_, r)| r.purpose == "eventStatus").map(|(_, r)| r.url.clone()).collect();
    assert!(polled.iter().all(|u| u.ends_with(&format!("eventId={event_id}"))));
    assert_eq!(ready(&restored).len(), 1);
    assert!(restored.store.keys().any(|k| k.starts_with("prov/a1/")));
    assert!(!restored.store.keys().any(|k| k.starts_with("op/")), "finished operations are deleted");
}

#[test]
fn an_app_converted_from_unmanaged_to_managed_gets_a_license_and_license_ready() {
    let (mut h, _) = one_device_licensed(false);
    // The user had removed app 0; it is installed again unmanaged and now converted to managed.
    h.input(Input::AppRemoved { serial_number: serial(0), adam_id: app(0) }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(released(&h).len(), 1);
    h.input(Input::AppConvertedToManaged { serial_number: serial(0), adam_id: app(0) }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(posts(&h, "associateAssets"), 2, "licensed again");
    assert_eq!(ready(&h).len(), 2);
    // Converting an app whose license the device still holds only repeats licenseReady.
    h.input(Input::AppConvertedToManaged { serial_number: serial(0), adam_id: app(0) }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(posts(&h, "associateAssets"), 2);
    assert_eq!(ready(&h).len(), 3);
}

#[test]
fn an_association_in_flight_when_another_mdm_takes_over_is_confirmed_by_a_sync_after_reclaim_ownership() {
    let mut h = Harness::with_notifications();
    h.latency = 500;
    let token = synced(&mut h, org(1, 10, 0));
    enroll(&mut h, [serial(0)]);
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    // The associate goes out (answered 500 ms later); meanwhile another MDM takes the location,
    // so the answer to the associate itself carries the rival's mdmInfo.
    let rival = json!({"id": "rival-id", "name": "Rival MDM", "metadata": "1"});
    h.apple.org(&token).mdm_info = Some(rival);
    h.run_for(MINUTE);
    assert_eq!(h.status("a1"), vpp_license_engine::AccountStatus::OwnedByOtherMdm);
    assert!(ready(&h).is_empty());
    h.input(Input::ReclaimOwnership { account_id: "a1".into() }).unwrap();
    h.run_for(15 * MINUTE);
    assert_eq!(ready(&h).len(), 1, "the unanswered associate was confirmed by a sync");
    assert_eq!(posts(&h, "associateAssets"), 1, "Apple made it: not sent again");
    assert!(h.engine.pending_operations("a1").unwrap().is_empty());
}

#[test]
fn held_pairs_stay_unassigned_after_a_restart() {
    let (mut h, token) = one_device_licensed(false);
    h.input(Input::AppRemoved { serial_number: serial(0), adam_id: app(0) }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(released(&h).len(), 1);
    assert!(h.store.keys().any(|k| k.starts_with("hold/a1/")), "the hold is stored");

    let mut restored = Harness::with_notifications();
    restored.now = h.now;
    restored.apple = std::mem::replace(&mut h.apple, support::fake_apple::FakeApple::new());
    restored.add_account_mapping("a1", &token);
    restored.store = h.store.clone();
    restored.engine = vpp_license_engine::Engine::restore(restored.engine_config(), h.stored_records(), h.now).unwrap();
    restored.run_for(10 * MINUTE);
    assert_eq!(posts(&restored, "associateAssets"), 0, "the removed app is not licensed again");
    assert_eq!(restored.engine.explain("a1", &device_query(0)).unwrap().reason, "the user removed the app from the device");
    restored.input(Input::AppInstalled { serial_number: serial(0), adam_id: app(0) }).unwrap();
    restored.run_for(MINUTE);
    assert_eq!(posts(&restored, "associateAssets"), 1);
    assert!(!restored.store.keys().any(|k| k.starts_with("hold/")), "the lifted hold is deleted");
}

// ============================================================================ counts

#[test]
fn a_release_the_synced_counts_already_include_is_not_credited_again() {
    let mut h = Harness::new(); // no notifications: /status confirms, 30 s after each request
    synced(&mut h, org(1, 1, 0));
    let a = serial(0);
    enroll(&mut h, [a.clone(), serial(1), serial(2)]);
    h.input(policy("p1", &app(0), LicenseType::Device, [a.clone()])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 1, "the pool of one is used");
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![serial(1), serial(2)], remove: vec![a] }).unwrap();
    h.run_for(5 * SECOND); // the release is sent; Apple completes it; its confirmation is not polled yet
    h.apple.complete_due(h.now);
    h.input(Input::Refresh { account_id: "a1".into() }).unwrap(); // counts read after the release: 1 available
    h.run_for(10 * MINUTE);
    let associated: Vec<String> = h
        .requests()
        .iter()
        .filter(|(_, r)| r.purpose == "associateAssets")
        .flat_map(|(_, r)| serde_json::from_str::<serde_json::Value>(r.body.as_deref().unwrap()).unwrap()["serialNumbers"].as_array().unwrap().clone())
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(associated.len(), 2, "one license freed, one more association: {associated:?}");
    assert!(!h.events().iter().any(|e| matches!(e, Event::AssignmentFailed { error_number: Some(9709), .. })));
}

#[test]
fn a_full_refresh_while_an_operation_of_ours_is_at_apple_removes_nothing_it_did_not_see() {
    let mut h = Harness::new(); // no notifications: the release below stays at Apple until /status, 30 s on
    let token = synced(&mut h, org(1, 20, 0));
    enroll(&mut h, (0..6).map(serial));
    h.input(policy("p1", &app(0), LicenseType::Device, (0..6).map(serial))).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 6);
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![], remove: vec![serial(5)] }).unwrap();
    h.run_for(SECOND);
    // Apple pages by index: an event completing mid-traversal shifts the pages and one assignment is not listed.
    let hidden = {
        let assignments = &mut h.apple.org(&token).assignments;
        let index = assignments.iter().position(|(_, a)| a["serialNumber"] == json!(serial(0))).unwrap();
        assignments.remove(index)
    };
    h.input(Input::Refresh { account_id: "a1".into() }).unwrap();
    h.run_for(10 * SECOND);
    h.apple.org(&token).assignments.push(hidden);
    assert!(h.store.keys().any(|k| k.starts_with("prov/") && k.ends_with(&serial(0))), "still ours");
    let query = vpp_license_engine::AssignmentQuery { serial_number: Some(serial(0)), ..Default::default() };
    assert_eq!(h.engine.assignments("a1", &query).unwrap().total, 1, "still in the mirror");
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![], remove: vec![serial(0)] }).unwrap();
    h.run_for(MINUTE);
    assert!(released(&h).iter().any(|(_, s, _)| s.as_deref() == Some(serial(0).as_str())), "and reclaimable");
}

#[test]
fn a_release_sent_twice_after_a_lost_answer_does_not_take_away_the_license_given_again_meanwhile() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 10, 0));
    enroll(&mut h, [serial(0)]);
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 1);
    // The device leaves the scope: Apple makes the release but its answer is lost, so the engine sends it
    // again; Apple takes a minute over that second event.
    h.apple.faults.push_back(Fault::lost_answer().for_token(&token).on_path("/assets/disassociate"));
    h.apple.event_faults.push_back(EventFault::Slow(SECOND));
    h.apple.event_faults.push_back(EventFault::Slow(MINUTE));
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![], remove: vec![serial(0)] }).unwrap();
    h.run_for(15 * SECOND);
    assert_eq!(posts(&h, "disassociateAssets"), 2);
    assert_eq!(released(&h).len(), 1, "the first release landed");
    // Back in scope before the second release finishes: licensed again.
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![serial(0)], remove: vec![] }).unwrap();
    h.run_for(10 * MINUTE);
    assert_eq!(ready(&h).len(), 2);
    assert_eq!(released(&h).len(), 1, "the second release's late word is old news");
    assert_eq!(h.apple.org(&token).assignments.len(), 1);
    let query = ExplainQuery { adam_id: app(0), pricing_param: PricingParam::Stdq, serial_number: Some(serial(0)), client_user_id: None };
    assert_eq!(h.engine.explain("a1", &query).unwrap().reason, "licensed by this MDM");
}

#[test]
fn notifications_of_events_this_mdm_never_sent_are_applied_as_apples_facts_and_the_counts_read_again() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 10, 0));
    let auth = format!("Bearer {NOTIFICATION_TOKEN}");
    let management = |kind: &str, id: &str| {
        json!({"notificationId": id, "notificationType": "ASSET_MANAGEMENT", "uId": "1",
               "notification": {"eventId": format!("not-ours-{id}"), "result": "SUCCESS", "type": kind,
                                "assignments": [{"adamId": app(0), "pricingParam": "STDQ", "serialNumber": serial(7)}]}})
        .to_string()
    };
    let assigned = |h: &Harness| h.engine.app_counts("a1").unwrap()[0].assigned_count;
    let everything = vpp_license_engine::AssignmentQuery { adam_id: None, serial_number: None, client_user_id: None, offset: 0, limit: 100 };
    let held = |h: &mut Harness| h.engine.assignments("a1", &everything).unwrap().total;
    // Someone assigned a license in Apple Business Manager: Apple says so. The mirror shows it, counts follow.
    h.apple.org(&token).add_assignment(&app(0), &serial(7));
    h.apple.org(&token).recount();
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), &management("ASSOCIATE", "n1"), h.now), 200);
    assert_eq!((held(&mut h), assigned(&h)), (1, 1));
    // It is released again: the pair goes at once, and the counts are read again from Apple (a delta sync).
    h.apple.org(&token).assignments.clear();
    h.apple.org(&token).recount();
    h.take_trace();
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), &management("DISASSOCIATE", "n2"), h.now), 200);
    assert_eq!(held(&mut h), 0);
    h.run_for(10 * SECOND);
    assert!(posts(&h, "assetsPage") >= 1, "the counts were read again");
    assert_eq!(assigned(&h), 0, "counts consistent with Apple again");
    assert!(released(&h).iter().all(|(_, _, reason)| reason == "released outside this MDM"));
}
