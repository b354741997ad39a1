//! Accounts: token decoding, expiry, invalid tokens, edits, deletion, secrets, restore.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::json;
use support::fake_apple::{make_token, Fault, Org, TokenState};
use support::{config, Harness, DAY, START};
use vpp_license_engine::token::{SToken, TokenError};
use vpp_license_engine::{
    AccountStatus, AppPolicy, Engine, EngineError, Event, Input, LicenseType, PricingParam, StoredRecord,
};

const MINUTE: u64 = 60_000;

fn encode(json: &str) -> String {
    STANDARD.encode(json)
}

#[test]
fn every_malformed_token_yields_its_own_error() {
    let valid_date = "2030-11-08T22:33:22+0000";
    let cases: Vec<(String, TokenError)> = vec![
        ("  \n ".into(), TokenError::Empty),
        ("not base64 !!".into(), TokenError::NotBase64),
        (STANDARD.encode([0xff, 0xfe, 0xfd]), TokenError::NotUtf8),
        (encode("{token: nope"), TokenError::NotJson),
        (encode("[1, 2]"), TokenError::NotAnObject),
        (encode(&json!({"expDate": valid_date, "orgName": "O"}).to_string()), TokenError::MissingField("token")),
        (encode(&json!({"token": "t", "expDate": valid_date}).to_string()), TokenError::MissingField("orgName")),
        (encode(&json!({"token": "t", "orgName": "O"}).to_string()), TokenError::MissingField("expDate")),
        (encode(&json!({"token": 5, "expDate": valid_date, "orgName": "O"}).to_string()), TokenError::NotAString("token")),
        (encode(&json!({"token": "t", "expDate": valid_date, "orgName": " "}).to_string()), TokenError::EmptyField("orgName")),
        (
            encode(&json!({"token": "t", "expDate": "next year", "orgName": "O"}).to_string()),
            TokenError::BadExpiryDate("next year".into()),
        ),
    ];
    let mut codes = std::collections::BTreeSet::new();
    for (text, expected) in cases {
        assert_eq!(SToken::decode(&text), Err(expected.clone()), "for {text:?}");
        codes.insert(expected.code());
    }

    let mut h = Harness::new();
    let expired = make_token("OLD", "s", START - DAY);
    let err = h.input(Input::AddAccount { account_id: "a1".into(), name: "A".into(), token: expired }).unwrap_err();
    assert_eq!(err.code(), "TOKEN_EXPIRED");
    assert!(h.engine.accounts().is_empty(), "a refused add changes nothing");
    codes.insert(err.code());
    assert_eq!(codes.len(), 10, "each kind of problem has its own code");
}

#[test]
fn whitespace_around_and_inside_the_token_file_is_ignored() {
    let token = make_token("ORG", "s", START + DAY);
    let wrapped = format!("\n  {}\r\n{}  \n", &token[..10], &token[10..]);
    let decoded = SToken::decode(&wrapped).unwrap();
    assert_eq!(decoded.org_name, "ORG");
    assert_eq!(decoded.bearer().expose(), token);
}

#[test]
fn expired_token_answer_stops_the_account_until_the_token_is_replaced() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 2, 1));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    h.apple.org(&token).token_state = TokenState::Expired;
    h.input(Input::Refresh { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    let view = h.account("a1");
    assert_eq!(view.status, AccountStatus::TokenInvalid);
    assert!(view.status_reason.contains("9621"), "{}", view.status_reason);
    let count = h.requests_for("a1").len();
    h.run_for(2 * DAY);
    assert_eq!(h.requests_for("a1").len(), count, "no requests with an invalid token");
    assert!(h.input(Input::Refresh { account_id: "a1".into() }).is_err());

    // A new token for the same location brings the account back.
    let renewed = make_token("ORG1", "renewed-secret", START + 400 * DAY);
    let org = h.apple.orgs.remove(&token).unwrap();
    h.apple.orgs.insert(renewed.clone(), Org { token_state: TokenState::Valid, ..org });
    h.input(Input::EditAccount { account_id: "a1".into(), name: None, token: Some(renewed) }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(h.status("a1"), AccountStatus::Active);
}

#[test]
fn revoked_and_rejected_tokens_stop_the_account() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 1, 1));
    h.apple.org(&token).token_state = TokenState::Revoked;
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    assert_eq!(h.status("a1"), AccountStatus::TokenInvalid);
    assert!(h.account("a1").status_reason.contains("revoked"));
    assert_eq!(h.requests_for("a1").len(), 1);

    // Apple answering HTTP 200 with 9622 (as seen in the field) is just as final.
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 1, 1));
    h.apple.faults.push_back(Fault::status(200).for_token(&token).body(json!({"errorNumber": 9622, "errorMessage": "Invalid authentication token"})));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    assert_eq!(h.status("a1"), AccountStatus::TokenInvalid);
    assert_eq!(h.requests_for("a1").len(), 1);
}

