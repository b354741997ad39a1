//! Backoff scenarios: Retry-After (seconds and HTTP-date), exponential backoff for rate
//! limiting, server and network errors, and error bodies whatever the HTTP status.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;
use support::fake_apple::{Fault, Org};
use support::{Harness, Trace};
use vpp_license_engine::{AccountStatus, Event, Input};

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60_000;

/// Two synced accounts; returns their tokens.
fn two_synced_accounts(h: &mut Harness) -> (String, String) {
    let t1 = h.org("ORG1", Org::generated("PS01", 2, 8, 2));
    let t2 = h.org("ORG2", Org::generated("PS02", 2, 8, 2));
    h.add_account("a1", &t1);
    h.add_account("a2", &t2);
    h.run_for(MINUTE);
    assert_eq!(h.status("a1"), AccountStatus::Active);
    assert_eq!(h.status("a2"), AccountStatus::Active);
    (t1, t2)
}

fn refresh(h: &mut Harness, id: &str) {
    h.input(Input::Refresh { account_id: id.into() }).unwrap();
}

fn times_for(h: &Harness, id: &str, from: u64) -> Vec<u64> {
    h.requests_for(id).iter().map(|(at, _)| *at).filter(|at| *at >= from).collect()
}

/// When the first answer with `status` to one of `id`'s requests arrived, and the send times
/// of `id`'s requests issued after the engine had it (earlier ones were already in flight).
fn sent_after_answer(h: &Harness, id: &str, status: u16) -> (u64, Vec<u64>) {
    let ids: std::collections::BTreeSet<u64> = h.requests_for(id).iter().map(|(_, r)| r.id).collect();
    let index = h
        .trace
        .iter()
        .position(|t| matches!(t, Trace::Answered { id: rid, status: s, .. } if ids.contains(rid) && *s == status))
        .expect("the answer was delivered");
    let Trace::Answered { at, .. } = h.trace[index] else { unreachable!() };
    let later = h.trace[index..]
        .iter()
        .filter_map(|t| match t {
            Trace::Sent { at, request } if request.account_id.as_deref() == Some(id) => Some(*at),
            _ => None,
        })
        .collect();
    (at, later)
}

/// Send times of `id`'s Test requests (`GET /client/config`) from `from` on.
fn tests_sent(h: &Harness, id: &str, from: u64) -> Vec<u64> {
    h.requests_for(id).iter().filter(|(at, r)| *at >= from && r.purpose == "testAccount").map(|(at, _)| *at).collect()
}

#[test]
fn retry_after_120_blocks_every_request_of_that_account_while_another_keeps_syncing() {
    let mut h = Harness::new();
    let (t1, _) = two_synced_accounts(&mut h);
    let t0 = h.now;
    h.apple.faults.push_back(Fault::status(503).for_token(&t1).header("Retry-After", "120"));
    refresh(&mut h, "a1");
    h.run_for(60 * SECOND);
    refresh(&mut h, "a2"); // the other account works normally inside a1's window
    h.run_for(119 * SECOND);

    let (answered_at, later) = sent_after_answer(&h, "a1", 503);
    assert_eq!(answered_at, t0);
    assert!(!later.is_empty(), "a1 resumed");
    assert!(later.iter().all(|&at| at >= t0 + 120 * SECOND), "nothing for a1 inside the window: {later:?}");
    let a2 = times_for(&h, "a2", t0);
    assert!(!a2.is_empty() && a2.iter().all(|&at| at < t0 + 120 * SECOND), "a2 synced inside a1's window: {a2:?}");
    assert_eq!(h.status("a1"), AccountStatus::Active, "resumed where it stopped and finished");
    assert!(h.events().iter().any(|e| matches!(e, Event::SyncCompleted { account_id, .. } if account_id == "a1")));
    assert!(h.events().iter().any(|e| matches!(e, Event::Backoff { account_id: Some(a), until, .. } if a == "a1" && *until == t0 + 120 * SECOND)));
}

#[test]
fn account_shows_backing_off_with_the_deadline_while_blocked() {
    let mut h = Harness::new();
    let (t1, _) = two_synced_accounts(&mut h);
    h.apple.faults.push_back(Fault::status(503).for_token(&t1).header("Retry-After", "120"));
    refresh(&mut h, "a1");
    h.run_for(SECOND);
    let view = h.account("a1");
    assert_eq!(view.status, AccountStatus::BackingOff);
    assert!(view.status_reason.contains("Apple asked to wait until"), "{}", view.status_reason);
    let wakeup = h.engine.next_wakeup();
    assert_eq!(wakeup.at, h.now - SECOND + 120 * SECOND);
    assert_eq!(wakeup.account_id.as_deref(), Some("a1"));
    assert_eq!(wakeup.reason, "backoff ends");
}

