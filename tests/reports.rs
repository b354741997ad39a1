//! The license usage reports: per app (purchased, used by us, used by others, pending, available)
//! and per assignment (ours or not, confirmed since, the policy that wants it), paged by cursor over
//! one account or all of them.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use std::collections::BTreeSet;

use support::fake_apple::Org;
use support::{app, Harness, START};
use vpp_license_engine::{AppPolicy, EngineError, Input, LicenseType, PricingParam, ReportPageQuery, StoredRecord};

const MINUTE: u64 = 60_000;

fn enroll(serial: &str) -> Input {
    Input::DeviceEnrolled { serial_number: serial.into(), client_user_id: None, shared_ipad: false, enrollment_id: None, user_enrollment: false, platform: None }
}

/// Two accounts, each with 2 apps and `others` assignments another MDM made; account `a0` has a
/// policy giving app 0 to 3 devices, assigned and confirmed.
fn two_accounts(others: usize) -> Harness {
    let mut h = Harness::new();
    for i in 0..2 {
        let token = h.org(&format!("ORG{i}"), Org::generated(&format!("L{i}"), 2, others, 0));
        h.add_account(&format!("a{i}"), &token);
    }
    h.run_for(MINUTE);
    let targets = ["D1", "D2", "D3"].map(str::to_owned).into_iter().collect();
    let policy = AppPolicy {
        policy_id: "p1".into(),
        name: "P1".into(),
        account_id: "a0".into(),
        adam_id: app(0),
        pricing_param: PricingParam::Stdq,
        license_type: LicenseType::Device,
        targets,
    };
    h.input(Input::SetPolicy { policy }).unwrap();
    for serial in ["D1", "D2", "D3"] {
        h.input(enroll(serial)).unwrap();
    }
    h.run_for(5 * MINUTE);
    h
}

fn all_rows(h: &Harness, account_id: Option<&str>, limit: usize) -> Vec<vpp_license_engine::AssignmentReportRow> {
    let (mut rows, mut after) = (Vec::new(), None);
    loop {
        let page = h.engine.assignment_report(account_id, &ReportPageQuery { after, limit, ..ReportPageQuery::default() }).unwrap();
        assert!(page.rows.len() <= limit);
        rows.extend(page.rows);
        match page.next {
            Some(next) => after = Some(next),
            None => return rows,
        }
    }
}

#[test]
fn the_app_report_counts_our_assignments_others_and_the_pool_per_account() {
    let h = two_accounts(4);
    let rows = h.engine.app_report(None).unwrap();
    let summary: Vec<_> = rows.iter().map(|r| (r.account_id.as_str(), r.adam_id.clone(), r.used_by_us, r.used_by_others, r.pending)).collect();
    assert_eq!(
        summary,
        vec![("a0", app(0), 3, 2, 0), ("a0", app(1), 0, 2, 0), ("a1", app(0), 0, 2, 0), ("a1", app(1), 0, 2, 0)]
    );
    assert!(rows.iter().all(|r| r.total_count == 100));
    assert_eq!(h.engine.app_report(Some("a1")).unwrap(), rows[2..].to_vec());
}

#[test]
fn the_assignment_report_says_whose_each_assignment_is_when_it_was_confirmed_and_which_policy_wants_it() {
    let h = two_accounts(2);
    let rows = all_rows(&h, Some("a0"), 100);
    let ours: Vec<_> = rows.iter().filter(|r| r.ours).collect();
    assert_eq!(ours.len(), 3);
    for row in &ours {
        assert_eq!(row.policy_id.as_deref(), Some("p1"));
        let since = row.confirmed_since.expect("confirmed by this engine");
        assert!(since > START && since <= h.now, "{since}");
    }
    let others: Vec<_> = rows.iter().filter(|r| !r.ours).collect();
    assert_eq!(others.len(), 2);
    // Another MDM's assignments date from the first sync that listed them.
    assert!(others.iter().all(|r| r.policy_id.is_none() && r.confirmed_since.is_some_and(|s| (START..=START + MINUTE).contains(&s))));
}

#[test]
fn paging_the_report_of_every_account_yields_each_assignment_exactly_once() {
    let h = two_accounts(23);
    let everything = all_rows(&h, None, 10_000);
    assert_eq!(everything.len(), 2 * 23 + 3);
    let total = h.engine.assignment_report(None, &ReportPageQuery { limit: 1, ..ReportPageQuery::default() }).unwrap().total;
    assert_eq!(total, everything.len());
    for limit in [1, 2, 3, 7, 26, 49, 50] {
        let paged = all_rows(&h, None, limit);
        assert_eq!(paged, everything, "limit {limit}");
        let distinct: BTreeSet<_> = paged.iter().map(|r| (&r.account_id, &r.adam_id, &r.serial_number, &r.client_user_id)).collect();
        assert_eq!(distinct.len(), paged.len(), "limit {limit}");
    }
    let a1 = all_rows(&h, Some("a1"), 4);
    assert_eq!(a1, everything.iter().filter(|r| r.account_id == "a1").cloned().collect::<Vec<_>>());
}