#[test]
fn token_expiry_warnings_come_once_at_30_15_7_and_1_days() {
    let mut h = Harness::new();
    let token = make_token("ORG1", "secret", START + 40 * DAY);
    h.apple.orgs.insert(token.clone(), Org::generated("PS01", 1, 1, 1));
    h.add_account("a1", &token);
    h.run_for(41 * DAY);
    let warnings: Vec<(u32, u64)> = h
        .trace
        .iter()
        .filter_map(|t| match t {
            support::Trace::Emitted { at, event: Event::TokenExpiring { threshold_days, .. } } => Some((*threshold_days, *at)),
            _ => None,
        })
        .collect();
    let expiry = START + 40 * DAY;
    assert_eq!(
        warnings,
        [(30, expiry - 30 * DAY), (15, expiry - 15 * DAY), (7, expiry - 7 * DAY), (1, expiry - DAY)]
    );
    assert_eq!(h.status("a1"), AccountStatus::TokenInvalid, "expired locally without asking Apple");
    assert!(h.account("a1").status_reason.contains("expired"));
}

#[test]
fn a_token_close_to_expiry_warns_at_once_for_the_threshold_it_is_in() {
    let mut h = Harness::new();
    let token = make_token("ORG1", "secret", START + 10 * DAY);
    h.apple.orgs.insert(token.clone(), Org::generated("PS01", 1, 1, 1));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let thresholds: Vec<u32> = h
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::TokenExpiring { threshold_days, .. } => Some(*threshold_days),
            _ => None,
        })
        .collect();
    assert_eq!(thresholds, [15]);
}

fn policy(id: &str, account: &str) -> AppPolicy {
    AppPolicy {
        policy_id: id.into(),
        name: format!("Policy {id}"),
        account_id: account.into(),
        adam_id: "400000000".into(),
        pricing_param: PricingParam::Stdq,
        license_type: LicenseType::Device,
        targets: Default::default(),
    }
}

