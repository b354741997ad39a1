//! Durability: what the store keeps, restarts from it, and handing accounts between instances.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use support::fake_apple::{EventFault, FakeApple, Org};
use support::{app, Harness};
use vpp_license_engine::persist::keys::account_key_ranges;
use vpp_license_engine::{AppPolicy, Engine, Event, Input, LicenseType, Output, PersistOp, PricingParam, StoredRecord, StoredRecordJson};

const MINUTE: u64 = 60_000;

fn serial(i: usize) -> String {
    format!("DUR{i:05}")
}

/// An org with `apps` apps of 100 licenses each and `assigned` devices already holding app 0.
fn org(apps: usize, assigned: usize) -> Org {
    let mut org = Org::generated("DU01", apps, 0, 0);
    for asset in &mut org.assets {
        asset["totalCount"] = json!(100_000);
        asset["availableCount"] = json!(100_000);
    }
    for i in 0..assigned {
        org.assignments.push((1, json!({"adamId": app(0), "pricingParam": "STDQ", "serialNumber": format!("OTHER{i:06}")})));
    }
    org
}

fn policy(id: &str, account_id: &str, adam_id: String, targets: Vec<String>) -> Input {
    Input::SetPolicy {
        policy: AppPolicy {
            policy_id: id.into(),
            name: format!("Policy {id}"),
            account_id: account_id.into(),
            adam_id,
            pricing_param: PricingParam::Stdq,
            license_type: LicenseType::Device,
            targets: targets.into_iter().collect(),
        },
    }
}

fn enroll(h: &mut Harness, serials: &[String]) {
    for serial_number in serials {
        h.input(Input::DeviceEnrolled {
            serial_number: serial_number.clone(),
            client_user_id: None,
            shared_ipad: false,
            enrollment_id: None,
            user_enrollment: false,
            platform: None,
        })
        .unwrap();
    }
}

/// A new harness whose engine is restored from `h`'s store, facing the same Apple at the same time.
fn restarted(h: &mut Harness, engine: Engine) -> Harness {
    let mut next = Harness::with_config(h.engine_config());
    next.now = h.now;
    next.notifications = h.notifications;
    next.apple = std::mem::replace(&mut h.apple, FakeApple::new());
    next.store = h.store.clone();
    next.engine = engine;
    next
}

/// Two accounts (a1, a2: their tokens) and three devices enrolled: the devices' serial numbers.
fn two_accounts_and_three_devices(h: &mut Harness) -> (String, String, Vec<String>) {
    let t1 = h.org("ORG1", org(2, 0));
    let t2 = h.org("ORG2", org(2, 0));
    h.add_account("a1", &t1);
    h.add_account("a2", &t2);
    h.run_for(MINUTE);
    let devices: Vec<String> = (0..3).map(serial).collect();
    enroll(h, &devices);
    (t1, t2, devices)
}

#[test]
fn a_released_account_sends_nothing_more_and_an_adopting_engine_drives_it_from_the_store() {
    let mut h = Harness::new();
    let (_, t2, devices) = two_accounts_and_three_devices(&mut h);
    h.input(policy("p2", "a2", app(1), devices.clone())).unwrap();
    h.run_for(MINUTE);
    assert_eq!(h.apple.org(&t2).assignments.len(), 3);

    h.engine.release("a2", h.now).unwrap();
    assert!(h.engine.accounts().iter().all(|a| a.account_id != "a2"));
    let before = h.requests_for("a2").len();
    h.run_for(120 * MINUTE);
    assert_eq!(h.requests_for("a2").len(), before, "a released account must not be driven any more");
    assert!(h.requests_for("a1").len() > 2, "other accounts go on");
    assert!(h.store.contains_key("account/a2"), "release deletes nothing");

    // Another instance takes a2 over from the store: its policy and provenance come along, a1 stays out.
    let records = h.stored_records();
    let mut other = Engine::new(h.engine_config(), h.now).unwrap();
    other.adopt("a2", records.clone(), h.now).unwrap();
    assert_eq!(other.adopt("a2", records, h.now).unwrap_err().code(), "ACCOUNT_EXISTS");
    let views = other.accounts();
    assert_eq!(views.iter().map(|a| a.account_id.as_str()).collect::<Vec<_>>(), ["a2"]);
    assert_eq!(views[0].policy_ids, ["p2"]);
    let mut b = restarted(&mut h, other);
    b.add_account_mapping("a2", &t2);
    b.input(Input::UpdatePolicyTargets { policy_id: "p2".into(), add: vec![], remove: vec![devices[0].clone()] }).unwrap();
    b.run_for(10 * MINUTE);
    assert_eq!(b.apple.org(&t2).assignments.len(), 2, "the adopter releases what it knows this MDM assigned");
    assert!(b.requests().iter().all(|(_, r)| r.account_id.as_deref() != Some("a1")));
}

