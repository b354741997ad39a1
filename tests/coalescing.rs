//! Coalescing: facts that arrive one input at a time, as MDM servers report them, cost the
//! requests the same changes would cost given at once — within `coalesceMs` of the first.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use support::fake_apple::Fault;
use support::scenario::*;
use support::{app, Harness, Trace};
use vpp_license_engine::{Engine, EngineConfig, Input, LicenseType};

const RELEASES: [&str; 2] = ["disassociateAssets", "revokeAssets"];

/// A synced account with `devices` enrolled devices and an (empty) device policy "p1" on app 0.
fn fleet(h: &mut Harness, devices: usize) -> String {
    let token = synced(h, org(1, 10_000, 0));
    enroll(h, (0..devices).map(serial));
    h.input(policy("p1", &app(0), LicenseType::Device, [])).unwrap();
    h.run_for(MINUTE);
    token
}

/// One `updatePolicyTargets` per device, `gap` ms apart, as a group fills up.
fn join_one_by_one(h: &mut Harness, devices: impl IntoIterator<Item = usize>, gap: u64) {
    for d in devices {
        h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![serial(d)], remove: vec![] }).unwrap();
        h.run_for(gap);
    }
}

fn sent_at(h: &Harness, purpose: &str) -> Vec<u64> {
    h.requests().iter().filter(|(_, r)| r.purpose == purpose).map(|(at, _)| *at).collect()
}

fn release_requests(h: &Harness) -> usize {
    RELEASES.iter().map(|p| posts(h, p)).sum()
}

fn with_coalescing(coalesce_ms: u64, quiet_ms: u64) -> Harness {
    let mut h = Harness::with_notifications();
    h.config = EngineConfig { coalesce_ms, coalesce_quiet_ms: quiet_ms, ..h.config };
    h.engine = Engine::new(h.config.clone(), h.now).unwrap();
    h
}

#[test]
fn four_hundred_devices_joining_a_scope_one_input_every_20_ms_take_at_most_2_associate_requests() {
    let mut h = Harness::with_notifications();
    let token = fleet(&mut h, 400);
    h.take_trace();
    join_one_by_one(&mut h, 0..400, 20);
    h.run_for(MINUTE);
    assert!(posts(&h, "associateAssets") <= 2, "{} associate requests", posts(&h, "associateAssets"));
    assert_eq!(ready(&h).len(), 400);
    assert_eq!(h.apple.org(&token).assignments.len(), 400);
}

#[test]
fn one_hundred_eighty_retirements_one_input_every_10_ms_take_at_most_2_release_requests() {
    let mut h = Harness::with_notifications();
    fleet(&mut h, 180);
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: (0..180).map(serial).collect(), remove: vec![] }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 180);
    h.take_trace();
    for d in 0..180 {
        h.input(Input::DeviceRetired { serial_number: serial(d) }).unwrap();
        h.run_for(10);
    }
    h.run_for(MINUTE);
    assert!(release_requests(&h) <= 2, "{} release requests", release_requests(&h));
    assert_eq!(released(&h).len(), 180);
}

#[test]
fn a_device_that_leaves_and_rejoins_scope_inside_the_window_costs_no_request() {
    let mut h = Harness::with_notifications();
    fleet(&mut h, 1);
    join_one_by_one(&mut h, [0], 0);
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 1);
    h.take_trace();
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![], remove: vec![serial(0)] }).unwrap();
    h.run_for(300);
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![serial(0)], remove: vec![] }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(release_requests(&h) + posts(&h, "associateAssets"), 0);
    assert!(released(&h).is_empty());

    // And the other way round: a device that joins and leaves before the window closes.
    enroll(&mut h, [serial(1)]);
    join_one_by_one(&mut h, [1], 200);
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![], remove: vec![serial(1)] }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(release_requests(&h) + posts(&h, "associateAssets"), 0);
}

#[test]
fn a_lone_change_leaves_after_the_quiet_time_well_within_coalesce_ms() {
    let mut h = Harness::with_notifications();
    fleet(&mut h, 1);
    h.take_trace();
    let changed_at = h.now;
    join_one_by_one(&mut h, [0], 0);
    let wakeup = h.engine.next_wakeup();
    assert_eq!((wakeup.reason.as_str(), wakeup.at), ("coalescing", changed_at + h.config.coalesce_quiet_ms));
    h.run_for(MINUTE);
    assert_eq!(sent_at(&h, "associateAssets"), [changed_at + h.config.coalesce_quiet_ms]);
    assert!(h.config.coalesce_quiet_ms < h.config.coalesce_ms);
}

#[test]
fn a_steady_trickle_waits_at_most_coalesce_ms_for_company() {
    let mut h = Harness::with_notifications();
    fleet(&mut h, 100);
    h.take_trace();
    let first = h.now;
    join_one_by_one(&mut h, 0..100, 100); // 10 s of facts, never quiet for 1 s
    h.run_for(MINUTE);
    let sent = sent_at(&h, "associateAssets");
    assert_eq!(sent[0], first + h.config.coalesce_ms, "the first window closes coalesceMs after it opened");
    assert!(sent.len() <= 3, "{sent:?}");
    assert_eq!(ready(&h).len(), 100);
}

#[test]
fn coalesce_ms_zero_sends_each_change_at_once() {
    let mut h = with_coalescing(0, 0);
    fleet(&mut h, 3);
    h.take_trace();
    let start = h.now;
    join_one_by_one(&mut h, 0..3, 100);
    h.run_for(MINUTE);
    assert_eq!(sent_at(&h, "associateAssets"), [start, start + 100, start + 200]);
}

