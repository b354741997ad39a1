//! `Engine::preview`: what a change would do, computed without doing it — it changes nothing, its
//! figures are what the engine then does, and it refuses what the engine refuses. In simulated
//! time against the fake Apple.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Value};
use support::fake_apple::{Fault, Org};
use support::scenario::*;
use support::{app, Harness};
use vpp_license_engine::{EngineError, Event, Input, LicenseType, PricingParam, PreviewReport};

/// Everything a host can read of the engine's state: accounts, pending operations, the next wake-up, stats.
fn state(h: &Harness) -> Value {
    let accounts = h.engine.accounts();
    let pending: Vec<Value> = accounts.iter().map(|a| json!(h.engine.pending_operations(&a.account_id).unwrap())).collect();
    json!({"accounts": accounts, "pending": pending, "wakeup": h.engine.next_wakeup(), "stats": h.engine.stats()})
}

fn preview(h: &mut Harness, inputs: Vec<Input>) -> Result<PreviewReport, EngineError> {
    h.engine.preview(inputs, h.now)
}

fn targets(policy_id: &str, add: impl IntoIterator<Item = String>, remove: impl IntoIterator<Item = String>) -> Input {
    Input::UpdatePolicyTargets { policy_id: policy_id.into(), add: add.into_iter().collect(), remove: remove.into_iter().collect() }
}

/// A synced account with one app of `licenses` licenses, `devices` enrolled, and a policy "p1" for
/// the app scoping the first `in_scope` of them, all assigned.
fn scoped(licenses: i64, devices: usize, in_scope: usize) -> Harness {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(1, licenses, 0));
    enroll(&mut h, (0..devices).map(serial));
    h.input(policy("p1", &app(0), LicenseType::Device, (0..in_scope).map(serial))).unwrap();
    h.run_for(MINUTE);
    h
}

// ============================================================================ figures

#[test]
fn a_2500_device_scope_change_previews_2500_assignments_in_3_requests() {
    let mut h = scoped(3000, 2500, 0);
    let report = preview(&mut h, vec![targets("p1", (0..2500).map(serial), [])]).unwrap();
    assert_eq!((report.totals.assign, report.totals.release, report.totals.requests, report.totals.devices), (2500, 0, 3, 2500));
    assert_eq!(report.apps.len(), 1);
    assert_eq!((report.apps[0].adam_id.as_str(), report.apps[0].pricing_param), (app(0).as_str(), PricingParam::Stdq));
    assert_eq!(report.apps[0].figures, report.totals);
    let account = &report.accounts[0];
    assert_eq!((account.account_id.as_str(), account.max_request_per_second, account.wait_ms), ("a1", 15, 0));
    assert_eq!(account.estimated_ms, 200, "3 requests at 15 per second");
    assert_eq!(report.estimated_ms, 200);
}

#[test]
fn leaving_a_scope_previews_the_releases_by_reason() {
    let mut h = scoped(300, 250, 250);
    let report = preview(&mut h, vec![targets("p1", [], (0..250).map(serial))]).unwrap();
    assert_eq!((report.totals.release, report.totals.assign, report.totals.devices, report.totals.other_mdm_released), (250, 0, 250, 0));
    assert_eq!(report.totals.requests, 1, "one disassociation (1,000 serial numbers a request), not 3 revokes (100)");
    assert_eq!(report.releases_by_reason.len(), 1);
    assert_eq!(report.releases_by_reason[0].count, 250);
    assert_eq!(report.releases_by_reason[0].reason, "left the scope of policy Policy p1");
}

#[test]
fn a_scope_beyond_the_pool_previews_the_shortfall() {
    let mut h = scoped(100, 150, 0);
    let report = preview(&mut h, vec![targets("p1", (0..150).map(serial), [])]).unwrap();
    assert_eq!((report.totals.assign, report.totals.short_by, report.totals.requests), (100, 50, 1));
    h.input(targets("p1", (0..150).map(serial), [])).unwrap();
    h.run_for(MINUTE);
    let short: Vec<usize> = h.engine.app_counts("a1").unwrap().iter().map(|c| c.short_by).collect();
    assert_eq!(short, [50], "the engine then finds the same shortfall");
}

