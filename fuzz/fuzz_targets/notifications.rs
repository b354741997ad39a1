//! Notifications: a body Apple (or anyone) POSTs, with the right bearer, none, a wrong one, or
//! for an unknown account, while operations are pending. A refused notification (401, 404, 400)
//! and a repeated one change nothing; an accepted one leaves a working engine.
//!
//! Input: `[<auth> [<account>]]`, a blank line or not, the body. `<auth>` is `none` (no header),
//! `wrong` (another bearer), `raw:<text>` (`<text>` as the header) or anything else (the right
//! bearer); `<account>` is `other` (an unknown account) or anything else (the world's account).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpp_license_engine::Output;
use vpp_license_engine_fuzz::{Framed, World, ACCOUNT, MINUTE, NOTIFICATION_SECRET};

fuzz_target!(|data: &[u8]| {
    let framed = Framed::parse(data);
    let right = format!("Bearer {NOTIFICATION_SECRET}");
    let authorization = match framed.word(0) {
        Some("none") => None,
        Some("wrong") => Some(format!("Bearer {NOTIFICATION_SECRET}x")),
        Some(raw) if raw.starts_with("raw:") => Some(raw["raw:".len()..].to_owned()),
        _ => Some(right.clone()),
    };
    let account = if framed.word(1) == Some("other") { "other" } else { ACCOUNT };
    let body = framed.body;

    let mut world = World::new();
    world.apple.event_delay = 5 * MINUTE; // pending when the notification arrives, done before a resubmission
    world.add_account();
    world.assign();

    let next_wakeup = world.drain();
    let before = snapshot(&world);
    let status = world.engine.handle_notification(account, authorization.as_deref(), &body, world.now);
    let authentic = authorization.as_deref() == Some(right.as_str());
    match status {
        401 => assert!(!authentic, "the right bearer was refused"),
        404 => assert!(authentic && account != ACCOUNT, "404 for a known account"),
        400 => assert!(authentic && account == ACCOUNT),
        200 => assert!(authentic && account == ACCOUNT, "accepted without the right bearer"),
        other => panic!("unexpected status {other}"),
    }
    if status != 200 {
        assert_unchanged(&mut world, &before, next_wakeup);
    } else {
        world.drain();
        let after = snapshot(&world);
        let next_wakeup = world.drain();
        let again = world.engine.handle_notification(account, authorization.as_deref(), &body, world.now);
        assert_eq!(again, 200, "a repeated notification is acknowledged");
        assert_unchanged(&mut world, &after, next_wakeup);
    }

    let test = r#"{"notification": {}, "notificationId": "fuzz-test-notification", "notificationType": "TEST_NOTIFICATION", "uId": "1"}"#;
    assert_eq!(world.engine.handle_notification(ACCOUNT, Some(&right), test, world.now), 200);
    world.run_for(15 * MINUTE);
    let pending = world.engine.pending_operations(ACCOUNT).expect("pending operations");
    assert!(pending.is_empty(), "operations left pending after Apple finished them: {pending:?}");
    world.assert_still_works();
});

/// What a notification could change, as JSON.
fn snapshot(world: &World) -> String {
    let engine = &world.engine;
    serde_json::json!({
        "accounts": serde_json::to_value(engine.accounts()).unwrap(),
        "pending": serde_json::to_value(engine.pending_operations(ACCOUNT).unwrap()).unwrap(),
        "counts": serde_json::to_value(engine.app_counts(ACCOUNT).unwrap()).unwrap(),
        "stats": serde_json::to_value(engine.stats()).unwrap(),
        "wakeup": serde_json::to_value(engine.next_wakeup()).unwrap(),
    })
    .to_string()
}

fn assert_unchanged(world: &mut World, before: &str, next_wakeup: u64) {
    assert_eq!(snapshot(world), before, "a refused or repeated notification changed the engine");
    assert_eq!(world.engine.poll_output(world.now), Output::Timeout { at: next_wakeup }, "it produced outputs");
}