/// The records of `account_id` that `account_key_ranges(account_id, shared)` names (what a store's
/// `loadAccount(account_id, { shared })` returns).
fn in_key_ranges(records: &[vpp_license_engine::StoredRecord], account_id: &str, shared: bool) -> Vec<vpp_license_engine::StoredRecord> {
    let ranges = account_key_ranges(account_id, shared);
    records
        .iter()
        .filter(|r| {
            ranges.keys.contains(&r.key)
                || ranges.prefixes.iter().any(|p| r.key.starts_with(p.as_str()))
                || ranges.by_value.iter().any(|b| r.key.starts_with(b.prefix) && r.value[b.field].as_str() == Some(account_id))
        })
        .cloned()
        .collect()
}

#[test]
fn adopting_accounts_in_a_row_needs_the_records_of_no_account_with_the_first_only() {
    let mut h = Harness::new();
    let (t1, t2, devices) = two_accounts_and_three_devices(&mut h);
    h.input(Input::SetLicenseRemovalNotification { enabled: true }).unwrap();
    h.input(policy("p1", "a1", app(0), devices[..1].to_vec())).unwrap();
    h.input(policy("p2", "a2", app(1), devices.clone())).unwrap();
    h.run_for(MINUTE);
    assert_eq!(h.apple.org(&t2).assignments.len(), 3);

    // Another engine adopts a1 with the facts and the settings, then a2 from its own records alone.
    let records = h.stored_records();
    let own = in_key_ranges(&records, "a2", false);
    assert!(own.iter().all(|r| !r.key.starts_with("device/") && r.key != "settings") && own.iter().any(|r| r.key == "account/a2"));
    let mut other = Engine::new(h.engine_config(), h.now).unwrap();
    other.adopt("a1", in_key_ranges(&records, "a1", true), h.now).unwrap();
    other.adopt("a2", own, h.now).unwrap();
    let mut b = restarted(&mut h, other);
    b.add_account_mapping("a1", &t1);
    b.add_account_mapping("a2", &t2);
    b.run_for(10 * MINUTE);
    assert_eq!(b.apple.org(&t2).assignments.len(), 3, "a2's devices are known: nothing released");
    // The setting came with a1: a2's release tells the user.
    b.input(Input::DeviceRetired { serial_number: devices[2].clone() }).unwrap();
    b.run_for(MINUTE);
    assert_eq!(b.apple.org(&t2).assignments.len(), 2);
    assert_eq!(
        b.events().into_iter().filter(|e| matches!(e, Event::NotifyUser { .. })).count(),
        1,
        "the license removal notification is on"
    );
}

#[test]
fn adopting_an_account_the_records_do_not_hold_is_refused_and_changes_nothing() {
    let h = Harness::new();
    let mut engine = Engine::new(h.engine_config(), support::START).unwrap();
    let error = engine.adopt("nope", h.stored_records(), support::START).unwrap_err();
    assert_eq!(error.code(), "UNKNOWN_ACCOUNT");
    assert!(engine.accounts().is_empty());
    assert_eq!(engine.release("nope", support::START).unwrap_err().code(), "UNKNOWN_ACCOUNT");
}

fn sent_with_purpose<'a>(h: &'a Harness, purpose: &str) -> Vec<&'a vpp_license_engine::Request> {
    h.requests().into_iter().map(|(_, r)| r).filter(|r| r.purpose == purpose).collect()
}

fn licenses_ready(h: &Harness) -> usize {
    h.events().iter().filter(|e| matches!(e, vpp_license_engine::Event::LicenseReady { .. })).count()
}

/// Crashes right after an association left for Apple, before its answer; Apple got it or not,
/// and takes `event_takes` to complete it (else its usual few seconds).
fn crash_after_sending_an_association(apple_got_it: bool, event_takes: Option<u64>) -> (Harness, String) {
    let mut h = Harness::with_notifications();
    h.apple.event_faults.extend(event_takes.map(EventFault::Slow));
    let token = h.org("ORG1", org(1, 0));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let devices: Vec<String> = (0..3).map(serial).collect();
    enroll(&mut h, &devices);
    h.latency = 10_000;
    h.input(policy("p1", "a1", app(0), devices)).unwrap();
    h.run_for(1_000);
    let sent = sent_with_purpose(&h, "associateAssets");
    assert_eq!(sent.len(), 1, "the association is in flight");
    let op = h.store.keys().find(|k| k.starts_with("op/")).cloned().expect("the operation is stored");
    assert!(h.store[&op]["sentAt"].is_u64(), "its sending is stored before the request leaves");
    if apple_got_it {
        let request = sent[0].clone();
        h.apple.answer(&request, h.now);
    }
    let engine = Engine::restore(h.engine_config(), h.stored_records(), h.now).unwrap();
    let mut restarted = restarted(&mut h, engine);
    restarted.add_account_mapping("a1", &token);
    restarted.latency = 0;
    (restarted, token)
}