#[test]
fn clean_up_previews_the_other_mdms_licenses_it_releases() {
    let mut h = Harness::with_notifications();
    synced(&mut h, Org::generated("PS01", 2, 10, 0));
    let report = preview(&mut h, vec![Input::CleanUp { account_id: "a1".into() }]).unwrap();
    assert_eq!((report.totals.release, report.totals.other_mdm_released), (10, 10));
    assert_eq!(report.releases_by_reason[0].reason, "assigned by another MDM (Clean Up)");
}

#[test]
fn reclaiming_an_app_and_reconcile_preview_together() {
    let mut h = scoped(300, 40, 40);
    let inputs = vec![
        Input::ReclaimApp { account_id: "a1".into(), adam_id: app(0), pricing_param: PricingParam::Stdq },
        Input::Reconcile,
    ];
    let report = preview(&mut h, inputs).unwrap();
    assert_eq!((report.totals.release, report.totals.requests), (40, 1));
    assert_eq!(report.releases_by_reason[0].reason, "reclaimed by an administrator");
}

#[test]
fn the_estimate_includes_the_retry_after_the_account_waits_for() {
    let mut h = scoped(300, 80, 0);
    h.apple.faults.push_back(Fault::status(503).on_path("assets/associate").header("Retry-After", "120"));
    h.input(targets("p1", (0..40).map(serial), [])).unwrap();
    h.run_for(SECOND);
    let report = preview(&mut h, vec![targets("p1", (40..80).map(serial), [])]).unwrap();
    assert_eq!((report.totals.assign, report.totals.requests), (40, 1), "the association waiting already is not counted");
    let account = &report.accounts[0];
    assert!(account.wait_ms > 100 * SECOND && account.wait_ms <= 120 * SECOND, "waits for Retry-After: {account:?}");
    assert_eq!(account.estimated_ms, account.wait_ms + 67, "then 1 request at 15 per second");
    assert!(account.wait_reason.is_some());
}

// ============================================================================ changes nothing

/// Two engines driven alike, one of which previews `inputs` first: after both apply them, every
/// output (requests, events, store records) and every view is the same.
fn previewing_changes_nothing(mut h: impl FnMut() -> Harness, inputs: Vec<Input>) {
    let (mut plain, mut previewed) = (h(), h());
    let before = state(&previewed);
    let stored = previewed.store.clone();
    preview(&mut previewed, inputs.clone()).unwrap();
    assert_eq!(state(&previewed), before, "the views are unchanged");
    for h in [&mut plain, &mut previewed] {
        for input in inputs.clone() {
            h.input(input).unwrap();
        }
    }
    let outputs = |h: &mut Harness| serde_json::to_string(&h.engine.drain_outputs(h.now)).unwrap();
    assert_eq!(outputs(&mut previewed), outputs(&mut plain), "the next pollOutputs are the same");
    plain.run_for(MINUTE);
    previewed.run_for(MINUTE);
    assert_eq!(state(&previewed), state(&plain));
    assert_eq!(previewed.store, plain.store, "the store is the same");
    assert_ne!(previewed.store, stored, "(the inputs did change the store)");
    assert_eq!(format!("{:?}", previewed.take_trace()), format!("{:?}", plain.take_trace()));
}

#[test]
fn previewing_scope_changes_leaves_state_outputs_and_store_unchanged() {
    previewing_changes_nothing(
        || scoped(300, 60, 30),
        vec![targets("p1", (30..60).map(serial), (0..10).map(serial)), policy("p2", &app(0), LicenseType::Device, [serial(70)])],
    );
}

#[test]
fn previewing_facts_reclaims_and_clean_up_leaves_state_outputs_and_store_unchanged() {
    previewing_changes_nothing(
        || scoped(300, 60, 30),
        vec![
            Input::DeviceRetired { serial_number: serial(1) },
            Input::DeviceEnrolled { serial_number: serial(99), client_user_id: Some(user(1)), shared_ipad: true, enrollment_id: None, user_enrollment: false, platform: None },
            Input::AppRemoved { serial_number: serial(2), adam_id: app(0) },
            Input::UserRemoved { client_user_id: user(3) },
            Input::ReclaimLicense {
                account_id: "a1".into(),
                adam_id: app(0),
                pricing_param: PricingParam::Stdq,
                serial_number: Some(serial(3)),
                client_user_id: None,
            },
            Input::RemovePolicy { policy_id: "p1".into() },
            Input::CleanUp { account_id: "a1".into() },
            Input::Reconcile,
        ],
    );
}

