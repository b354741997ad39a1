//! Devices that can't use a device license (issue 17, items 2 and 6): a user-enrolled (BYOD)
//! device (fleetdm/fleet#44004: Apple accepts a serial association for it and the device never
//! gets the app), a book (fleetdm/fleet#38954), an app that does not support the device's
//! platform. A device policy never sends such a device's serial to Apple for that asset; the host
//! hears of each refused (device, asset) once, with `assignmentFailed` saying what to do, and
//! `explain` says the same.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use serde_json::{json, Value};
use support::scenario::{enroll, org, policy, ready, released, serial, synced, MINUTE};
use support::{app, Harness, DAY};
use vpp_license_engine::{Event, ExplainQuery, Input, LicenseType, PricingParam};

const USER_ENROLLED: &str =
    "the device is user-enrolled (BYOD): Apple ignores device licenses for it; assign the app to the device's user instead (a user license)";
const BOOK: &str = "books can only be licensed to users: assign the book to the device's user instead (a user license)";

fn enrolled(serial_number: String, user_enrollment: bool, platform: Option<&str>) -> Input {
    Input::DeviceEnrolled {
        serial_number,
        client_user_id: None,
        shared_ipad: false,
        enrollment_id: None,
        user_enrollment,
        platform: platform.map(str::to_owned),
    }
}

/// The `assignmentFailed` events: (adam id, serial number, message).
fn failures(h: &Harness) -> Vec<(String, String, String)> {
    h.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::AssignmentFailed { adam_id, serial_number, message, .. } => {
                Some((adam_id.clone(), serial_number.clone().unwrap_or_default(), message.clone()))
            }
            _ => None,
        })
        .collect()
}

/// The serial numbers every associate request carried.
fn associated_serials(h: &Harness) -> Vec<String> {
    bodies(h, "associateAssets").iter().flat_map(|b| b["serialNumbers"].as_array().cloned().unwrap_or_default()).map(|s| s.as_str().unwrap().to_owned()).collect()
}

fn bodies(h: &Harness, purpose: &str) -> Vec<Value> {
    h.requests().into_iter().filter(|(_, r)| r.purpose == purpose).map(|(_, r)| serde_json::from_str(r.body.as_deref().unwrap_or("{}")).unwrap()).collect()
}

fn explain(h: &mut Harness, adam_id: String, device: usize) -> String {
    let query = ExplainQuery { adam_id, pricing_param: PricingParam::Stdq, serial_number: Some(serial(device)), client_user_id: None };
    h.engine.explain("a1", &query).unwrap().reason
}

fn held_at_apple(h: &mut Harness, token: &str, adam_id: &str, device: usize) -> bool {
    h.apple.org(token).assignments.iter().any(|(_, a)| a["adamId"] == adam_id && a["serialNumber"] == serial(device))
}

#[test]
fn a_user_enrolled_device_is_never_sent_to_apple_and_is_reported_once_per_app_with_a_user_license_hint() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(2, 10, 0));
    h.input(enrolled(serial(0), false, None)).unwrap();
    h.input(enrolled(serial(1), true, None)).unwrap();
    h.input(policy("p0", &app(0), LicenseType::Device, [serial(0), serial(1)])).unwrap();
    h.input(policy("p1", &app(1), LicenseType::Device, [serial(1)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h), [(app(0), Some(serial(0)), None)]);
    let expected = [(app(0), serial(1), USER_ENROLLED.to_owned()), (app(1), serial(1), USER_ENROLLED.to_owned())];
    assert_eq!(failures(&h), expected);

    // More planning passes: a scope change, a refresh, a day (Reconcile, the daily refresh), the fact replayed.
    h.input(Input::UpdatePolicyTargets { policy_id: "p0".into(), add: vec![serial(2)], remove: vec![] }).unwrap();
    h.run_for(MINUTE);
    h.input(Input::Refresh { account_id: "a1".into() }).unwrap();
    h.input(enrolled(serial(1), true, None)).unwrap();
    h.run_for(DAY + MINUTE);
    assert_eq!(failures(&h), expected, "told once");
    assert!(!associated_serials(&h).contains(&serial(1)), "its serial never reaches Apple");
    assert!(associated_serials(&h).contains(&serial(2)));
    assert_eq!(explain(&mut h, app(0), 1), USER_ENROLLED);
}