#[test]
fn an_association_apple_accepted_before_a_crash_is_confirmed_by_a_sync_and_never_sent_twice() {
    let (mut h, token) = crash_after_sending_an_association(true, None);
    let pending = h.engine.pending_operations("a1").unwrap();
    assert_eq!(pending.iter().map(|p| p.state).collect::<Vec<_>>(), ["unconfirmed"]);
    h.run_for(30 * MINUTE);
    assert!(sent_with_purpose(&h, "associateAssets").is_empty(), "nothing is associated twice");
    assert_eq!(h.apple.org(&token).assignments.len(), 3);
    assert_eq!(licenses_ready(&h), 3, "each license is reported ready once confirmed");
    assert_eq!(h.store.keys().filter(|k| k.starts_with("prov/")).count(), 3, "the pairs are ours");
    assert!(h.engine.pending_operations("a1").unwrap().is_empty());
}

#[test]
fn an_association_apple_never_received_before_a_crash_is_sent_once_after_the_confirming_sync() {
    let (mut h, token) = crash_after_sending_an_association(false, None);
    h.run_for(4 * MINUTE);
    assert!(sent_with_purpose(&h, "associateAssets").is_empty(), "not before the settle time");
    h.run_for(30 * MINUTE);
    assert_eq!(sent_with_purpose(&h, "associateAssets").len(), 1);
    assert_eq!(h.apple.org(&token).assignments.len(), 3);
    assert_eq!(licenses_ready(&h), 3);
    assert!(h.engine.pending_operations("a1").unwrap().is_empty());
}

#[test]
fn an_unanswered_association_apple_completes_after_it_was_settled_is_adopted_across_a_restart_and_released() {
    let (mut h, token) = crash_after_sending_an_association(true, Some(20 * MINUTE));
    // The devices leave the scope; the settling sync 10 min after sending sees none of the pairs.
    h.input(Input::RemovePolicy { policy_id: "p1".into() }).unwrap();
    h.run_for(12 * MINUTE);
    assert!(h.engine.pending_operations("a1").unwrap().is_empty(), "settled");
    assert_eq!(h.store.keys().filter(|k| k.starts_with("await/a1/")).count(), 3, "Apple may still make them: stored");
    let engine = Engine::restore(h.engine_config(), h.stored_records(), h.now).unwrap();
    let mut h = restarted(&mut h, engine);
    h.add_account_mapping("a1", &token);
    h.run_for(30 * MINUTE);
    let released = h.events().iter().filter(|e| matches!(e, vpp_license_engine::Event::LicenseReleased { .. })).count();
    assert_eq!(released, 3, "Apple completed the old event: the pairs are ours, and released");
    assert!(h.apple.org(&token).assignments.is_empty());
    assert!(!h.store.keys().any(|k| k.starts_with("await/") || k.starts_with("prov/")));
}

fn sync_kinds(h: &Harness) -> Vec<vpp_license_engine::SyncKind> {
    h.events()
        .iter()
        .filter_map(|e| match e {
            vpp_license_engine::Event::SyncStarted { kind, .. } => Some(*kind),
            _ => None,
        })
        .collect()
}

fn all_assignments(engine: &Engine) -> vpp_license_engine::AssignmentPage {
    let query = vpp_license_engine::AssignmentQuery { limit: 1_000, ..Default::default() };
    engine.assignments("a1", &query).unwrap()
}

#[test]
fn a_restart_rebuilds_the_mirror_from_the_store_and_catches_up_with_a_delta_sync() {
    let mut h = Harness::new();
    let mut apple_org = Org::generated("DU01", 3, 40, 12);
    for asset in &mut apple_org.assets {
        asset["totalCount"] = json!(100);
        asset["availableCount"] = json!(100);
    }
    let token = h.org("ORG1", apple_org);
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let devices: Vec<String> = (0..4).map(serial).collect();
    enroll(&mut h, &devices);
    h.input(policy("p1", "a1", app(1), devices)).unwrap();
    h.run_for(10 * MINUTE);
    assert_eq!(all_assignments(&h.engine).total, 44);

    let engine = Engine::restore(h.engine_config(), h.stored_records(), h.now).unwrap();
    let mut r = restarted(&mut h, engine);
    assert_eq!(r.engine.app_counts("a1").unwrap(), h.engine.app_counts("a1").unwrap());
    let sorted = |engine: &Engine| {
        let mut items = all_assignments(engine).items;
        items.sort_by(|a, b| (&a.adam_id, &a.serial_number).cmp(&(&b.adam_id, &b.serial_number)));
        items
    };
    assert_eq!(sorted(&r.engine), sorted(&h.engine));
    r.run_for(10 * MINUTE);
    assert_eq!(sync_kinds(&r), [vpp_license_engine::SyncKind::Delta], "no full refresh after a restart");
    assert_eq!(all_assignments(&r.engine).total, 44);
}