// ============================================================================ refusals

#[test]
fn an_input_the_engine_refuses_makes_preview_fail_with_the_same_error_and_change_nothing() {
    let mut h = scoped(300, 20, 10);
    let before = state(&h);
    let refused = [
        targets("nope", [serial(1)], []),
        targets("p1", [" ".to_owned()], []),
        Input::CleanUp { account_id: "nope".into() },
        Input::DeviceRetired { serial_number: String::new() },
        Input::ReclaimLicense {
            account_id: "a1".into(),
            adam_id: app(0),
            pricing_param: PricingParam::Stdq,
            serial_number: Some(serial(15)),
            client_user_id: None,
        },
    ];
    for input in refused {
        // After an accepted input that changes a lot: the refusal undoes it too.
        let error = preview(&mut h, vec![targets("p1", [], (0..10).map(serial)), input.clone()]).unwrap_err();
        assert_eq!(state(&h), before);
        assert_eq!(h.input(input).unwrap_err(), error);
    }
    assert_eq!(state(&h), before);
}

#[test]
fn inputs_preview_does_not_cover_are_refused_as_invalid() {
    let mut h = scoped(300, 20, 10);
    for input in [Input::Timeout, Input::Refresh { account_id: "a1".into() }, Input::SetLicenseRemovalNotification { enabled: true }] {
        assert!(matches!(preview(&mut h, vec![input]), Err(EngineError::InvalidInput(_))));
    }
}

// ============================================================================ what the engine then does

/// What the engine sent and reported since the trace was last taken: pairs associated (from the
/// request bodies), licenses released (events, by reason), submissions.
fn done_since(h: &Harness) -> (usize, usize, usize, Vec<(String, usize)>) {
    let mut assigned = 0;
    let mut requests = 0;
    for (_, request) in h.requests() {
        if ["associateAssets", "disassociateAssets", "revokeAssets", "createUsers"].contains(&request.purpose) {
            requests += 1;
        }
        if request.purpose == "associateAssets" {
            let body: Value = serde_json::from_str(request.body.as_deref().unwrap()).unwrap();
            let count = |key: &str| body[key].as_array().map_or(0, Vec::len);
            assigned += count("assets") * (count("serialNumbers") + count("clientUserIds"));
        }
    }
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for event in h.events() {
        if let Event::LicenseReleased { reason, .. } = event {
            *reasons.entry(reason.clone()).or_default() += 1;
        }
    }
    let released = reasons.values().sum();
    (assigned, released, requests, reasons.into_iter().collect())
}

#[test]
fn a_previewed_scope_change_is_what_the_engine_then_does() {
    let mut h = scoped(300, 60, 30);
    let inputs = vec![targets("p1", (30..60).map(serial), (0..10).map(serial))];
    let report = preview(&mut h, inputs.clone()).unwrap();
    h.take_trace();
    for input in inputs {
        h.input(input).unwrap();
    }
    h.run_for(MINUTE);
    let (assigned, released, requests, reasons) = done_since(&h);
    assert_eq!((report.totals.assign, report.totals.release, report.totals.requests), (assigned, released, requests));
    let previewed: Vec<(String, usize)> = report.releases_by_reason.iter().map(|r| (r.reason.clone(), r.count)).collect();
    assert_eq!(previewed, reasons);
}

// ============================================================================ property

/// Random scope changes (and the facts, reclaims and Reconcile that go with them) on random
/// scopes under small request limits: the preview's figures are what the engine then sends and
/// releases, and the preview changes nothing.
#[cfg(not(target_arch = "wasm32"))]
mod property {
    use proptest::prelude::*;

    use super::*;

    const APPS: usize = 2;
    const DEVICES: usize = 24;
    const USERS: usize = 4;

    /// One change: `0` a policy's scope (targets added, removed), `1` a device retired, `2` an app
    /// removed from a device, `3` an app reclaimed, `4` Reconcile, `5` a policy removed, `6` a user removed.
    #[derive(Debug, Clone)]
    struct Change {
        kind: u8,
        policy: usize,
        add: Vec<bool>,
        remove: Vec<bool>,
        target: usize,
    }