#[test]
fn a_device_that_becomes_user_enrolled_gives_back_its_device_licenses_and_is_eligible_again_once_enrolled_normally() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 10, 0));
    enroll(&mut h, [serial(0)]);
    h.input(policy("p0", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(MINUTE);
    assert!(held_at_apple(&mut h, &token, &app(0), 0));

    h.input(enrolled(serial(0), true, None)).unwrap();
    h.run_for(MINUTE);
    assert_eq!(released(&h), [(app(0), Some(serial(0)), USER_ENROLLED.to_owned())]);
    assert!(!held_at_apple(&mut h, &token, &app(0), 0), "released at Apple");
    assert_eq!(failures(&h), [(app(0), serial(0), USER_ENROLLED.to_owned())]);
    assert_eq!(explain(&mut h, app(0), 0), USER_ENROLLED);

    h.take_trace();
    h.input(enrolled(serial(0), false, None)).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h), [(app(0), Some(serial(0)), None)], "enrolled as a normal device: licensed again");
    assert!(held_at_apple(&mut h, &token, &app(0), 0));
    assert!(failures(&h).is_empty());

    h.input(enrolled(serial(0), true, None)).unwrap();
    h.run_for(MINUTE);
    assert_eq!(failures(&h), [(app(0), serial(0), USER_ENROLLED.to_owned())], "user-enrolled again: told again");
}