#[test]
fn http_date_retry_after_is_honoured() {
    let mut h = Harness::new();
    let (t1, _) = two_synced_accounts(&mut h);
    let t0 = h.now;
    let deadline = t0 + 300 * SECOND;
    let date = httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_millis(deadline));
    h.apple.faults.push_back(Fault::status(503).for_token(&t1).header("Retry-After", &date));
    refresh(&mut h, "a1");
    h.run_for(10 * MINUTE);
    let (answered_at, later) = sent_after_answer(&h, "a1", 503);
    assert_eq!(answered_at, t0);
    assert_eq!(later[0], deadline, "resumes exactly at the HTTP-date");
}

/// Seeded jitter makes the schedule reproducible: with seed 7, base 1 s and cap 300 s, eight
/// consecutive 9646 answers are retried after these delays (each within [ceiling/2, ceiling]).
const BACKOFF_SCHEDULE_9646: [(u32, u64, u64); 8] = [
    // (failure, delay ms, ceiling ms)
    (1, 887, 1_000),
    (2, 1_222, 2_000),
    (3, 3_437, 4_000),
    (4, 5_924, 8_000),
    (5, 8_931, 16_000),
    (6, 18_648, 32_000),
    (7, 57_332, 64_000),
    (8, 69_923, 128_000),
];

