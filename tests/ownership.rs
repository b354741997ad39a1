//! Ownership: only one MDM may manage a location.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;
use support::fake_apple::Org;
use support::{Harness, Trace};
use vpp_license_engine::{AccountStatus, EngineError, Event, Input, Method};

const MINUTE: u64 = 60_000;

fn other_mdm() -> serde_json::Value {
    json!({"id": "rival-id", "name": "Rival MDM", "metadata": "9.9"})
}

#[test]
fn location_owned_by_another_mdm_at_add_gets_no_mutation_and_no_further_requests() {
    let mut h = Harness::new();
    let mut org = Org::generated("PS01", 2, 8, 2);
    org.mdm_info = Some(other_mdm());
    let token = h.org("ORG1", org);
    h.add_account("a1", &token);
    h.run_for(24 * 60 * MINUTE);

    let requests = h.requests_for("a1");
    assert_eq!(requests.len(), 1, "only the client config read");
    assert_eq!(requests[0].1.method, Method::Get);
    assert_eq!(h.apple.org(&token).mdm_info, Some(other_mdm()), "the other MDM's claim is untouched");
    let view = h.account("a1");
    assert_eq!(view.status, AccountStatus::OwnedByOtherMdm);
    assert_eq!(view.other_mdm_name.as_deref(), Some("Rival MDM"));
    assert!(view.status_reason.contains("Owned by another MDM (Rival MDM)"), "{}", view.status_reason);
    assert!(h.events().iter().any(|e| matches!(e, Event::OwnershipLost { owner_name, .. } if owner_name == "Rival MDM")));
}

#[test]
fn another_mdm_taking_the_token_mid_sync_stops_every_request_until_reclaim_ownership() {
    let mut h = Harness::new();
    h.latency = 200;
    let token = h.org("ORG1", Org::generated("PS01", 3, 30, 6)); // 10 assignment pages
    h.apple.after_page = Some(Box::new(|_, path, page, org| {
        if path.ends_with("/assignments") && page == 2 {
            org.mdm_info = Some(other_mdm());
        }
    }));
    h.add_account("a1", &token);
    h.run_for(3 * 60 * MINUTE);

    // The first answer carrying the rival's mdmInfo, and every a1 request sent after the engine saw it.
    let first_foreign = h
        .trace
        .iter()
        .position(|t| matches!(t, Trace::Answered { body, .. } if body.contains("rival-id")))
        .expect("the takeover was seen");
    let sent_after: Vec<_> = h.trace[first_foreign..]
        .iter()
        .filter(|t| matches!(t, Trace::Sent { request, .. } if request.account_id.as_deref() == Some("a1")))
        .collect();
    assert!(sent_after.is_empty(), "requests after the takeover: {sent_after:?}");
    assert_eq!(h.status("a1"), AccountStatus::OwnedByOtherMdm);
    assert!(matches!(h.input(Input::Refresh { account_id: "a1".into() }), Err(EngineError::NotAllowed { .. })));

    // Reclaim Ownership: our mdmInfo is written back, then a full refresh runs.
    h.apple.after_page = None;
    h.input(Input::ReclaimOwnership { account_id: "a1".into() }).unwrap();
    let before = h.requests_for("a1").len();
    h.run_for(10 * MINUTE);
    let after: Vec<_> = h.requests_for("a1")[before..].iter().map(|(_, r)| (r.method, r.purpose)).collect();
    assert_eq!(after[0], (Method::Post, "claimOwnership"));
    assert_eq!(h.apple.org(&token).mdm_info.as_ref().unwrap()["id"], "our-mdm-id");
    assert_eq!(h.status("a1"), AccountStatus::Active);
    assert_eq!(h.engine.assignments("a1", &Default::default()).unwrap().total, 30);
}

#[test]
fn reclaim_ownership_is_refused_unless_another_mdm_holds_the_location() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 1, 1));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let err = h.input(Input::ReclaimOwnership { account_id: "a1".into() }).unwrap_err();
    assert_eq!(err.code(), "NOT_ALLOWED");
    assert!(err.to_string().contains("not owned by another MDM"), "{err}");
}