#[test]
fn a_book_in_a_device_policy_is_refused_per_device_and_never_associated_with_or_released_from_a_device() {
    let mut h = Harness::with_notifications();
    let mut o = org(2, 10, 0);
    o.assets[0]["productType"] = json!("Book");
    o.assets[0]["deviceAssignable"] = json!(false);
    o.assets[0]["revocable"] = json!(false);
    o.add_assignment(&app(0), &serial(5)); // a book on a device, assigned by another MDM long ago
    o.recount();
    synced(&mut h, o);
    enroll(&mut h, [serial(0), serial(1), serial(5)]);
    h.input(policy("b", &app(0), LicenseType::Device, [serial(0), serial(1)])).unwrap();
    h.input(policy("a", &app(1), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(failures(&h), [(app(0), serial(0), BOOK.to_owned()), (app(0), serial(1), BOOK.to_owned())]);
    assert_eq!(ready(&h), [(app(1), Some(serial(0)), None)]);
    assert_eq!(explain(&mut h, app(0), 1), BOOK);

    h.input(Input::CleanUp { account_id: "a1".into() }).unwrap();
    h.input(Input::Reconcile).unwrap();
    h.input(Input::DeviceRetired { serial_number: serial(5) }).unwrap();
    h.run_for(DAY);
    let book_sent = |purpose: &str| bodies(&h, purpose).iter().any(|b| b.to_string().contains(&format!("\"{}\"", app(0))));
    assert!(!book_sent("associateAssets"), "a book is never associated with a device");
    assert!(!book_sent("disassociateAssets") && bodies(&h, "revokeAssets").is_empty(), "nor released from one");
    assert_eq!(failures(&h).len(), 2, "told once");
    let counts = h.engine.app_counts("a1").unwrap();
    assert_eq!(serde_json::to_value(&counts[0]).unwrap()["productType"], "Book");
}

#[test]
fn an_app_that_does_not_support_the_devices_platform_is_refused_with_the_reason_and_a_supported_or_unknown_platform_is_licensed() {
    let mut h = Harness::with_notifications();
    let mut o = org(2, 10, 0);
    o.assets[0]["supportedPlatforms"] = json!(["iOS", "visionOS"]);
    o.assets[1].as_object_mut().unwrap().remove("supportedPlatforms"); // Apple did not say
    synced(&mut h, o);
    h.input(enrolled(serial(0), false, Some("macOS"))).unwrap();
    h.input(enrolled(serial(1), false, Some("iOS"))).unwrap();
    h.input(enrolled(serial(2), false, Some("iPadOS"))).unwrap(); // not Apple's name: not judged
    h.input(enrolled(serial(3), false, None)).unwrap();
    let all = [serial(0), serial(1), serial(2), serial(3)];
    h.input(policy("p0", &app(0), LicenseType::Device, all.clone())).unwrap();
    h.input(policy("p1", &app(1), LicenseType::Device, all)).unwrap();
    h.run_for(MINUTE);
    let reason = "the app does not support the device's platform (macOS; the app supports iOS, visionOS)";
    assert_eq!(failures(&h), [(app(0), serial(0), reason.to_owned())]);
    let mut licensed: Vec<(String, String)> = ready(&h).into_iter().map(|(a, s, _)| (a, s.unwrap())).collect();
    licensed.sort();
    let expected: Vec<(String, String)> =
        [(0, 1), (0, 2), (0, 3), (1, 0), (1, 1), (1, 2), (1, 3)].into_iter().map(|(a, d)| (app(a), serial(d))).collect();
    assert_eq!(licensed, expected);
    let app0_to_mac = bodies(&h, "associateAssets").into_iter().any(|b| {
        b["assets"].to_string().contains(&app(0)) && b["serialNumbers"].as_array().unwrap().contains(&json!(serial(0)))
    });
    assert!(!app0_to_mac, "the Mac is never sent with the app");
    assert_eq!(explain(&mut h, app(0), 0), reason);

    let counts = h.engine.app_counts("a1").unwrap();
    assert_eq!(counts[0].supported_platforms, ["iOS", "visionOS"]);
    assert!(counts[1].supported_platforms.is_empty());
    assert_eq!(h.engine.app_totals()[0].supported_platforms, ["iOS", "visionOS"]);

    h.input(Input::Refresh { account_id: "a1".into() }).unwrap();
    h.run_for(DAY);
    assert_eq!(failures(&h).len(), 1, "told once");
}

#[test]
fn a_device_licensed_before_its_platform_was_known_gives_back_the_apps_that_do_not_support_it() {
    let mut h = Harness::with_notifications();
    let mut o = org(2, 10, 0);
    o.assets[1]["supportedPlatforms"] = json!(["iOS", "macOS"]);
    let token = synced(&mut h, o);
    enroll(&mut h, [serial(0)]);
    h.input(policy("p0", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.input(policy("p1", &app(1), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(ready(&h).len(), 2);

    h.input(enrolled(serial(0), false, Some("macOS"))).unwrap();
    h.run_for(MINUTE);
    let reason = "the app does not support the device's platform (macOS; the app supports iOS)";
    assert_eq!(released(&h), [(app(0), Some(serial(0)), reason.to_owned())]);
    assert_eq!(failures(&h), [(app(0), serial(0), reason.to_owned())]);
    assert!(!held_at_apple(&mut h, &token, &app(0), 0) && held_at_apple(&mut h, &token, &app(1), 0), "the Mac keeps the app that supports it");
}

#[test]
fn user_enrollment_and_platform_survive_a_restart_and_records_written_without_them_restore_as_before() {
    let mut h = Harness::with_notifications();
    let token = synced(&mut h, org(1, 10, 0));
    h.input(enrolled(serial(0), false, Some("iOS"))).unwrap();
    h.input(enrolled(serial(1), true, Some("iOS"))).unwrap();
    h.input(policy("p0", &app(0), LicenseType::Device, [serial(0), serial(1)])).unwrap();
    h.run_for(MINUTE);
    assert_eq!(h.store[&format!("device/{}", serial(1))]["userEnrollment"], json!(true));
    assert_eq!(h.store[&format!("device/{}", serial(0))]["platform"], json!("iOS"));

    h.restart(|_| false).unwrap();
    h.run_for(DAY);
    assert!(!associated_serials(&h).contains(&serial(1)), "still user-enrolled after the restart");
    assert!(held_at_apple(&mut h, &token, &app(0), 0));

    // Records as an engine before these fields wrote them.
    for (key, value) in h.store.iter_mut() {
        if let Some(fields) = value.as_object_mut().filter(|_| key.starts_with("device/") || key.starts_with("asset/")) {
            for field in ["userEnrollment", "platform", "supportedPlatforms"] {
                fields.remove(field);
            }
        }
    }
    h.take_trace();
    h.restart(|_| false).unwrap();
    assert!(h.engine.app_counts("a1").unwrap()[0].supported_platforms.is_empty(), "not known until Apple says again");
    assert_eq!(explain(&mut h, app(0), 0), "licensed by this MDM");
    h.input(Input::Refresh { account_id: "a1".into() }).unwrap();
    h.run_for(MINUTE);
    assert_eq!(h.engine.app_counts("a1").unwrap()[0].supported_platforms, ["iOS"], "read from Apple again");
    assert!(held_at_apple(&mut h, &token, &app(0), 1), "no longer known as user-enrolled: licensed as a normal device");
}

#[test]
fn an_empty_platform_is_refused_with_a_typed_error_and_changes_nothing() {
    let mut h = Harness::with_notifications();
    synced(&mut h, org(1, 10, 0));
    h.input(enrolled(serial(0), true, Some("iOS"))).unwrap();
    h.run_for(MINUTE);
    let stored = h.store.clone();
    let error = h.input(enrolled(serial(0), false, Some(" "))).unwrap_err();
    assert_eq!(error.code(), "INVALID_INPUT");
    assert!(error.to_string().contains("platform"), "{error}");
    h.run_for(MINUTE);
    assert_eq!(h.store, stored, "nothing changed");
    assert_eq!(h.store[&format!("device/{}", serial(0))]["userEnrollment"], json!(true));
}
