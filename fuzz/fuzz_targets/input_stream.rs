//! The input stream: a sequence of JSON values. An `Input` (as the JS binding takes it) is fed to
//! `handle_input`; a number advances the clock by that many milliseconds (then the timer fires);
//! `"restart"` rebuilds the engine from the records it persisted. After each, outputs are drained.
//!
//! A refused input changes nothing; every output reaches JavaScript (serializes, with no number
//! beyond 2^53 - 1) and every read model serializes; the engine always comes back to a timeout; restoring from its own records never fails and keeps the accounts.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use vpp_license_engine::{Engine, Input, Output};
use vpp_license_engine_fuzz::{apply, assert_reaches_javascript, records, world_config, DAY, START};

/// Values read from one input (keeps each run short).
const MAX_STEPS: usize = 64;
const MAX_OUTPUTS_PER_DRAIN: usize = 100_000;

fuzz_target!(|data: &[u8]| {
    let mut engine = Engine::new(world_config(), START).expect("valid config");
    let mut store = BTreeMap::new();
    let mut now = START;
    drain(&mut engine, &mut store, now);
    for value in serde_json::Deserializer::from_slice(data).into_iter::<Value>().take(MAX_STEPS) {
        let Ok(value) = value else { break };
        if let Some(ms) = value.as_u64() {
            now = now.saturating_add(ms.min(30 * DAY));
            engine.handle_input(Input::Timeout, now).expect("a timeout is never refused");
        } else if value.as_str() == Some("restart") {
            let ids = account_ids(&engine);
            engine = Engine::restore(world_config(), records(&store), now).expect("restore from the engine's own records");
            assert_eq!(account_ids(&engine), ids, "a restart lost or invented accounts");
        } else if let Ok(input) = serde_json::from_value::<Input>(value) {
            let before = snapshot(&engine);
            if let Err(e) = engine.handle_input(input, now) {
                assert!(!e.code().is_empty() && !e.to_string().is_empty());
                assert_eq!(snapshot(&engine), before, "a refused input ({}) changed the engine", e.code());
            }
        }
        drain(&mut engine, &mut store, now);
    }
});

fn drain(engine: &mut Engine, store: &mut BTreeMap<String, Value>, now: u64) {
    for _ in 0..MAX_OUTPUTS_PER_DRAIN {
        let output = engine.poll_output(now);
        assert_reaches_javascript(&output);
        match output {
            Output::Persist { ops } => apply(store, ops),
            Output::Timeout { .. } => return,
            Output::Request(_) | Output::Event { .. } => {}
        }
    }
    panic!("the engine produced {MAX_OUTPUTS_PER_DRAIN} outputs without a timeout");
}

fn account_ids(engine: &Engine) -> Vec<String> {
    engine.accounts().into_iter().map(|a| a.account_id).collect()
}

/// What a refused input must leave as it was, as JSON (every read model serializes).
fn snapshot(engine: &Engine) -> String {
    let per_account: Vec<Value> = engine
        .accounts()
        .iter()
        .map(|a| {
            serde_json::json!({
                "counts": serde_json::to_value(engine.app_counts(&a.account_id).unwrap()).unwrap(),
                "pending": serde_json::to_value(engine.pending_operations(&a.account_id).unwrap()).unwrap(),
            })
        })
        .collect();
    serde_json::json!({
        "accounts": serde_json::to_value(engine.accounts()).unwrap(),
        "perAccount": per_account,
        "stats": serde_json::to_value(engine.stats()).unwrap(),
        "wakeup": serde_json::to_value(engine.next_wakeup()).unwrap(),
    })
    .to_string()
}
