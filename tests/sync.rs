//! Sync scenarios: claim, full refresh with paging, versionId handling, delta sync, progress.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use support::fake_apple::Org;
use support::{Harness, DAY, START};
use vpp_license_engine::{AccountStatus, AssignmentQuery, Event, SyncKind};

const MINUTE: u64 = 60_000;

#[test]
fn unclaimed_location_is_claimed_then_fully_synced_over_three_pages() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 2, 8, 2)); // 8 assignments / page size 3 = 3 pages
    h.add_account("a1", &token);
    h.run_for(MINUTE);

    let endpoints: Vec<String> = h.requests_for("a1").iter().map(|(_, r)| Harness::endpoint(r)).collect();
    assert_eq!(endpoints[..2], ["client/config".to_owned(), "client/config".to_owned()]);
    let claim = &h.requests_for("a1")[1].1;
    assert_eq!(claim.method, vpp_license_engine::Method::Post);
    assert!(claim.body.as_deref().unwrap().contains("\"our-mdm-id\""));
    assert_eq!(h.apple.org(&token).mdm_info.as_ref().unwrap()["id"], "our-mdm-id");
    for page in ["assignments?pageIndex=0", "assignments?pageIndex=1", "assignments?pageIndex=2"] {
        assert!(endpoints.iter().any(|e| e == page), "missing {page} in {endpoints:?}");
    }
    assert!(!endpoints.iter().any(|e| e == "assignments?pageIndex=3"), "no page past the last one");

    assert_eq!(h.status("a1"), AccountStatus::Active);
    assert_eq!(h.account("a1").location_name.as_deref(), Some("PS01"));
    assert_eq!(h.account("a1").last_synced_at, Some(START));
    let page = h.engine.assignments("a1", &AssignmentQuery::default()).unwrap();
    assert_eq!(page.total, 8);
    let counts = h.engine.app_counts("a1").unwrap();
    assert_eq!(counts.len(), 2);
    assert_eq!(counts.iter().map(|c| c.assigned_count).sum::<i64>(), 8);
    assert!(h.events().iter().any(|e| matches!(e, Event::OwnershipClaimed { .. })));
    assert!(h.events().iter().any(|e| matches!(e,
        Event::SyncCompleted { kind: SyncKind::Full, assets: 2, assignments: 8, users: 2, .. })));
}

#[test]
fn progress_events_count_pages_done_against_pages_known() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 8, 1));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let progress: Vec<(u32, u32)> = h
        .events()
        .iter()
        .filter_map(|e| match e {
            Event::SyncProgress { pages_done, pages_total, .. } => Some((*pages_done, *pages_total)),
            _ => None,
        })
        .collect();
    // assets 1 page, assignments 3 pages, users 1 page.
    assert_eq!(progress.last(), Some(&(5, 5)));
    assert!(progress.windows(2).all(|w| w[0].0 < w[1].0), "pages done only grows: {progress:?}");
    assert!(progress.iter().all(|(done, total)| done <= total));
}

#[test]
fn no_more_than_five_page_requests_are_in_flight_per_account() {
    let mut h = Harness::new();
    h.latency = 500;
    let token = h.org("ORG1", Org::generated("PS01", 3, 60, 30)); // 20 assignment pages, 10 user pages
    h.add_account("a1", &token);
    h.run_for(5 * MINUTE);
    let mut in_flight: i64 = 0;
    let mut peak = 0;
    let page_ids: std::collections::BTreeSet<u64> =
        h.requests_for("a1").iter().filter(|(_, r)| r.purpose.ends_with("Page")).map(|(_, r)| r.id).collect();
    for t in &h.trace {
        match t {
            support::Trace::Sent { request, .. } if page_ids.contains(&request.id) => in_flight += 1,
            support::Trace::Answered { id, .. } if page_ids.contains(id) => in_flight -= 1,
            _ => {}
        }
        peak = peak.max(in_flight);
    }
    assert_eq!(peak, 5);
    assert_eq!(h.engine.assignments("a1", &AssignmentQuery::default()).unwrap().total, 60);
}

#[test]
fn version_change_mid_traversal_keeps_the_first_pages_version_as_the_delta_cursor() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 2, 8, 2));
    // After assignments page 0 is served, another assignment appears (the versionId changes).
    h.apple.after_page = Some(Box::new(|_, path, page, org| {
        if path.ends_with("/assignments") && page == 0 && org.version == 1 {
            org.add_assignment("400000000", "LATE-SERIAL");
        }
    }));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let pages: Vec<String> = h
        .trace
        .iter()
        .filter_map(|t| match t {
            support::Trace::Answered { body, .. } if body.contains("\"assignments\"") => {
                Some(serde_json::from_str::<serde_json::Value>(body).unwrap()["versionId"].as_str().unwrap().to_owned())
            }
            _ => None,
        })
        .collect();
    assert_eq!(pages[0], "v1");
    assert!(pages[1..].iter().all(|v| v == "v2"), "later pages carry the new version: {pages:?}");

    // The next delta asks for changes since the FIRST page's version, so the late record arrives.
    h.run_for(30 * MINUTE);
    let delta = h
        .requests_for("a1")
        .into_iter()
        .map(|(_, r)| Harness::endpoint(r))
        .find(|e| e.contains("sinceVersionId"))
        .expect("a delta sync ran");
    assert!(delta.starts_with("assignments?pageIndex=0&sinceVersionId=v1"), "{delta}");
    let late = AssignmentQuery { serial_number: Some("LATE-SERIAL".into()), ..AssignmentQuery::default() };
    assert_eq!(h.engine.assignments("a1", &late).unwrap().total, 1);
}