#[test]
fn delete_is_refused_while_an_app_policy_uses_the_account_and_names_the_policies() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 1, 1));
    h.add_account("a1", &token);
    h.input(Input::SetPolicy { policy: policy("p1", "a1") }).unwrap();
    h.input(Input::SetPolicy { policy: policy("p2", "a1") }).unwrap();
    let err = h.input(Input::DeleteAccount { account_id: "a1".into() }).unwrap_err();
    assert_eq!(err.code(), "ACCOUNT_IN_USE");
    assert!(err.to_string().contains("Policy p1, Policy p2"), "{err}");
    assert_eq!(h.engine.accounts().len(), 1);
    assert_eq!(h.account("a1").policy_ids, ["p1", "p2"]);

    h.input(Input::RemovePolicy { policy_id: "p1".into() }).unwrap();
    h.input(Input::RemovePolicy { policy_id: "p2".into() }).unwrap();
    h.input(Input::DeleteAccount { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    assert!(h.engine.accounts().is_empty());
    assert!(h.store.is_empty(), "account and policies were deleted from the store: {:?}", h.store.keys());
}

#[test]
fn bad_commands_are_refused_with_typed_errors_and_change_nothing() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 1, 1));
    h.add_account("a1", &token);
    let before = h.engine.accounts();
    let cases: Vec<(Input, &str)> = vec![
        (Input::AddAccount { account_id: "a1".into(), name: "B".into(), token: token.clone() }, "ACCOUNT_EXISTS"),
        (Input::AddAccount { account_id: "a2".into(), name: "B".into(), token: token.clone() }, "DUPLICATE_TOKEN"),
        (Input::AddAccount { account_id: "".into(), name: "B".into(), token: token.clone() }, "INVALID_INPUT"),
        (Input::AddAccount { account_id: "a3".into(), name: "B".into(), token: "garbage".into() }, "TOKEN_NOT_BASE64"),
        (Input::EditAccount { account_id: "zz".into(), name: Some("n".into()), token: None }, "UNKNOWN_ACCOUNT"),
        (Input::EditAccount { account_id: "a1".into(), name: Some("n".into()), token: Some("x".into()) }, "TOKEN_NOT_BASE64"),
        (Input::DeleteAccount { account_id: "zz".into() }, "UNKNOWN_ACCOUNT"),
        (Input::SetPolicy { policy: policy("p1", "zz") }, "UNKNOWN_ACCOUNT"),
        (Input::RemovePolicy { policy_id: "zz".into() }, "UNKNOWN_POLICY"),
        (Input::TestAccount { account_id: "zz".into() }, "UNKNOWN_ACCOUNT"),
        // Ids become store keys: a NUL (PostgreSQL refuses it) or another control character is refused.
        (Input::AddAccount { account_id: "a\0b".into(), name: "B".into(), token: token.clone() }, "INVALID_INPUT"),
        (Input::SetPolicy { policy: AppPolicy { policy_id: "p\0".into(), ..policy("p1", "a1") } }, "INVALID_INPUT"),
        (Input::DeviceRetired { serial_number: "S\n1".into() }, "INVALID_INPUT"),
    ];
    for (input, code) in cases {
        let err = h.input(input.clone()).unwrap_err();
        assert_eq!(err.code(), code, "{input:?}: {err}");
    }
    assert_eq!(h.engine.accounts(), before, "the failed edit did not rename the account either");
}

#[test]
fn the_stoken_never_appears_in_events_errors_or_debug_output() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 2, 1));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    h.apple.org(&token).token_state = TokenState::Revoked;
    h.input(Input::TestAccount { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    let errors: Vec<EngineError> = vec![
        h.input(Input::AddAccount { account_id: "a2".into(), name: "x".into(), token: token.clone() }).unwrap_err(),
        h.input(Input::Refresh { account_id: "a1".into() }).unwrap_err(),
        EngineError::from(SToken::decode(&token[..token.len() - 3]).unwrap_err()),
    ];
    let inner_secret = "secret-of-ORG1";
    let mut shown = String::new();
    for event in h.events() {
        shown += &format!("{event:?}\n{}\n", serde_json::to_string(event).unwrap());
    }
    for error in &errors {
        shown += &format!("{error}\n{error:?}\n");
    }
    for (_, request) in h.requests() {
        shown += &format!("{request:?}\n");
    }
    shown += &format!("{:?}\n{:?}\n{:?}", h.engine, h.engine.accounts(), SToken::decode(&token).unwrap());
    assert!(!shown.contains(&token), "the sToken leaked");
    assert!(!shown.contains(inner_secret), "the token's inner credential leaked");
    assert!(shown.contains("Bearer ***"), "requests are shown with the header hidden");
    // The store must keep it (to restore the account), and requests must carry it.
    assert!(h.store["account/a1"]["token"] == json!(token));
}

#[test]
fn restore_from_the_store_resumes_without_reclaiming_and_honours_a_retry_after_deadline() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 2, 8, 2));
    h.add_account("a1", &token);
    h.input(Input::SetPolicy { policy: policy("p1", "a1") }).unwrap();
    h.run_for(MINUTE);
    h.apple.faults.push_back(Fault::status(503).for_token(&token).header("Retry-After", "3600"));
    h.input(Input::Refresh { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    let deadline = h.store["account/a1"]["retryAfterUntil"].as_u64().unwrap();
    assert!(deadline > h.now);

    // "Crash": a new engine from the stored records only.
    let mut restored = Harness::with_config(config());
    restored.now = h.now;
    restored.apple = std::mem::replace(&mut h.apple, support::fake_apple::FakeApple::new());
    restored.engine = Engine::restore(config(), h.stored_records(), h.now).unwrap();
    assert_eq!(restored.account("a1").policy_ids, ["p1"]);
    assert_eq!(restored.status("a1"), AccountStatus::BackingOff);
    restored.run_for(2 * 60 * MINUTE);
    let sent: Vec<_> = restored.requests_for("a1");
    assert!(sent.iter().all(|(at, _)| *at >= deadline), "nothing before the Retry-After deadline");
    assert!(sent.iter().all(|(_, r)| r.purpose != "claimOwnership"), "ownership is remembered");
    assert_eq!(restored.status("a1"), AccountStatus::Active);
    assert_eq!(restored.engine.assignments("a1", &Default::default()).unwrap().total, 8);
}

#[test]
fn restore_refuses_records_it_cannot_read() {
    let bad = |key: &str, value: serde_json::Value| {
        Engine::restore(config(), vec![StoredRecord { key: key.into(), value }], START).unwrap_err()
    };
    assert_eq!(bad("account/a1", json!({"accountId": "a1"})).code(), "RESTORE_FAILED");
    assert_eq!(bad("mystery/1", json!({})).code(), "RESTORE_FAILED");
    let policy_without_account = serde_json::to_value(policy("p1", "gone")).unwrap();
    let err = bad("policy/p1", policy_without_account);
    assert!(err.to_string().contains("not in the store"), "{err}");
}

#[test]
fn a_restored_engine_waits_a_full_rate_window_before_its_first_account_request() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 2, 1));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let mut restored = Harness::with_config(config());
    restored.now = h.now;
    restored.apple = std::mem::replace(&mut h.apple, support::fake_apple::FakeApple::new());
    restored.engine = Engine::restore(config(), h.stored_records(), h.now).unwrap();
    restored.run_for(MINUTE);
    let first = restored.requests_for("a1").first().map(|(at, _)| *at).expect("the account syncs again");
    assert!(first >= h.now + 1_000, "the previous instance's requests may still count at Apple");
}

