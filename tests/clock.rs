//! The host's clock: one `now` far ahead (a glitch) followed by real time again sets the engine's
//! clock back, re-derives the deadlines computed on the glitched clock, and stores nothing terminal.

mod support;

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use support::scenario::*;
use support::{app, Harness, DAY};
use vpp_license_engine::{AccountStatus, Event, LicenseType};

const HOUR: u64 = 60 * MINUTE;

#[test]
fn one_now_an_hour_ahead_does_not_hold_a_license_back_for_an_hour() {
    let mut h = Harness::new(); // no notifications: Apple's answer comes by /status polling
    synced(&mut h, org(1, 10, 0));
    enroll(&mut h, [serial(0)]);
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(5 * SECOND);
    assert_eq!(posts(&h, "associateAssets"), 1);
    assert!(ready(&h).is_empty());
    h.clock_glitch(HOUR);
    h.run_for(10 * MINUTE);
    assert_eq!(ready(&h).len(), 1, "confirmed within minutes of real time, not an hour");
    assert_eq!(h.engine.stats().clock_rewinds, 1);
    assert!(h.engine.next_wakeup().at <= h.now + DAY);
}

#[test]
fn one_now_400_days_ahead_does_not_store_the_token_as_expired() {
    let mut h = Harness::new();
    synced(&mut h, org(1, 10, 0));
    h.clock_glitch(400 * DAY);
    h.run_for(10 * MINUTE);
    assert_eq!(h.status("a1"), AccountStatus::Active);
    assert!(!h.events().iter().any(|e| matches!(e, Event::AccountStatusChanged { status: AccountStatus::TokenInvalid, .. })));
    let record = serde_json::to_string(&h.store["account/a1"]).unwrap();
    assert!(!record.contains("expired"), "{record}");
    assert!(h.engine.next_wakeup().at <= h.now + DAY);
    // The engine works on: a policy gets its license.
    enroll(&mut h, [serial(0)]);
    h.input(policy("p1", &app(0), LicenseType::Device, [serial(0)])).unwrap();
    h.run_for(10 * MINUTE);
    assert_eq!(ready(&h).len(), 1);
}

#[test]
fn a_token_really_expired_stops_the_account_after_two_readings_a_minute_apart() {
    let mut h = Harness::new();
    synced(&mut h, org(1, 10, 0));
    let expires = 365 * DAY; // the harness's tokens expire a year after the start
    h.run_until(support::START + expires + SECOND);
    assert_eq!(h.status("a1"), AccountStatus::Active, "one reading past the expiry is not enough");
    h.run_until(support::START + expires + 2 * MINUTE);
    assert_eq!(h.status("a1"), AccountStatus::TokenInvalid);
}