#[test]
fn delta_sync_every_30_minutes_fetches_only_changes_and_merges_them() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 2, 8, 2));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let before = h.requests_for("a1").len();
    h.apple.org(&token).add_assignment("400000001", "NEW-SERIAL");

    h.run_for(28 * MINUTE);
    assert_eq!(h.requests_for("a1").len(), before, "nothing before the delta interval");
    h.run_for(2 * MINUTE);

    let delta: Vec<String> = h.requests_for("a1")[before..].iter().map(|(_, r)| Harness::endpoint(r)).collect();
    assert_eq!(
        delta,
        ["assets?pageIndex=0", "assignments?pageIndex=0&sinceVersionId=v1", "users?pageIndex=0&sinceVersionId=v1"]
    );
    assert!(h.events().iter().any(|e| matches!(e, Event::SyncCompleted { kind: SyncKind::Delta, assignments: 9, .. })));
    assert_eq!(h.engine.assignments("a1", &AssignmentQuery::default()).unwrap().total, 9);
}

#[test]
fn invalid_delta_cursor_falls_back_to_a_full_refresh() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 2, 1));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    h.apple.faults.push_back(support::fake_apple::Fault::status(400).on_path("/assignments").body(
        serde_json::json!({"errorNumber": 9721, "errorMessage": "Invalid version ID."}),
    ));
    h.run_for(31 * MINUTE);
    assert!(h.events().iter().filter(|e| matches!(e, Event::SyncStarted { kind: SyncKind::Full, .. })).count() >= 2);
    assert_eq!(h.status("a1"), AccountStatus::Active);
}

#[test]
fn full_refresh_runs_every_24_hours_and_on_demand() {
    let mut h = Harness::new();
    let token = h.org("ORG1", Org::generated("PS01", 1, 2, 1));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let fulls = |h: &Harness| h.events().iter().filter(|e| matches!(e, Event::SyncStarted { kind: SyncKind::Full, .. })).count();
    assert_eq!(fulls(&h), 1);
    h.input(vpp_license_engine::Input::Refresh { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(fulls(&h), 2);
    h.run_for(DAY);
    assert_eq!(fulls(&h), 3);
}

#[test]
fn service_config_is_read_at_start_and_every_five_minutes() {
    let mut h = Harness::new();
    h.run_for(16 * MINUTE);
    let times: Vec<u64> = h.requests().iter().filter(|(_, r)| r.purpose == "serviceConfig").map(|(at, _)| at - START).collect();
    assert_eq!(times, [0, 5 * MINUTE, 10 * MINUTE, 15 * MINUTE]);
    assert_eq!(h.engine.service_config().limits.max_request_per_second, 15);
    assert!(!h.requests()[0].1.headers.contains_key("authorization"), "service config is sent without a token");
}

#[test]
fn service_config_limits_and_urls_replace_the_defaults() {
    let mut h = Harness::new();
    h.apple.limits["maxRequestPerSecond"] = serde_json::json!(3);
    h.run_for(MINUTE);
    assert_eq!(h.engine.service_config().limits.max_request_per_second, 3);
    assert_eq!(h.engine.service_config().urls.get_assets, "https://apple.test/mdm/v2/assets");
    assert!(h.events().iter().any(|e| matches!(e, Event::ServiceConfigUpdated { limits } if limits["maxRequestPerSecond"] == 3)));
}

#[test]
fn requests_never_exceed_max_request_per_second_per_account() {
    let mut h = Harness::new();
    h.apple.limits["maxRequestPerSecond"] = serde_json::json!(4);
    h.apple.page_size = 1;
    let token = h.org("ORG1", Org::generated("PS01", 5, 40, 20));
    h.add_account("a1", &token);
    h.run_for(10 * MINUTE);
    let times: Vec<u64> = h.requests_for("a1").iter().map(|(at, _)| *at).collect();
    assert!(times.len() > 60);
    for (i, &t) in times.iter().enumerate() {
        let in_window = times[i..].iter().take_while(|&&u| u < t + 1_000).count();
        assert!(in_window <= 4, "{in_window} requests in the second from {t}");
    }
    assert_eq!(h.engine.assignments("a1", &AssignmentQuery::default()).unwrap().total, 40);
}

#[test]
fn data_shrinking_during_a_traversal_ends_it_at_the_new_last_page() {
    let mut h = Harness::new();
    h.latency = 100;
    let token = h.org("ORG1", Org::generated("PS01", 1, 12, 1)); // 4 assignment pages of 3
    h.apple.after_page = Some(Box::new(|_, path, page, org| {
        if path.ends_with("/assignments") && page == 0 {
            org.assignments.truncate(4); // now 2 pages: pages 2 and 3 answer 9650
            org.version += 1;
        }
    }));
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    let out_of_range = h.trace.iter().filter(|t| matches!(t, support::Trace::Answered { body, .. } if body.contains("9650"))).count();
    assert!(out_of_range > 0, "the scenario produced 9650 answers");
    assert_eq!(h.status("a1"), AccountStatus::Active);
    assert!(h.events().iter().any(|e| matches!(e, Event::SyncCompleted { kind: SyncKind::Full, .. })));
    assert!(!h.events().iter().any(|e| matches!(e, Event::RequestFailed { .. })), "9650 is the end of the data, not a failure");
}