#[test]
fn a_store_read_as_json_text_restores_the_same_engine_as_its_parsed_records_and_broken_text_is_refused_by_key() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("DU01", 3, 40, 12));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let devices: Vec<String> = (0..6).map(serial).collect();
    enroll(&mut h, &devices);
    h.input(policy("p1", "a1", app(1), devices)).unwrap();
    h.run_for(10 * MINUTE);
    let as_text = |records: Vec<vpp_license_engine::StoredRecord>| -> Vec<StoredRecordJson> {
        records.into_iter().map(|r| StoredRecordJson { key: r.key, json: r.value.to_string() }).collect()
    };

    let mut parsed = Engine::restore(h.engine_config(), h.stored_records(), h.now).unwrap();
    let mut text = Engine::restore(h.engine_config(), as_text(h.stored_records()), h.now).unwrap();
    assert_eq!(text.app_counts("a1").unwrap(), parsed.app_counts("a1").unwrap());
    assert_eq!(all_assignments(&text), all_assignments(&parsed));
    assert_eq!(text.app_report(None).unwrap(), parsed.app_report(None).unwrap());
    assert_eq!(drained_writes(&mut text, h.now), drained_writes(&mut parsed, h.now));

    let mut adopter = Engine::new(h.engine_config(), h.now).unwrap();
    adopter.adopt("a1", as_text(h.stored_records()), h.now).unwrap();
    assert_eq!(all_assignments(&adopter), all_assignments(&parsed), "adopt reads JSON text too");

    let mut broken = as_text(h.stored_records());
    let asg = broken.iter_mut().find(|r| r.key.starts_with("asg/")).unwrap();
    asg.json.truncate(asg.json.len() / 2);
    let key = asg.key.clone();
    match Engine::restore(h.engine_config(), broken, h.now).map(|_| ()).unwrap_err() {
        vpp_license_engine::EngineError::Restore { key: refused, .. } => assert_eq!(refused, key),
        other => panic!("expected a restore error naming {key}, got {other:?}"),
    }
}

/// Bytes written for confirming one more device license, in an account holding `others` assignments.
fn bytes_for_one_assignment(others: usize) -> usize {
    let mut h = Harness::with_notifications();
    let token = h.org("ORG1", org(1, others));
    h.apple.page_size = 1_000;
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let device = vec![serial(0)];
    enroll(&mut h, &device);
    h.input(policy("p1", "a1", app(0), Vec::new())).unwrap();
    h.run_for(MINUTE);
    let before = h.persisted_bytes;
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: device, remove: Vec::new() }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(licenses_ready(&h), 1);
    h.persisted_bytes - before
}

#[test]
fn the_bytes_written_for_one_assignment_do_not_grow_with_the_account() {
    let small = bytes_for_one_assignment(10);
    let large = bytes_for_one_assignment(20_000);
    eprintln!("persisted bytes for one assignment change: {small} (10 assignments), {large} (20,000 assignments)");
    // Only the digits of the counts in the asset record differ.
    assert!(large <= small + 16, "{large} bytes at 20,000 assignments vs {small} at 10");
    assert!(small < 2_500, "{small} bytes");
}

#[test]
fn a_large_full_refresh_is_written_in_batches_and_a_crash_between_them_forces_a_full_refresh() {
    let mut h = Harness::new();
    let token = h.org("ORG1", org(2, 12_000));
    h.apple.page_size = 1_000;
    h.add_account("a1", &token);
    h.apple.page_size = 1_000;
    h.run_for(MINUTE);
    assert_eq!(h.store.keys().filter(|k| k.starts_with("asg/")).count(), 12_000);
    assert!(h.persist_outputs >= 3, "12,000 records need several outputs, got {}", h.persist_outputs);
    assert_eq!(h.store["account/a1"]["mirrorStored"], json!(true));

    // A store holding only part of a large write says so; restoring from it refreshes in full.
    let mut partial = h.stored_records();
    partial.retain(|r| !r.key.starts_with("asg/") || r.key.ends_with('0'));
    for record in partial.iter_mut().filter(|r| r.key == "account/a1") {
        record.value["mirrorStored"] = json!(false);
    }
    let engine = Engine::restore(h.engine_config(), partial, h.now).unwrap();
    let mut r = restarted(&mut h, engine);
    r.store.retain(|k, _| !k.starts_with("asg/") || k.ends_with('0'));
    r.run_for(MINUTE);
    assert_eq!(sync_kinds(&r), [vpp_license_engine::SyncKind::Full]);
    assert_eq!(r.store.keys().filter(|k| k.starts_with("asg/")).count(), 12_000, "the refresh writes what was missing");
    assert_eq!(r.store["account/a1"]["mirrorStored"], json!(true));
}

