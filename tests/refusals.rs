//! Apple's refusals reach the administrator: every per-target failure Apple reports (in `/status`,
//! in a notification, in the answer to the request) is an event in the same drain, `explain` says
//! it, and a pool refusal that contradicts the counts refreshes them and retries — once.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;
use support::fake_apple::{async_error_message, error, EventFault, Fault, ASYNC_ERRORS};
use support::scenario::*;
use support::{app, Harness, Trace};
use vpp_license_engine::{Event, ExplainQuery, Input, LicenseType, PricingParam};

const INSUFFICIENT: i64 = 9709;

fn failures(h: &Harness) -> Vec<(Option<String>, Option<String>, Option<i64>, String)> {
    h.events()
        .iter()
        .filter_map(|e| match e {
            Event::AssignmentFailed { serial_number, client_user_id, error_number, message, .. } => {
                Some((serial_number.clone(), client_user_id.clone(), *error_number, message.clone()))
            }
            _ => None,
        })
        .collect()
}

fn shortfalls(h: &Harness) -> Vec<usize> {
    h.events().iter().filter_map(|e| match e { Event::InsufficientLicenses { short_by, .. } => Some(*short_by), _ => None }).collect()
}

/// When the trace shows the answer (or notification) that carried Apple's refusal.
fn refused_at(h: &Harness) -> u64 {
    h.trace
        .iter()
        .find_map(|t| match t {
            Trace::Answered { at, body, .. } | Trace::Notified { at, body, .. } if body.contains("9709") => Some(*at),
            _ => None,
        })
        .expect("Apple refused")
}

fn emitted_at(h: &Harness, wanted: impl Fn(&Event) -> bool) -> Option<u64> {
    h.trace.iter().find_map(|t| match t {
        Trace::Emitted { at, event } if wanted(event) => Some(*at),
        _ => None,
    })
}

fn explain(h: &mut Harness, i: usize) -> String {
    let query = ExplainQuery { adam_id: app(0), pricing_param: PricingParam::Stdq, serial_number: Some(serial(i)), client_user_id: None };
    h.engine.explain("a1", &query).unwrap().reason
}

/// Five devices in scope of app 0 on a pool of 100; Apple refuses the association with 9709
/// (as right after a purchase or a transfer, while its counts still show 100 available).
fn refused_while_counts_show_licenses(notifications: bool) -> Harness {
    let mut h = if notifications { Harness::with_notifications() } else { Harness::new() };
    h.latency = 200; // the count refresh takes a moment: what the engine says meanwhile is checked
    synced(&mut h, org(1, 100, 0));
    enroll(&mut h, (0..5).map(serial));
    h.take_trace();
    h.apple.event_faults.push_back(EventFault::Failed(INSUFFICIENT));
    h.input(policy("p1", &app(0), LicenseType::Device, (0..5).map(serial))).unwrap();
    h.run_until_request_in_flight(h.now + 5 * SECOND); // the associate
    let mut at = h.now;
    while !h.trace.iter().any(|t| matches!(t, Trace::Answered { body, .. } | Trace::Notified { body, .. } if body.contains("9709"))) {
        at += 100;
        h.run_until(at);
    }
    h
}

fn assert_reported_refreshed_and_assigned(mut h: Harness) {
    let refused = refused_at(&h);
    // At once, in the same drain: each target's failure with Apple's number and message, and the pool's shortfall.
    let failed = failures(&h);
    assert_eq!(failed.len(), 5, "{failed:?}");
    for (i, (serial_number, _, number, message)) in failed.iter().enumerate() {
        assert_eq!((serial_number.as_deref(), *number, message.as_str()), (Some(serial(i).as_str()), Some(INSUFFICIENT), async_error_message(INSUFFICIENT)));
    }
    assert_eq!(shortfalls(&h), [5]);
    assert_eq!(emitted_at(&h, |e| matches!(e, Event::InsufficientLicenses { .. })), Some(refused));
    assert!(explain(&mut h, 0).contains("Apple refused the assignment for lack of licenses (9709"), "{}", explain(&mut h, 0));
    assert_eq!(h.engine.app_counts("a1").unwrap()[0].available_count, 100, "the counts Apple showed contradict the refusal");

    // A count refresh within a minute, then the association again, which Apple now accepts.
    h.run_for(5 * MINUTE);
    let refresh = h.requests().iter().find(|(at, r)| *at >= refused && r.purpose == "assetsPage").map(|(at, _)| *at);
    assert!(refresh.is_some_and(|at| at - refused <= MINUTE), "count refresh at {refresh:?}, refusal at {refused}");
    assert_eq!(posts(&h, "associateAssets"), 2);
    assert_eq!(ready(&h).len(), 5);
    assert_eq!(explain(&mut h, 0), "licensed by this MDM");
}

#[test]
fn a_9709_refusal_by_status_is_reported_at_once_refreshes_the_counts_and_assigns_once_apple_accepts() {
    assert_reported_refreshed_and_assigned(refused_while_counts_show_licenses(false));
}

#[test]
fn a_9709_refusal_by_notification_is_reported_at_once_refreshes_the_counts_and_assigns_once_apple_accepts() {
    let h = refused_while_counts_show_licenses(true);
    assert!(h.trace.iter().any(|t| matches!(t, Trace::Notified { body, .. } if body.contains("\"FAILURE\""))));
    assert!(!h.trace.iter().any(|t| matches!(t, Trace::Sent { request, .. } if request.purpose == "eventStatus")), "the notification, not a poll");
    assert_reported_refreshed_and_assigned(h);
}