#[test]
fn app_totals_sum_each_app_over_every_account_with_each_accounts_share() {
    let mut h = Harness::new();
    let first = h.org("ORG1", Org::generated("PS01", 2, 10, 0));
    let second = h.org("ORG2", Org::generated("PS02", 3, 3, 0));
    h.add_account("a1", &first);
    h.add_account("a2", &second);
    h.run_for(MINUTE);
    let totals = h.engine.app_totals();
    let summary: Vec<(String, i64, i64, i64, Vec<(String, i64, i64)>)> = totals
        .iter()
        .map(|t| {
            let shares = t.accounts.iter().map(|a| (a.account_id.clone(), a.total_count, a.assigned_count)).collect();
            (t.adam_id.clone(), t.total_count, t.assigned_count, t.available_count, shares)
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("400000000".to_owned(), 200, 6, 194, vec![("a1".to_owned(), 100, 5), ("a2".to_owned(), 100, 1)]),
            ("400000001".to_owned(), 200, 6, 194, vec![("a1".to_owned(), 100, 5), ("a2".to_owned(), 100, 1)]),
            ("400000002".to_owned(), 100, 1, 99, vec![("a2".to_owned(), 100, 1)]),
        ]
    );
    // Each account's share is what its own view says.
    for total in &totals {
        for share in &total.accounts {
            let own = h.engine.app_counts(&share.account_id).unwrap();
            let view = own.iter().find(|c| c.adam_id == total.adam_id && c.pricing_param == total.pricing_param).unwrap();
            assert_eq!((share.total_count, share.assigned_count, share.available_count), (view.total_count, view.assigned_count, view.available_count));
        }
    }
}

#[test]
fn app_totals_of_a_free_app_stay_unlimited_instead_of_adding_up() {
    let mut h = Harness::new();
    let free = |name: &str| {
        let mut org = Org::generated(name, 1, 1, 0);
        org.assets[0]["totalCount"] = json!(2_147_483_647);
        org.assets[0]["availableCount"] = json!(2_147_483_646);
        org
    };
    let first = h.org("ORG1", free("PS01"));
    let second = h.org("ORG2", free("PS02"));
    h.add_account("a1", &first);
    h.add_account("a2", &second);
    h.run_for(MINUTE);
    let [total] = h.engine.app_totals().try_into().unwrap();
    assert!(total.unlimited);
    assert_eq!((total.total_count, total.available_count, total.assigned_count), (2_147_483_647, 2_147_483_647, 2));
}