    fn change() -> impl Strategy<Value = Change> {
        (0u8..7, 0..APPS * 2, prop::collection::vec(any::<bool>(), DEVICES), prop::collection::vec(any::<bool>(), DEVICES), 0..DEVICES)
            .prop_map(|(kind, policy, add, remove, target)| Change { kind, policy, add, remove, target })
    }

    /// Policy `p`: device policies first, then user policies, one per app.
    fn policy_of(p: usize) -> (String, usize, LicenseType) {
        if p < APPS { (format!("d{p}"), p, LicenseType::Device) } else { (format!("u{}", p - APPS), p - APPS, LicenseType::User) }
    }

    fn names(p: usize, chosen: &[bool]) -> Vec<String> {
        let name = if p < APPS { serial } else { user };
        let count = if p < APPS { DEVICES } else { USERS };
        chosen.iter().take(count).enumerate().filter(|(_, c)| **c).map(|(i, _)| name(i)).collect()
    }

    fn input_of(c: &Change) -> Input {
        let (policy_id, a, _) = policy_of(c.policy);
        match c.kind {
            0 => targets(&policy_id, names(c.policy, &c.add), names(c.policy, &c.remove)),
            1 => Input::DeviceRetired { serial_number: serial(c.target) },
            2 => Input::AppRemoved { serial_number: serial(c.target), adam_id: app(a) },
            3 => Input::ReclaimApp { account_id: "a1".into(), adam_id: app(a), pricing_param: PricingParam::Stdq },
            4 => Input::Reconcile,
            5 => Input::RemovePolicy { policy_id },
            _ => Input::UserRemoved { client_user_id: user(c.target % USERS) },
        }
    }

    fn harness(limits: (usize, usize, usize), scopes: &[Vec<bool>]) -> Harness {
        let mut h = Harness::with_notifications();
        h.apple.limits = json!({"maxAssets": limits.0, "maxSerialNumbers": limits.1, "maxClientUserIds": limits.1,
                                "maxRevokeSerialNumbers": limits.2, "maxRevokeClientUserIds": limits.2, "maxUsers": 100,
                                "maxRequestPerSecond": 15});
        synced(&mut h, org(APPS, 1_000, USERS));
        enroll(&mut h, (0..DEVICES).map(serial));
        for (p, scope) in scopes.iter().enumerate() {
            let (policy_id, a, kind) = policy_of(p);
            h.input(policy(&policy_id, &app(a), kind, names(p, scope))).unwrap();
        }
        h.run_for(MINUTE);
        h
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        #[test]
        fn preview_figures_are_what_the_engine_then_does(
            limits in (1usize..=3, 1usize..=8, 1usize..=8),
            scopes in prop::collection::vec(prop::collection::vec(any::<bool>(), DEVICES), APPS * 2),
            changes in prop::collection::vec(change(), 1..4),
        ) {
            let mut h = harness(limits, &scopes);
            let inputs: Vec<Input> = changes.iter().map(input_of).collect();
            let before = state(&h);
            let previewed = preview(&mut h, inputs.clone());
            prop_assert_eq!(state(&h), before);
            h.take_trace();
            let mut applied = Ok(());
            for input in inputs {
                applied = applied.and_then(|()| h.input(input));
            }
            let report = match (previewed, applied) {
                (Ok(report), Ok(())) => report,
                (Err(previewed), Err(applied)) => {
                    prop_assert_eq!(previewed, applied);
                    return Ok(());
                }
                (previewed, applied) => {
                    prop_assert!(false, "preview {:?}, applied {:?}", previewed, applied);
                    unreachable!()
                }
            };
            h.run_for(MINUTE);
            let (assigned, released, requests, reasons) = done_since(&h);
            prop_assert_eq!((report.totals.assign, report.totals.release, report.totals.requests), (assigned, released, requests));
            let previewed: Vec<(String, usize)> = report.releases_by_reason.iter().map(|r| (r.reason.clone(), r.count)).collect();
            prop_assert_eq!(previewed, reasons);
        }
    }
}