/// A user-license policy of app 0 in account a1 wanting the user u1.
fn user_policy_for_u1() -> Input {
    Input::SetPolicy {
        policy: AppPolicy {
            policy_id: "pu".into(),
            name: "Users".into(),
            account_id: "a1".into(),
            adam_id: app(0),
            pricing_param: PricingParam::Stdq,
            license_type: LicenseType::User,
            targets: ["u1".to_owned()].into_iter().collect(),
        },
    }
}

#[test]
fn a_user_apple_refused_to_register_stays_held_across_a_restart_until_the_mdm_adds_it_again() {
    let mut h = Harness::with_notifications();
    let token = h.org("ORG1", org(1, 0));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    h.input(Input::UserAdded { client_user_id: "u1".into(), email: Some("not-an-email".into()), managed_apple_id: None }).unwrap();
    h.apple.faults.push_back(
        support::fake_apple::Fault::status(400)
            .on_path("users/create")
            .body(json!({"errorNumber": 9717, "errorMessage": "Invalid email address"})),
    );
    h.input(user_policy_for_u1()).unwrap();
    h.run_for(MINUTE);
    assert_eq!(sent_with_purpose(&h, "createUsers").len(), 1);
    assert!(h.store.contains_key("userhold/a1/u1"));

    let engine = Engine::restore(h.engine_config(), h.stored_records(), h.now).unwrap();
    let mut r = restarted(&mut h, engine);
    r.add_account_mapping("a1", &token);
    r.run_for(40 * MINUTE);
    assert!(sent_with_purpose(&r, "createUsers").is_empty(), "the refusal is remembered");

    r.input(Input::UserAdded { client_user_id: "u1".into(), email: Some("u1@school.test".into()), managed_apple_id: None }).unwrap();
    r.run_for(MINUTE);
    assert_eq!(sent_with_purpose(&r, "createUsers").len(), 1, "added again: registered again");
    assert!(!r.store.contains_key("userhold/a1/u1"));
    assert_eq!(licenses_ready(&r), 1);
}

#[test]
fn a_failed_user_registration_reported_by_notification_holds_the_user_without_trapping() {
    let mut h = Harness::with_notifications();
    h.notifications = false; // this test delivers Apple's notification itself
    let token = h.org("ORG1", org(1, 0));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    h.input(Input::UserAdded { client_user_id: "u1".into(), email: Some("u1@school.test".into()), managed_apple_id: None }).unwrap();
    h.input(user_policy_for_u1()).unwrap();
    h.run_for(5_000);
    let event_id = h.engine.pending_operations("a1").unwrap()[0].event_id.clone().expect("accepted");
    let body = json!({"notificationId": "um-1", "notificationType": "USER_MANAGEMENT", "uId": "1",
                      "notification": {"eventId": event_id, "result": "FAILURE", "type": "CREATE",
                                       "users": [{"clientUserId": "u1"}],
                                       "error": {"errorNumber": 9717, "errorMessage": "Invalid email address"}}});
    let auth = format!("Bearer {}", support::NOTIFICATION_TOKEN);
    assert_eq!(h.engine.handle_notification("a1", Some(&auth), &body.to_string(), h.now), 200);
    h.run_for(MINUTE);
    assert!(h.engine.pending_operations("a1").unwrap().is_empty());
    assert!(h.store.contains_key("userhold/a1/u1"));
    let explained = h.engine.explain(
        "a1",
        &vpp_license_engine::ExplainQuery {
            adam_id: app(0),
            pricing_param: PricingParam::Stdq,
            serial_number: None,
            client_user_id: Some("u1".into()),
        },
    );
    assert!(explained.unwrap().reason.contains("Apple refused to create the user"));
}

/// The records a change of `h` writes (`true`) or deletes (`false`), by key.
fn store_changes(h: &mut Harness, change: impl FnOnce(&mut Harness)) -> Vec<(String, bool)> {
    h.trace_store = true;
    h.take_trace();
    change(h);
    h.run_for(1);
    h.take_trace()
        .into_iter()
        .filter_map(|t| match t {
            support::Trace::Stored { key, put, .. } if key.starts_with("policy/") || key.starts_with("targets/") => Some((key, put)),
            _ => None,
        })
        .collect()
}

/// Every target the `targets/` records among `records` hold, sorted (a target held twice is there twice).
fn stored_scope(records: &[vpp_license_engine::StoredRecord]) -> Vec<String> {
    let mut scope: Vec<String> = records
        .iter()
        .filter(|r| r.key.starts_with("targets/"))
        .flat_map(|r| r.value["targets"].as_array().unwrap().iter().map(|t| t.as_str().unwrap().to_owned()))
        .collect();
    scope.sort();
    scope
}