#[test]
fn cleared_mdm_info_is_noticed_and_the_location_claimed_again() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 2, 1));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    h.apple.org(&token).mdm_info = None;
    h.input(Input::Refresh { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(h.apple.org(&token).mdm_info.as_ref().unwrap()["id"], "our-mdm-id");
    assert_eq!(h.status("a1"), AccountStatus::Active);
    let claims = h.requests_for("a1").iter().filter(|(_, r)| r.purpose == "claimOwnership").count();
    assert_eq!(claims, 2);
}

#[test]
fn test_account_reports_the_location_and_who_manages_it() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 1, 1));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    h.input(Input::TestAccount { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    let result = h.events().into_iter().find_map(|e| match e {
        Event::TestResult { ok, message, location_name, .. } => Some((*ok, message.clone(), location_name.clone())),
        _ => None,
    });
    let (ok, message, location) = result.expect("a test result");
    assert!(ok);
    assert_eq!(location.as_deref(), Some("PS01"));
    assert!(message.contains("managed by this MDM"), "{message}");
}

/// Rival MDM holds the location; Reclaim Ownership is chosen and the engine crashes while the
/// claim is in flight (Apple got it, or not).
fn restart_while_claiming(claim_reached_apple: bool) {
    let mut h = Harness::new();
    let mut org = Org::generated("PS01", 1, 4, 2);
    org.mdm_info = Some(other_mdm());
    let token = h.org("ORG1", org);
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    assert_eq!(h.status("a1"), AccountStatus::OwnedByOtherMdm);

    h.latency = 5_000;
    h.input(Input::ReclaimOwnership { account_id: "a1".into() }).unwrap();
    assert!(h.run_until_request_in_flight(h.now + MINUTE));
    assert_eq!(h.requests_for("a1").last().unwrap().1.purpose, "claimOwnership");
    h.restart(|_| claim_reached_apple).unwrap();
    h.latency = 0;
    assert_eq!(h.status("a1"), AccountStatus::Checking, "the restored engine goes on claiming");
    h.input(Input::TestAccount { account_id: "a1".into() }).unwrap(); // sent, and answered, before the claim

    h.run_for(10 * MINUTE);
    let tested = h.events().into_iter().find_map(|e| match e {
        Event::TestResult { ok, message, .. } => Some((*ok, message.clone())),
        _ => None,
    });
    let (ok, message) = tested.expect("the test got its result");
    let expected = if claim_reached_apple { "is managed by this MDM" } else { "managed by another MDM (Rival MDM); claiming it for this MDM" };
    assert!(ok == claim_reached_apple && message.contains(expected), "{message}");
    assert_eq!(h.apple.org(&token).mdm_info.as_ref().unwrap()["id"], "our-mdm-id");
    assert_eq!(h.status("a1"), AccountStatus::Active);
    assert!(h.events().iter().any(|e| matches!(e, Event::OwnershipClaimed { .. })));
    assert_eq!(h.engine.assignments("a1", &Default::default()).unwrap().total, 4, "synced after the claim");
    let stored = &h.store["account/a1"];
    assert_eq!(stored["claimRequested"], false, "the finished claim is not made again at the next restart");
}

#[test]
fn a_restart_while_the_claim_is_in_flight_and_reached_apple_claims_again_and_manages_the_location() {
    restart_while_claiming(true);
}

#[test]
fn a_restart_while_the_claim_is_in_flight_and_was_lost_claims_again_and_manages_the_location() {
    restart_while_claiming(false);
}

#[test]
fn an_answer_from_before_reclaim_ownership_that_shows_the_rival_does_not_cancel_the_claim() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 4, 2));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    assert_eq!(h.status("a1"), AccountStatus::Active);

    // A refresh, then a connectivity test, are on their way when the rival takes the location:
    // the page shows it first, the test's answer arrives after the administrator's choice.
    h.latency = 1_000;
    h.input(Input::Refresh { account_id: "a1".into() }).unwrap();
    h.run_until(h.now + 1);
    h.apple.org(&token).mdm_info = Some(other_mdm());
    h.run_until(h.now + 500);
    h.input(Input::TestAccount { account_id: "a1".into() }).unwrap();
    h.run_until(h.now + 600);
    assert_eq!(h.status("a1"), AccountStatus::OwnedByOtherMdm);
    h.input(Input::ReclaimOwnership { account_id: "a1".into() }).unwrap();
    h.run_for(10 * MINUTE);

    assert_eq!(h.apple.org(&token).mdm_info.as_ref().unwrap()["id"], "our-mdm-id");
    assert_eq!(h.status("a1"), AccountStatus::Active, "the claim's answer was heard");
    let tests: Vec<_> = h.events().into_iter().filter(|e| matches!(e, Event::TestResult { ok: false, .. })).collect();
    assert_eq!(tests.len(), 1, "the test got one result, when the rival was first seen: {tests:?}");
}
