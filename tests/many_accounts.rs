//! Many accounts in one engine: an input visits only the accounts it concerns (the ones it touched,
//! whose deadline came, or that know the device or user of a fact), with the same result as a walk
//! over every account.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::json;
use support::fake_apple::{Fault, Org};
use support::{app, Harness};
use vpp_license_engine::{AccountStatus, AppPolicy, Event, Input, LicenseType, PricingParam};

const SECOND: u64 = 1_000;
const MINUTE: u64 = 60 * SECOND;

fn org() -> Org {
    let mut org = Org::generated("MA01", 2, 0, 0);
    for asset in &mut org.assets {
        asset["totalCount"] = json!(1_000);
        asset["availableCount"] = json!(1_000);
    }
    org
}

fn policy(id: &str, account_id: &str, targets: &[&str]) -> Input {
    Input::SetPolicy {
        policy: AppPolicy {
            policy_id: id.into(),
            name: format!("Policy {id}"),
            account_id: account_id.into(),
            adam_id: app(0),
            pricing_param: PricingParam::Stdq,
            license_type: LicenseType::Device,
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
        },
    }
}

fn enroll(serial: &str) -> Input {
    Input::DeviceEnrolled { serial_number: serial.into(), client_user_id: None, shared_ipad: false, enrollment_id: None, user_enrollment: false, platform: None }
}

/// `count` synced accounts `a00`, `a01`, …, each added `gap` after the previous one; their tokens.
fn accounts(h: &mut Harness, count: usize, gap: u64) -> Vec<String> {
    let tokens: Vec<String> = (0..count)
        .map(|i| {
            let token = h.org(&format!("ORG{i:02}"), org());
            h.add_account(&format!("a{i:02}"), &token);
            h.run_for(gap);
            token
        })
        .collect();
    h.run_for(MINUTE);
    tokens
}

fn license_requests(h: &Harness, account_id: &str) -> usize {
    h.requests_for(account_id).iter().filter(|(_, r)| r.purpose == "associateAssets" || r.purpose == "eventStatus").count()
}

#[test]
fn a_device_fact_only_one_account_targets_reaches_that_account_alone_and_assigns_as_before() {
    let mut h = Harness::new();
    let tokens = accounts(&mut h, 3, SECOND);
    h.input(policy("p1", "a01", &["S1"])).unwrap();
    h.run_for(MINUTE);
    h.take_trace();

    h.input(enroll("S1")).unwrap();
    h.input(enroll("UNKNOWN")).unwrap();
    h.run_for(MINUTE);

    assert_eq!(h.apple.org(&tokens[1]).assignments.len(), 1, "a01 assigns its target");
    let ready: Vec<&str> = h
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::LicenseReady { account_id, .. } => Some(account_id.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(ready, ["a01"]);
    for other in ["a00", "a02"] {
        assert_eq!(license_requests(&h, other), 0, "{other} knows neither device");
    }
}

#[test]
fn among_many_idle_accounts_the_next_wakeup_is_the_earliest_account_and_each_is_woken_at_its_own_time() {
    let mut h = Harness::new();
    accounts(&mut h, 30, 7 * SECOND);
    // Each account's next delta sync is due its own interval after its first sync: in the order they were added.
    let mut woken = Vec::new();
    while woken.len() < 5 {
        let wakeup = h.engine.next_wakeup();
        h.take_trace();
        let Some(account_id) = wakeup.account_id.clone().filter(|_| wakeup.reason.contains("sync")) else {
            h.run_until(wakeup.at); // the service config's refresh, a plan with nothing to do
            continue;
        };
        h.run_until(wakeup.at);
        let started: Vec<&str> = h
            .events()
            .iter()
            .filter_map(|e| match e {
                Event::SyncStarted { account_id, .. } => Some(account_id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(started, [account_id.as_str()], "woken at {} for {}", wakeup.at, wakeup.reason);
        woken.push(account_id);
        h.run_for(SECOND);
    }
    let mut in_order = woken.clone();
    in_order.sort();
    in_order.dedup();
    assert_eq!(woken, in_order, "accounts added in order come due in order, each once");
}

#[test]
fn an_account_whose_deadline_moves_later_or_earlier_is_woken_exactly_then() {
    let mut h = Harness::new();
    accounts(&mut h, 10, SECOND);
    // a04 is asked to wait: its deadline moves later (Retry-After), and its status comes back exactly then.
    h.apple.faults.push_back(Fault::status(503).header("Retry-After", "120"));
    h.input(Input::Refresh { account_id: "a04".into() }).unwrap();
    h.run_for(SECOND);
    assert_eq!(h.status("a04"), AccountStatus::BackingOff);
    let wakeup = h.engine.next_wakeup();
    assert_eq!((wakeup.account_id.as_deref(), wakeup.reason.as_str()), (Some("a04"), "backoff ends"));
    h.take_trace();
    h.run_until(wakeup.at);
    let first = h.requests_for("a04").first().map(|(at, _)| *at);
    assert_eq!(first, Some(wakeup.at), "the refresh starts when the wait ends");
    let back = h
        .events()
        .iter()
        .any(|e| matches!(e, Event::AccountStatusChanged { account_id, status: AccountStatus::Syncing, .. } if account_id == "a04"));
    assert!(back, "a04 left backingOff when the wait ended");

    // a07's deadline moves earlier (an administrator's Refresh): it syncs at once, the others stay idle.
    h.run_for(10 * MINUTE);
    h.take_trace();
    h.input(Input::Refresh { account_id: "a07".into() }).unwrap();
    h.run_for(SECOND);
    let senders: std::collections::BTreeSet<String> = h.requests().iter().filter_map(|(_, r)| r.account_id.clone()).collect();
    assert_eq!(senders.into_iter().collect::<Vec<_>>(), ["a07"]);
}

#[test]
fn adopting_an_account_keeps_the_facts_the_engine_has_and_sends_its_first_request_at_once() {
    let mut h = Harness::new();
    let tokens = accounts(&mut h, 2, SECOND);
    h.input(policy("p0", "a00", &["S1", "S2"])).unwrap();
    h.input(policy("p1", "a01", &["S3"])).unwrap();
    for serial in ["S1", "S2", "S3"] {
        h.input(enroll(serial)).unwrap();
    }
    h.run_for(MINUTE);
    assert_eq!(h.apple.org(&tokens[0]).assignments.len(), 2);
    // A store read before S2 retired, handed to an engine that has seen the retirement since.
    let records = h.stored_records();
    h.engine.release("a01", h.now).unwrap();
    h.input(Input::DeviceRetired { serial_number: "S2".into() }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(h.apple.org(&tokens[0]).assignments.len(), 1, "a00 released the retired device's license");

    h.take_trace();
    h.engine.adopt("a01", records, h.now).unwrap();
    let adopted_at = h.now;
    h.run_for(SECOND);
    let first = h.requests_for("a01").first().map(|(at, _)| *at);
    assert_eq!(first, Some(adopted_at), "the previous holder's requests are out of the rate window");

    // The adopted records' older facts about S2 did not replace the retirement: a Reconcile keeps it released.
    h.input(Input::Reconcile).unwrap();
    h.run_for(10 * MINUTE);
    assert_eq!(h.apple.org(&tokens[0]).assignments.len(), 1, "S2 stays retired");
    assert_eq!(h.engine.accounts().len(), 2);
}