#[test]
fn a_one_target_scope_change_writes_only_the_record_holding_that_target_whatever_the_policy_size() {
    let mut h = Harness::new();
    let token = h.org("ORG1", org(1, 0));
    h.add_account("a1", &token);
    let targets: Vec<String> = (0..4_000).map(serial).collect();
    let written = store_changes(&mut h, |h| h.input(policy("p1", "a1", app(0), targets.clone())).unwrap());
    assert_eq!(h.store["policy/p1"]["scopeRecords"], 32, "4,000 targets: at most 128 a record on average");
    assert_eq!(written.len(), 33, "the policy record and its 32 scope records");
    let added = store_changes(&mut h, |h| {
        h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec!["NEW 1".into()], remove: vec![serial(7)] }).unwrap()
    });
    assert!((1..=2).contains(&added.len()) && added.iter().all(|(key, put)| key.starts_with("targets/a1/p1/") && *put), "{added:?}");
    let mut expected: Vec<String> = targets.iter().filter(|t| **t != serial(7)).cloned().chain(["NEW 1".to_owned()]).collect();
    expected.sort();
    assert_eq!(stored_scope(&h.stored_records()), expected);
    // setPolicy with the whole list writes the records of what changed, and the policy record (its name may have changed).
    let mut next = targets.clone();
    next[0] = "NEW 2".into();
    let set = store_changes(&mut h, |h| h.input(policy("p1", "a1", app(0), next.clone())).unwrap());
    assert!((2..=4).contains(&set.len()) && set.contains(&("policy/p1".to_owned(), true)), "{set:?}");
    next.sort();
    assert_eq!(stored_scope(&h.stored_records()), next);
    let removed = store_changes(&mut h, |h| h.input(Input::RemovePolicy { policy_id: "p1".into() }).unwrap());
    assert_eq!(removed.len(), 33);
    assert!(removed.iter().all(|(_, put)| !put));
    assert!(h.store.keys().all(|k| !k.starts_with("targets/") && !k.starts_with("policy/")));
}

#[test]
fn a_scope_that_grows_or_shrinks_past_its_records_is_written_again_in_more_or_fewer() {
    let mut h = Harness::new();
    let token = h.org("ORG1", org(1, 0));
    h.add_account("a1", &token);
    h.input(policy("p1", "a1", app(0), (0..100).map(serial).collect())).unwrap();
    h.run_for(1);
    assert_eq!(h.stored_records().iter().filter(|r| r.key.starts_with("targets/")).count(), 1);
    let add: Vec<String> = (100..300).map(serial).collect();
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add, remove: Vec::new() }).unwrap();
    h.run_for(1);
    assert_eq!(h.store["policy/p1"]["scopeRecords"], 4, "300 targets: more than 2 × 128");
    assert_eq!(stored_scope(&h.stored_records()), (0..300).map(serial).collect::<Vec<_>>());
    let remove: Vec<String> = (20..300).map(serial).collect();
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: Vec::new(), remove }).unwrap();
    h.run_for(1);
    assert_eq!(h.store["policy/p1"]["scopeRecords"], 1);
    assert_eq!(h.stored_records().iter().filter(|r| r.key.starts_with("targets/")).count(), 1, "the other three records are deleted");
    assert_eq!(stored_scope(&h.stored_records()), (0..20).map(serial).collect::<Vec<_>>());
}