#[test]
fn work_that_arrives_during_retry_after_collects_and_leaves_in_one_request_when_it_ends() {
    let mut h = Harness::with_notifications();
    let token = fleet(&mut h, 60);
    h.take_trace();
    // A delta sync runs into 503 + Retry-After: 120 s.
    h.apple.faults.push_back(Fault::status(503).for_token(&token).header("Retry-After", "120"));
    h.input(Input::Refresh { account_id: "a1".into() }).unwrap();
    h.run_for(SECOND);
    let blocked_until = h.now - SECOND + 120 * SECOND;
    join_one_by_one(&mut h, 0..60, 1_500); // 90 s, each alone longer than the quiet time
    h.run_for(2 * MINUTE);
    let sent = sent_at(&h, "associateAssets");
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(sent[0] >= blocked_until);
    assert_eq!(ready(&h).len(), 60);
}

#[test]
fn every_kind_of_license_work_trickled_in_costs_what_it_costs_at_once() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(2, 1_000, 0));
    enroll(&mut h, (0..50).map(serial));
    h.input(policy("p1", &app(0), LicenseType::Device, (0..50).map(serial))).unwrap();
    h.input(policy("p2", &app(1), LicenseType::User, [])).unwrap();
    h.run_for(MINUTE);
    h.take_trace();

    // Users added one at a time, and into the user policy one at a time: one createUsers, one association.
    for u in 0..40 {
        h.input(Input::UserAdded { client_user_id: user(u), email: None, managed_apple_id: Some(format!("{}@school.test", user(u))) }).unwrap();
        h.input(Input::UpdatePolicyTargets { policy_id: "p2".into(), add: vec![user(u)], remove: vec![] }).unwrap();
        h.run_for(30);
    }
    h.run_for(2 * MINUTE);
    assert_eq!(posts(&h, "createUsers"), 1);
    assert_eq!(posts(&h, "associateAssets"), 1);
    assert_eq!(ready(&h).iter().filter(|(_, _, user)| user.is_some()).count(), 40);
    h.take_trace();

    // Removed apps, failed installs and an administrator's reclaims, one input each: one disassociate.
    for d in 0..30 {
        let input = take_back((d % 3) as u32, serial(d), app(0));
        h.input(input).unwrap();
        h.run_for(25);
    }
    h.run_for(MINUTE);
    assert_eq!(release_requests(&h), 1);
    assert_eq!(released(&h).len(), 30);
    assert_eq!(h.apple.org(&token).assignments.len(), 20 + 40);
}

#[test]
fn status_polls_take_at_most_a_third_of_the_rate_while_license_work_waits() {
    let mut h = with_coalescing(5_000, 5_000);
    h.notifications = false; // confirmation by polling only
    synced(&mut h, org(60, 1_000, 0));
    h.apple.event_delay = 10 * MINUTE;
    enroll(&mut h, (0..120).map(serial));
    // 60 events at Apple: one app per device, so one request each.
    for d in 0..60 {
        h.input(policy(&format!("p{d}"), &app(d), LicenseType::Device, [serial(d)])).unwrap();
    }
    h.run_for(10 * SECOND);
    assert_eq!(posts(&h, "associateAssets"), 60);
    h.take_trace();
    // Their polls fall due while new work trickles into a window.
    h.run_for(25 * SECOND);
    let trickle_starts = h.now;
    for d in 60..120 {
        let input = Input::UpdatePolicyTargets { policy_id: format!("p{}", d - 60), add: vec![serial(d)], remove: vec![] };
        h.input(input).unwrap();
        h.run_for(80);
    }
    h.run_for(20 * SECOND);
    let mut window_open = true;
    let mut polls: Vec<u64> = Vec::new();
    for (at, request) in h.requests() {
        match request.purpose {
            "associateAssets" => window_open = false,
            "eventStatus" if window_open && at > trickle_starts => {
                polls.retain(|t| t + SECOND + h.config.rate_limit_margin_ms > at);
                polls.push(at);
                assert!(polls.len() <= 5, "{} polls within a second while sends waited: {polls:?}", polls.len());
            }
            _ => {}
        }
    }
    let first_send = sent_at(&h, "associateAssets")[0];
    let polls_before = h.requests().iter().filter(|(at, r)| r.purpose == "eventStatus" && *at < first_send).count();
    assert!(polls_before > 0, "polls went on while the window was open");
    let at_once = sent_at(&h, "associateAssets").iter().filter(|at| **at == first_send).count();
    assert!(at_once >= 10, "the polls left two thirds of the rate to the sends: {at_once} left at once");
    let polled = h.trace.iter().filter(|t| matches!(t, Trace::Sent { request, .. } if request.purpose == "eventStatus")).count();
    assert!(polled >= 60, "every event is polled in the end ({polled})");
}

#[test]
fn a_release_still_collecting_in_the_window_when_the_engine_crashes_is_made_after_the_restart() {
    let mut h = Harness::with_notifications();
    let token = fleet(&mut h, 3);
    join_one_by_one(&mut h, 0..3, 0);
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 3);
    // Device 0 leaves the scope; the engine crashes before the window closes (the input's records are stored).
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![], remove: vec![serial(0)] }).unwrap();
    h.run_for(100);
    assert_eq!(release_requests(&h), 0, "still collecting");
    h.restart(|_| false).unwrap();
    h.run_for(2 * MINUTE);
    assert_eq!(release_requests(&h), 1);
    assert_eq!(h.apple.org(&token).assignments.len(), 2);
}
