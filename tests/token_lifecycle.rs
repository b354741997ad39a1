//! The token's life at Apple (issue 17, item 4): a token downloaded again for the same location
//! revokes the old one (9625), tokens expire (9621) or stop being accepted (9622), each with its
//! own reason; a replaced token shows its expiry at once and is warned of anew; the Test checks
//! the token with a location call, since `/service/config` answers any token.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use support::fake_apple::{make_token, Org, TokenState};
use support::{app, scenario, Harness, Trace, DAY, START};
use vpp_license_engine::{AccountStatus, Event, Input, LicenseType};

const MINUTE: u64 = 60_000;

fn edit_token(h: &mut Harness, token: &str) {
    h.input(Input::EditAccount { account_id: "a1".into(), name: None, token: Some(token.to_owned()) }).unwrap();
}

fn refresh(h: &mut Harness) {
    h.input(Input::Refresh { account_id: "a1".into() }).unwrap();
}

fn test_results(h: &Harness) -> Vec<(bool, String)> {
    h.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::TestResult { ok, message, .. } => Some((*ok, message.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_token_downloaded_again_revokes_the_old_one_and_the_reason_says_to_upload_the_newer_one() {
    let mut h = Harness::new();
    let old = h.org("ORG1", Org::generated("PS01", 1, 2, 1));
    h.add_account("a1", &old);
    h.run_for(MINUTE);
    assert_eq!(h.status("a1"), AccountStatus::Active);

    let new = make_token("ORG1", "downloaded-again", START + 300 * DAY);
    h.apple.download_new_token(&old, &new);
    refresh(&mut h);
    h.run_for(MINUTE);
    let view = h.account("a1");
    assert_eq!(view.status, AccountStatus::TokenInvalid);
    assert!(view.status_reason.contains("9625") && view.status_reason.contains("newer token"), "{}", view.status_reason);
    assert!(!view.status_reason.contains("downloaded-again"), "no secret in the reason");

    let before_edit = h.requests_for("a1").len();
    edit_token(&mut h, &new);
    assert_eq!(h.account("a1").token_expires_at, START + 300 * DAY, "the new expiry shows at once");
    h.run_for(MINUTE);
    assert_eq!(h.status("a1"), AccountStatus::Active);
    assert!(h.requests_for("a1").len() > before_edit, "the account works again with the new token");
}

#[test]
fn expired_revoked_and_invalidated_tokens_each_get_their_own_reason() {
    let mut reasons = Vec::new();
    for state in [TokenState::Expired, TokenState::Revoked, TokenState::Invalidated] {
        let mut h = Harness::new();
        let token = h.org("ORG1", Org::generated("PS01", 1, 1, 1));
        h.add_account("a1", &token);
        h.run_for(MINUTE);
        h.apple.org(&token).token_state = state;
        refresh(&mut h);
        h.run_for(MINUTE);
        let view = h.account("a1");
        assert_eq!(view.status, AccountStatus::TokenInvalid, "{state:?}");
        reasons.push(view.status_reason);
    }
    assert!(reasons[0].contains("9621") && reasons[0].contains("expired"), "{}", reasons[0]);
    assert!(reasons[1].contains("9625") && reasons[1].contains("newer token"), "{}", reasons[1]);
    assert!(reasons[2].contains("9622") && reasons[2].contains("no longer accepts"), "{}", reasons[2]);
    reasons.dedup();
    assert_eq!(reasons.len(), 3, "each reason is distinct");
}

#[test]
fn replacing_the_token_shows_its_expiry_at_once_and_restarts_the_expiry_warnings() {
    let mut h = Harness::new();
    let old = make_token("ORG1", "old", START + 10 * DAY);
    h.apple.orgs.insert(old.clone(), Org::generated("PS01", 1, 1, 1));
    h.add_account("a1", &old);
    h.run_for(MINUTE);
    let warnings = |h: &Harness| -> Vec<(u32, u64)> {
        h.events()
            .into_iter()
            .filter_map(|e| match e {
                Event::TokenExpiring { threshold_days, expires_at, .. } => Some((*threshold_days, *expires_at)),
                _ => None,
            })
            .collect()
    };
    assert_eq!(warnings(&h), [(15, START + 10 * DAY)], "the old token is inside the 15-day window");

    let new = make_token("ORG1", "new", START + 35 * DAY);
    h.apple.download_new_token(&old, &new);
    edit_token(&mut h, &new);
    assert_eq!(h.account("a1").token_expires_at, START + 35 * DAY, "the accounts view shows the new expiry at once");
    h.take_trace();
    h.run_for(6 * DAY);
    assert_eq!(warnings(&h), [(30, START + 35 * DAY)], "the 30-day warning comes again, for the new token");
    assert_eq!(h.status("a1"), AccountStatus::Active);
}

#[test]
fn the_test_checks_the_token_with_a_location_call_and_reports_a_revoked_token_once() {
    let mut h = Harness::new();
    let old = h.org("ORG1", Org::generated("PS01", 1, 1, 1));
    h.add_account("a1", &old);
    h.run_for(MINUTE);
    h.apple.download_new_token(&old, &make_token("ORG1", "newer", START + 300 * DAY));
    h.take_trace();

    h.input(Input::TestAccount { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    let sent: Vec<String> = h.requests_for("a1").into_iter().map(|(_, r)| Harness::endpoint(r)).collect();
    assert_eq!(sent, ["client/config"], "a location call: service config would answer a revoked token");
    let results = test_results(&h);
    assert_eq!(results.len(), 1, "one test result: {results:?}");
    assert!(!results[0].0 && results[0].1.contains("newer token"), "{results:?}");
    assert_eq!(h.status("a1"), AccountStatus::TokenInvalid);
    assert!(h.trace.iter().all(|t| !matches!(t, Trace::Emitted { event, .. } if format!("{event:?}").contains("secret-of"))));
}

#[test]
fn apple_refusing_a_request_sent_with_the_replaced_token_leaves_the_new_token_valid_and_sends_it_again() {
    let mut h = Harness::new();
    let old = h.org("ORG1", scenario::org(1, 10, 0));
    h.add_account("a1", &old);
    h.run_for(MINUTE);
    h.latency = 500;
    h.input(scenario::policy("p1", &app(0), LicenseType::Device, [scenario::serial(0)])).unwrap();
    assert!(h.run_until_request_in_flight(h.now + MINUTE), "a request of the old token is on its way");
    let in_flight = h.requests_for("a1").last().map(|(_, r)| r.purpose);
    assert_eq!(in_flight, Some("associateAssets"));
    let sent_before = h.requests_for("a1").len();

    // The administrator downloads a new token (which revokes the old one) and uploads it at once.
    let new = make_token("ORG1", "downloaded-again", START + 300 * DAY);
    h.apple.download_new_token(&old, &new);
    edit_token(&mut h, &new);
    h.run_for(MINUTE);
    assert!(h.requests_for("a1").len() > sent_before, "sent again, with the new token");
    let refused = h.take_trace().iter().any(|t| matches!(t, Trace::Answered { status: 401, .. }));
    assert!(refused, "Apple refused the request sent with the old token");
    assert_eq!(h.status("a1"), AccountStatus::Active, "{}", h.account("a1").status_reason);
    assert_eq!(h.apple.org(&new).assignments.len(), 1, "the association went through with the new token");
}