#[test]
fn policies_come_back_with_their_scope_after_a_restart_and_scopes_stored_by_earlier_engines_are_moved_to_scope_records() {
    let mut h = Harness::new();
    let token = h.org("ORG1", org(1, 0));
    h.add_account("a1", &token);
    let targets: Vec<String> = (0..5).map(serial).collect();
    h.input(policy("p1", "a1", app(0), targets.clone())).unwrap();
    h.input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: vec![serial(9)], remove: vec![serial(0)] }).unwrap();
    h.run_for(MINUTE);
    let expected: Vec<String> = [1, 2, 3, 4, 9].into_iter().map(serial).collect();
    assert_eq!(stored_scope(&h.stored_records()), expected);

    // The policy as earlier engines stored it: targets inline, or one `scope/` record per target.
    let mut current = h.stored_records();
    current.retain(|r| !r.key.starts_with("targets/"));
    let header = current.iter_mut().find(|r| r.key == "policy/p1").unwrap();
    header.value.as_object_mut().unwrap().remove("scopeRecords");
    let mut inline = current.clone();
    inline.iter_mut().find(|r| r.key == "policy/p1").unwrap().value["targets"] = json!(expected);
    let mut per_target = current;
    per_target.extend(expected.iter().map(|t| vpp_license_engine::StoredRecord {
        key: format!("scope/a1/p1/{t}"),
        value: json!({"accountId": "a1", "policyId": "p1", "target": t}),
    }));
    for (records, earlier) in [(h.stored_records(), false), (inline, true), (per_target, true)] {
        let mut store: std::collections::BTreeMap<String, serde_json::Value> =
            records.iter().map(|r| (r.key.clone(), r.value.clone())).collect();
        let mut engine = Engine::restore(h.engine_config(), records, h.now).unwrap();
        let mut written = Vec::new();
        loop {
            match engine.poll_output(h.now) {
                vpp_license_engine::Output::Persist { ops } => {
                    for op in ops {
                        match op {
                            vpp_license_engine::PersistOp::Put { key, value } => {
                                written.push(key.clone());
                                store.insert(key, serde_json::to_value(value).unwrap());
                            }
                            vpp_license_engine::PersistOp::Delete { key } => {
                                written.push(key.clone());
                                store.remove(&key);
                            }
                        }
                    }
                }
                vpp_license_engine::Output::Timeout { .. } => break,
                _ => {}
            }
        }
        if earlier {
            assert_eq!(store["policy/p1"]["scopeRecords"], 1, "the policy record is written again");
            assert!(store["policy/p1"].get("targets").is_none(), "without its targets");
            assert!(store.keys().all(|k| !k.starts_with("scope/")), "the per-target records are deleted");
        } else {
            assert!(written.iter().all(|k| !k.starts_with("policy/") && !k.starts_with("targets/")), "nothing to move: {written:?}");
        }
        let records: Vec<_> = store.into_iter().map(|(key, value)| vpp_license_engine::StoredRecord { key, value }).collect();
        assert_eq!(stored_scope(&records), expected);
        // The restored engine knows the scope: dropping a target writes its record without it.
        engine
            .handle_input(Input::UpdatePolicyTargets { policy_id: "p1".into(), add: Vec::new(), remove: vec![serial(9)] }, h.now)
            .unwrap();
        let ops = loop {
            match engine.poll_output(h.now) {
                vpp_license_engine::Output::Persist { ops } => break ops,
                vpp_license_engine::Output::Timeout { .. } => break Vec::new(),
                _ => {}
            }
        };
        let rewritten = ops.iter().find_map(|op| match op {
            vpp_license_engine::PersistOp::Put { key, value } if key == "targets/a1/p1/0" => Some(serde_json::to_value(value).unwrap()),
            _ => None,
        });
        assert_eq!(rewritten.expect("the record is written again")["targets"], json!(&expected[..4]));
    }
}

/// What `engine` writes (`Some`) and deletes (`None`) until it waits, by key.
fn drained_writes(engine: &mut Engine, now: u64) -> BTreeMap<String, Option<serde_json::Value>> {
    let mut writes = BTreeMap::new();
    loop {
        match engine.poll_output(now) {
            Output::Persist { ops } => {
                for op in ops {
                    match op {
                        PersistOp::Put { key, value } => writes.insert(key, Some(serde_json::to_value(value).unwrap())),
                        PersistOp::Delete { key } => writes.insert(key, None),
                    };
                }
            }
            Output::Timeout { .. } => return writes,
            _ => {}
        }
    }
}