#[test]
fn rate_limited_9646_answers_back_off_on_the_literal_schedule_and_reset_on_success() {
    let mut h = Harness::new();
    let (t1, _) = two_synced_accounts(&mut h);
    for _ in BACKOFF_SCHEDULE_9646 {
        h.apple.faults.push_back(
            Fault::status(429).for_token(&t1).body(json!({"errorNumber": 9646, "errorMessage": "Too many requests"})),
        );
    }
    let t0 = h.now;
    h.input(Input::TestAccount { account_id: "a1".into() }).unwrap();
    h.run_for(10 * MINUTE);
    let a1 = tests_sent(&h, "a1", t0);
    assert_eq!(a1.len(), BACKOFF_SCHEDULE_9646.len() + 1, "eight rate-limited tries, then success");
    let delays: Vec<u64> = a1.windows(2).take(BACKOFF_SCHEDULE_9646.len()).map(|w| w[1] - w[0]).collect();
    let expected: Vec<u64> = BACKOFF_SCHEDULE_9646.iter().map(|(_, delay, _)| *delay).collect();
    assert_eq!(delays, expected);
    for (failure, delay, ceiling) in BACKOFF_SCHEDULE_9646 {
        assert!(delay >= ceiling / 2 && delay <= ceiling, "failure {failure}: {delay} outside [{}, {ceiling}]", ceiling / 2);
    }
    assert!(h.events().iter().any(|e| matches!(e, Event::TestResult { ok: true, .. })));

    // The success reset the counter: the next failure waits at most the base delay.
    h.apple.faults.push_back(Fault::status(500).for_token(&t1));
    let t1_start = h.now;
    h.input(Input::TestAccount { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    let again = tests_sent(&h, "a1", t1_start);
    assert!(again[1] - again[0] <= SECOND, "{again:?}");
}

#[test]
fn server_errors_without_retry_after_and_network_errors_back_off_exponentially() {
    let mut h = Harness::new();
    let (t1, _) = two_synced_accounts(&mut h);
    for _ in 0..3 {
        h.apple.faults.push_back(Fault::status(502).for_token(&t1));
    }
    let t0 = h.now;
    h.input(Input::TestAccount { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    let a1 = tests_sent(&h, "a1", t0);
    let delays: Vec<u64> = a1.windows(2).take(3).map(|w| w[1] - w[0]).collect();
    assert!(delays[0] >= 500 && delays[0] <= 1_000, "{delays:?}");
    assert!(delays[1] >= 1_000 && delays[1] <= 2_000, "{delays:?}");
    assert!(delays[2] >= 2_000 && delays[2] <= 4_000, "{delays:?}");
    assert!(h.events().iter().any(|e| matches!(e, Event::TestResult { ok: true, .. })));
}

#[test]
fn network_error_is_retried_after_backoff() {
    let mut h = Harness::new();
    two_synced_accounts(&mut h);
    refresh(&mut h, "a1");
    let request = loop {
        if let vpp_license_engine::Output::Request(r) = h.engine.poll_output(h.now) {
            break r;
        }
    };
    h.input(Input::NetworkError { id: request.id, message: "connection reset".into() }).unwrap();
    let mut backoff = None;
    loop {
        match h.engine.poll_output(h.now) {
            vpp_license_engine::Output::Event { event: Event::Backoff { until, reason, .. } } => backoff = Some((until, reason)),
            vpp_license_engine::Output::Timeout { .. } => break,
            _ => {}
        }
    }
    let (until, reason) = backoff.expect("a backoff event");
    assert!(until > h.now && until <= h.now + SECOND);
    assert!(reason.contains("network error: connection reset"), "{reason}");
}

#[test]
fn error_number_in_an_http_200_body_is_treated_as_that_error() {
    let mut h = Harness::new();
    let (t1, _) = two_synced_accounts(&mut h);
    h.apple.faults.push_back(Fault::status(200).for_token(&t1).body(json!({"errorNumber": 9646, "errorMessage": "Too many"})));
    let t0 = h.now;
    h.input(Input::TestAccount { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    let a1 = tests_sent(&h, "a1", t0);
    assert!(a1[1] - a1[0] >= 500, "the 200 + 9646 answer caused a backoff: {a1:?}");
    assert!(h.events().iter().any(|e| matches!(e, Event::Backoff { account_id: Some(a), .. } if a == "a1")));
}

#[test]
fn error_number_in_an_http_200_page_is_that_error_even_beside_records() {
    let mut h = Harness::new();
    let (t1, _) = two_synced_accounts(&mut h);
    let page = json!({"assignments": [], "currentPageIndex": 0, "totalPages": 1, "errorNumber": 9646, "errorMessage": "Too many"});
    h.apple.faults.push_back(Fault::status(200).for_token(&t1).on_path("/assignments").body(page));
    refresh(&mut h, "a1");
    h.run_for(MINUTE);
    assert!(h.events().iter().any(|e| matches!(e, Event::Backoff { account_id: Some(a), .. } if a == "a1")));
    assert_eq!(h.engine.assignments("a1", &Default::default()).unwrap().total, 8, "the synced data is kept");
}

#[test]
fn garbage_from_apple_is_a_retried_failure_that_keeps_the_synced_data() {
    let mut h = Harness::new();
    let (t1, _) = two_synced_accounts(&mut h);
    h.apple.faults.push_back(Fault::status(200).for_token(&t1).on_path("/assets").body(json!({"assets": "not a list"})));
    h.apple.faults.push_back(Fault { body: "<html>oops".into(), ..Fault::status(200).for_token(&t1) });
    refresh(&mut h, "a1");
    h.run_for(MINUTE);
    assert!(h.events().iter().any(|e| matches!(e, Event::RequestFailed { account_id: Some(a), .. } if a == "a1")));
    assert_eq!(h.status("a1"), AccountStatus::Active);
    let page = h.engine.assignments("a1", &Default::default()).unwrap();
    assert_eq!(page.total, 8);
}

#[test]
fn answers_to_unknown_request_ids_are_counted_and_dropped() {
    let mut h = Harness::new();
    two_synced_accounts(&mut h);
    let before = h.engine.accounts();
    h.input(Input::Response { id: 999_999, status: 200, headers: Default::default(), body: "{}".into() }).unwrap();
    h.input(Input::NetworkError { id: 999_998, message: "late".into() }).unwrap();
    assert_eq!(h.engine.stats().unknown_responses, 2);
    assert_eq!(h.engine.accounts(), before);
    assert!(matches!(h.engine.poll_output(h.now), vpp_license_engine::Output::Timeout { .. }));
}

#[test]
fn a_retry_after_that_arrives_after_the_account_stopped_still_holds_when_it_resumes() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 2, 4, 2));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    // The next refresh pages three endpoints at once: the first answer stops the account (invalid token),
    // the second carries Apple's Retry-After.
    h.apple.faults.push_back(Fault::status(401).on_path("assets").body(json!({"errorNumber": 9622, "errorMessage": "Invalid authentication token"})));
    h.apple.faults.push_back(Fault::status(503).on_path("assignments").header("Retry-After", "600"));
    refresh(&mut h, "a1");
    h.run_for(SECOND);
    assert_eq!(h.status("a1"), AccountStatus::TokenInvalid);
    let deadline = h.now + 600 * SECOND;

    let renewed = support::fake_apple::make_token("ORG1", "renewed-secret", support::START + 400 * support::DAY);
    let org = h.apple.orgs.get(&token).unwrap().clone();
    h.apple.orgs.insert(renewed.clone(), org);
    h.input(Input::EditAccount { account_id: "a1".into(), name: None, token: Some(renewed) }).unwrap();
    let from = h.now;
    h.run_for(20 * MINUTE);
    let times = times_for(&h, "a1", from);
    assert!(!times.is_empty() && times.iter().all(|t| *t >= deadline - SECOND), "sent at {times:?}, deadline {deadline}");
}