#[test]
fn a_9709_answer_to_the_associate_request_itself_is_reported_and_retried_after_the_refresh() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 100, 0));
    enroll(&mut h, (0..3).map(serial));
    h.take_trace();
    let refusal = error(400, INSUFFICIENT, async_error_message(INSUFFICIENT));
    h.apple.faults.push_back(Fault::status(refusal.status).body(serde_json::from_str(&refusal.body).unwrap()).for_token(&token).on_path("/assets/associate"));
    h.input(policy("p1", &app(0), LicenseType::Device, (0..3).map(serial))).unwrap();
    h.run_for(5 * MINUTE);
    assert_eq!(failures(&h).iter().filter(|f| f.2 == Some(INSUFFICIENT)).count(), 3);
    assert_eq!(shortfalls(&h), [3, 0], "short by the three refused, then over once the retry is sent");
    assert_eq!(posts(&h, "associateAssets"), 2);
    assert_eq!(ready(&h).len(), 3);
}

#[test]
fn apple_refusing_again_at_the_same_counts_is_not_retried_in_a_loop_but_when_the_counts_change() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(1, 100, 0));
    enroll(&mut h, (0..4).map(serial));
    for _ in 0..10 {
        h.apple.event_faults.push_back(EventFault::Failed(INSUFFICIENT));
    }
    h.input(policy("p1", &app(0), LicenseType::Device, (0..4).map(serial))).unwrap();
    h.run_for(2 * 60 * MINUTE); // four delta syncs with unchanged counts
    assert_eq!(posts(&h, "associateAssets"), 2, "the first, and one retry after the count refresh");
    assert!(explain(&mut h, 0).contains("it is retried when the license counts change"), "{}", explain(&mut h, 0));
    assert!(ready(&h).is_empty());

    // Licenses are bought: Apple says so, and the next attempt gets them.
    h.apple.event_faults.clear();
    let count = json!({"notificationId": "count-1", "notificationType": "ASSET_COUNT", "uId": "1",
                       "notification": {"adamId": app(0), "countDelta": 10, "pricingParam": "STDQ"}});
    let auth = format!("Bearer {}", support::NOTIFICATION_TOKEN);
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), &count.to_string(), h.now), 200);
    h.run_for(MINUTE);
    assert_eq!(posts(&h, "associateAssets"), 3);
    assert_eq!(ready(&h).len(), 4);
}

#[test]
fn a_refusal_because_another_mdm_took_the_licenses_refreshes_the_counts_and_retries_nothing() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 3, 0));
    enroll(&mut h, (0..3).map(serial));
    h.take_trace();
    // Another MDM took the 3 licenses since our sync: the engine's counts still say 3.
    h.apple.org(&token).assets[0]["availableCount"] = json!(0);
    h.input(policy("p1", &app(0), LicenseType::Device, (0..3).map(serial))).unwrap();
    h.run_for(10 * MINUTE);
    assert!(!shortfalls(&h).is_empty() && shortfalls(&h).iter().all(|n| *n == 3), "{:?}", shortfalls(&h));
    assert_eq!(failures(&h).len(), 3);
    assert!(posts(&h, "assetsPage") > 0, "the counts were read again");
    assert_eq!(posts(&h, "associateAssets"), 1, "the refresh shows no license: nothing to retry");
    assert_eq!(h.engine.app_counts("a1").unwrap()[0].available_count, 0);
    assert_eq!(explain(&mut h, 0), "not enough licenses available");
}

#[test]
fn every_documented_per_target_error_is_reported_per_target_with_apples_message() {
    for (number, message) in ASYNC_ERRORS {
        for (by_notification, partly) in [(false, false), (false, true), (true, false), (true, true)] {
            let mut h = if by_notification { Harness::with_notifications() } else { Harness::new() };
            synced(&mut h, org(1, 100, 0));
            enroll(&mut h, (0..4).map(serial));
            h.take_trace();
            h.apple.event_faults.push_back(if partly { EventFault::Partial(number) } else { EventFault::Failed(number) });
            h.input(policy("p1", &app(0), LicenseType::Device, (0..4).map(serial))).unwrap();
            h.run_for(2 * MINUTE);
            let failed: Vec<_> = failures(&h).into_iter().filter(|f| f.2 == Some(number)).collect();
            let expected = if partly { 2 } else { 4 };
            assert_eq!(failed.len(), expected, "{number} (notification: {by_notification}, partly: {partly}): {failed:?}");
            assert!(failed.iter().all(|f| f.3 == message), "{number}: {failed:?}");
        }
    }
}

#[test]
fn a_target_apple_refuses_for_good_is_explained_and_assigned_again_when_it_reenters_scope() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(1, 100, 0));
    enroll(&mut h, [serial(0)]);
    h.apple.event_faults.push_back(EventFault::Failed(9641));
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(failures(&h).len(), 1);
    assert!(explain(&mut h, 0).contains(async_error_message(9641)), "{}", explain(&mut h, 0));
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![], remove: vec![serial(0)] }).unwrap();
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![serial(0)], remove: vec![] }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 1);
}