#[test]
fn per_pair_provenance_records_of_an_earlier_engine_are_written_again_per_device_or_user_by_restore_and_adopt() {
    let mut h = Harness::new();
    let token = h.org("ORG1", org(2, 0));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let devices: Vec<String> = (0..3).map(serial).collect();
    enroll(&mut h, &devices);
    h.input(policy("p1", "a1", app(0), devices.clone())).unwrap();
    h.input(policy("p2", "a1", app(1), devices[..2].to_vec())).unwrap();
    h.run_for(MINUTE);
    let provenance = |records: &[StoredRecord]| -> BTreeMap<String, serde_json::Value> {
        records.iter().filter(|r| r.key.starts_with("prov/")).map(|r| (r.key.clone(), r.value.clone())).collect()
    };
    let current = provenance(&h.stored_records());
    let device_record = |i: usize, adam_ids: Vec<String>| {
        (
            format!("prov/a1/d/{}", serial(i)),
            json!({"accountId": "a1", "serialNumber": serial(i), "clientUserId": null, "adamIds": adam_ids}),
        )
    };
    let expected: BTreeMap<String, serde_json::Value> =
        [device_record(0, vec![app(0), app(1)]), device_record(1, vec![app(0), app(1)]), device_record(2, vec![app(0)])].into();
    assert_eq!(current, expected, "one record per device, naming the apps this instance assigned it");

    // The same provenance as an earlier engine stored it, one record per pair, and a user's PLUS pair.
    let mut legacy: Vec<StoredRecord> = h.stored_records().into_iter().filter(|r| !r.key.starts_with("prov/")).collect();
    let mut legacy_keys = BTreeSet::new();
    for value in current.values() {
        let serial_number = value["serialNumber"].as_str().unwrap();
        for adam_id in value["adamIds"].as_array().unwrap() {
            let key = format!("prov/a1/{}/STDQ/d/{serial_number}", adam_id.as_str().unwrap());
            let value = json!({"accountId": "a1", "adamId": adam_id, "pricingParam": "STDQ", "serialNumber": serial_number});
            legacy_keys.insert(key.clone());
            legacy.push(StoredRecord { key, value });
        }
    }
    let user_pair = format!("prov/a1/{}/PLUS/u/user+1%2F2", app(0));
    legacy.push(StoredRecord {
        key: user_pair.clone(),
        value: json!({"accountId": "a1", "adamId": app(0), "pricingParam": "PLUS", "clientUserId": "user 1/2"}),
    });
    legacy_keys.insert(user_pair);
    let mut migrated_provenance: BTreeMap<String, Option<serde_json::Value>> = legacy_keys.iter().map(|k| (k.clone(), None)).collect();
    migrated_provenance.extend(expected.iter().map(|(k, v)| (k.clone(), Some(v.clone()))));
    let user_record = json!({"accountId": "a1", "serialNumber": null, "clientUserId": "user 1/2", "adamIds": [], "plusAdamIds": [app(0)]});
    migrated_provenance.insert("prov/a1/u/user+1%2F2".to_owned(), Some(user_record));

    let report = |engine: &Engine| engine.assignment_report(Some("a1"), &Default::default()).unwrap();
    let from_current = Engine::restore(h.engine_config(), h.stored_records(), h.now).unwrap();
    let adopted = |records: Vec<StoredRecord>| {
        let mut engine = Engine::new(h.engine_config(), h.now).unwrap();
        engine.adopt("a1", records, h.now).unwrap();
        engine
    };
    for mut engine in [Engine::restore(h.engine_config(), legacy.clone(), h.now).unwrap(), adopted(legacy.clone())] {
        let writes = drained_writes(&mut engine, h.now);
        let written_provenance: BTreeMap<String, Option<serde_json::Value>> =
            writes.iter().filter(|(k, _)| k.starts_with("prov/")).map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(written_provenance, migrated_provenance, "the old records deleted, one per device or user written");
        assert_eq!(report(&engine), report(&from_current), "the same pairs are ours");

        // The store after that write: read again, it holds the same provenance and nothing is left to move.
        let mut store: BTreeMap<String, serde_json::Value> = legacy.iter().map(|r| (r.key.clone(), r.value.clone())).collect();
        for (key, value) in writes {
            match value {
                Some(value) => store.insert(key, value),
                None => store.remove(&key),
            };
        }
        let records: Vec<StoredRecord> = store.into_iter().map(|(key, value)| StoredRecord { key, value }).collect();
        let mut again = Engine::restore(h.engine_config(), records.clone(), h.now).unwrap();
        assert!(drained_writes(&mut again, h.now).keys().all(|k| !k.starts_with("prov/")), "nothing to move any more");
        assert_eq!(report(&again), report(&from_current));
        let mut kept = expected.clone();
        kept.insert("prov/a1/u/user+1%2F2".to_owned(), migrated_provenance["prov/a1/u/user+1%2F2"].clone().unwrap());
        assert_eq!(provenance(&records), kept);
    }
}

#[test]
fn a_scope_record_of_a_missing_policy_or_of_another_account_is_refused_at_restore() {
    let mut h = Harness::new();
    let token = h.org("ORG1", org(1, 0));
    h.add_account("a1", &token);
    h.input(policy("p1", "a1", app(0), vec![serial(1)])).unwrap();
    h.run_for(MINUTE);
    let orphan = vpp_license_engine::StoredRecord {
        key: "scope/a1/p2/S1".into(),
        value: json!({"accountId": "a1", "policyId": "p2", "target": "S1"}),
    };
    let elsewhere = vpp_license_engine::StoredRecord {
        key: "scope/a2/p1/S1".into(),
        value: json!({"accountId": "a2", "policyId": "p1", "target": "S1"}),
    };
    let misfiled = vpp_license_engine::StoredRecord {
        key: "scope/a1/p1/S2".into(),
        value: json!({"accountId": "a1", "policyId": "p1", "target": "S1"}),
    };
    let orphan_record = vpp_license_engine::StoredRecord {
        key: "targets/a1/p2/0".into(),
        value: json!({"accountId": "a1", "policyId": "p2", "index": 0, "targets": ["S1"]}),
    };
    let misfiled_record = vpp_license_engine::StoredRecord {
        key: "targets/a1/p1/1".into(),
        value: json!({"accountId": "a1", "policyId": "p1", "index": 0, "targets": ["S1"]}),
    };
    let refused = [
        (orphan, "not in the store"),
        (elsewhere, "another account"),
        (misfiled, "does not match"),
        (orphan_record, "not in the store"),
        (misfiled_record, "does not match"),
    ];
    for (record, says) in refused {
        let mut records = h.stored_records();
        records.push(record);
        let error = Engine::restore(h.engine_config(), records, h.now).unwrap_err();
        assert_eq!(error.code(), "RESTORE_FAILED");
        assert!(error.to_string().contains(says), "{error}");
    }
}