#[test]
fn the_report_of_one_app_pages_through_its_assignments_only() {
    let h = two_accounts(23);
    let everything = all_rows(&h, None, 10_000);
    let query = |after, limit| ReportPageQuery { after, limit, adam_id: Some(app(1)), pricing_param: Some(PricingParam::Stdq) };
    let (mut rows, mut after) = (Vec::new(), None);
    loop {
        let page = h.engine.assignment_report(None, &query(after, 5)).unwrap();
        assert_eq!(page.total, 2 * 11);
        rows.extend(page.rows);
        match page.next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    assert_eq!(rows, everything.into_iter().filter(|r| r.adam_id == app(1)).collect::<Vec<_>>());
    let plus = ReportPageQuery { pricing_param: Some(PricingParam::Plus), ..query(None, 5) };
    assert_eq!(h.engine.assignment_report(None, &plus).unwrap().rows, vec![]);
}

#[test]
fn bad_cursors_and_limits_are_refused_with_a_typed_error() {
    let h = two_accounts(2);
    let page = |account: Option<&str>, after: &str, limit| {
        h.engine.assignment_report(account, &ReportPageQuery { after: Some(after.to_owned()), limit, ..ReportPageQuery::default() })
    };
    for after in ["", "x", "d1.2", "q1.2.0.a0", "d1.2.7.a0", "d-1.2.0.a0", "d1.99999999999.0.a0"] {
        assert!(matches!(page(None, after, 10), Err(EngineError::InvalidInput(_))), "{after:?}");
    }
    let first = h.engine.assignment_report(Some("a0"), &ReportPageQuery { limit: 1, ..ReportPageQuery::default() }).unwrap();
    let next = first.next.unwrap();
    assert!(matches!(page(Some("a1"), &next, 10), Err(EngineError::InvalidInput(_))));
    assert!(matches!(page(None, &next, 0), Err(EngineError::InvalidInput(_))));
    assert!(matches!(page(None, &next, 10_001), Err(EngineError::InvalidInput(_))));
    assert!(matches!(h.engine.app_report(Some("nope")), Err(EngineError::UnknownAccount(_))));
    assert!(matches!(h.engine.assignment_report(Some("nope"), &ReportPageQuery::default()), Err(EngineError::UnknownAccount(_))));
}

#[test]
fn confirmed_since_survives_a_restart_and_records_stored_without_it_load_as_unknown() {
    let mut h = two_accounts(2);
    let before = all_rows(&h, None, 100);
    h.restart(|_| true).unwrap();
    let key = |r: &vpp_license_engine::AssignmentReportRow| (r.account_id.clone(), r.adam_id.clone(), r.serial_number.clone(), r.confirmed_since, r.ours);
    let mut restored: Vec<_> = all_rows(&h, None, 100).iter().map(key).collect();
    let mut expected: Vec<_> = before.iter().map(key).collect();
    restored.sort();
    expected.sort();
    assert_eq!(restored, expected);

    let old: Vec<StoredRecord> = h
        .stored_records()
        .into_iter()
        .map(|mut r| {
            if let Some(object) = r.value.as_object_mut() {
                object.remove("confirmedSince");
                object.remove("plusConfirmedSince");
            }
            r
        })
        .collect();
    let engine = vpp_license_engine::Engine::restore(h.config.clone(), old, h.now).unwrap();
    let page = engine.assignment_report(None, &ReportPageQuery { limit: 100, ..ReportPageQuery::default() }).unwrap();
    assert_eq!(page.rows.len(), before.len());
    assert!(page.rows.iter().all(|r| r.confirmed_since.is_none()));
}

#[test]
fn a_later_full_refresh_keeps_when_each_assignment_was_first_confirmed_and_dates_new_ones_from_then() {
    let mut h = two_accounts(4);
    let since = |h: &Harness| -> Vec<(Option<String>, Option<u64>)> {
        all_rows(h, Some("a1"), 100).into_iter().map(|r| (r.serial_number, r.confirmed_since)).collect()
    };
    let before = since(&h);
    h.run_for(60 * MINUTE);
    let token = h.apple.orgs.iter().find(|(_, org)| org.location_name == "L1").map(|(t, _)| t.clone()).unwrap();
    h.apple.org(&token).add_assignment(&app(1), "LATE");
    h.input(Input::Refresh { account_id: "a1".into() }).unwrap();
    let refreshed_at = h.now;
    h.run_for(5 * MINUTE);
    let after = since(&h);
    assert_eq!(after.len(), before.len() + 1);
    for row in &before {
        assert!(after.contains(row), "{row:?} kept its time");
    }
    let late = after.iter().find(|(serial, _)| serial.as_deref() == Some("LATE")).unwrap();
    assert!(late.1.is_some_and(|s| s >= refreshed_at / 1000 * 1000 && s <= h.now), "{late:?}");
}
