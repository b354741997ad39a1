//! (8) One input on an engine holding many accounts (issue 20: a hosted MDM drives thousands of
//! locations): each account a location of `DEVICES_PER_ACCOUNT` devices holding one app, with one
//! device policy covering them. `scripts/bench/wasm.mjs --part fleet` runs the same steps.

use std::rc::Rc;

use serde_json::{json, Value};
use vpp_license_engine::{Input, LicenseType};

use crate::world::{account_policy, token_with_secret, Host, Org, Pages};
use crate::{alloc, summary, timed};

pub const DEVICES_PER_ACCOUNT: usize = 100;
/// Samples per kind of input.
const SAMPLES: usize = 200;

pub fn account_id(a: usize) -> String {
    format!("school-{a:05}")
}

/// Device `d` of account `a`: serial numbers are unique across the fleet.
pub fn fleet_serial(a: usize, d: usize) -> String {
    format!("F{a:05}D{d:05}")
}

fn location(a: usize) -> Org {
    let assignments = (0..DEVICES_PER_ACCOUNT).map(|d| (0, fleet_serial(a, d))).collect();
    Org { apps: 1, spare: DEVICES_PER_ACCOUNT, assignments, users: 0, page_size: 1_000 }
}

/// The median and p99 of one input handled and drained, in microseconds, for each kind of input,
/// on an engine holding `accounts` synced accounts; and the memory each idle account holds.
pub fn inputs(accounts: usize) -> Value {
    let mut host = Host::new(Rc::new(Pages::build(&location(0))));
    // Host::new added the bench account: it is account 0's location under its own id.
    for a in 1..accounts {
        host.apple.locations.insert(account_id(a), Rc::new(Pages::build(&location(a))));
    }
    let before = alloc::live();
    for a in 1..accounts {
        host.input(Input::AddAccount { account_id: account_id(a), name: format!("School {a}"), token: token_with_secret(&format!("fleet-secret-{a}")) });
    }
    host.run(u64::MAX / 4, |h| h.syncs_completed >= accounts);
    let synced = alloc::live();
    let ids: Vec<String> = (0..accounts).map(|a| if a == 0 { crate::world::ACCOUNT.to_owned() } else { account_id(a) }).collect();
    for (a, id) in ids.iter().enumerate() {
        host.input(account_policy(id, 0, LicenseType::Device, (0..DEVICES_PER_ACCOUNT).map(|d| fleet_serial(a, d))));
    }
    host.run(0, |_| true);
    let micros = |mut samples: Vec<f64>| {
        samples.iter_mut().for_each(|s| *s *= 1e6);
        summary(&mut samples)
    };
    let one = |host: &mut Host, input: Input| {
        let t = timed(|| {
            host.input(input);
            host.drain();
        });
        host.run(0, |_| true);
        t
    };

    let timeouts: Vec<f64> = (0..SAMPLES).map(|_| one(&mut host, Input::Timeout)).collect();
    let untargeted: Vec<f64> = (0..SAMPLES)
        .map(|i| one(&mut host, Input::DeviceEnrolled { serial_number: format!("NOPOLICY{i:05}"), client_user_id: None, shared_ipad: false, enrollment_id: None, user_enrollment: false, platform: None }))
        .collect();
    // A re-enrollment (a new enrollment id) of a device an account's policy covers: its license is reported ready again.
    let targeted: Vec<f64> = (0..SAMPLES)
        .map(|i| {
            let a = i * 7919 % accounts;
            let enrollment_id = Some(format!("re-enrolled-{i}"));
            one(&mut host, Input::DeviceEnrolled { serial_number: fleet_serial(a, i % DEVICES_PER_ACCOUNT), client_user_id: None, shared_ipad: false, enrollment_id, user_enrollment: false, platform: None })
        })
        .collect();

    // /status answers: new devices enter some accounts' policies; their associations stay PENDING at the bench Apple.
    for i in 0..SAMPLES.min(accounts) {
        let a = i * 7919 % accounts;
        let id = &ids[a];
        let policy_id = if a == 0 { crate::world::policy_id(0) } else { format!("{id}-app-0") };
        host.input(Input::UpdatePolicyTargets { policy_id, add: vec![fleet_serial(a, DEVICES_PER_ACCOUNT + i)], remove: Vec::new() });
    }
    let mut polls = Vec::new();
    // The same events are polled again while they stay PENDING: with few accounts, an hour gives enough samples.
    let end = host.now + 60 * 60_000;
    while polls.len() < SAMPLES && host.now < end {
        let at = host.drain();
        let pending = std::mem::take(&mut host.pending);
        if pending.is_empty() {
            host.now = host.now.max(at);
            host.input(Input::Timeout);
            continue;
        }
        for request in pending {
            if request.purpose == "eventStatus" {
                polls.push(timed(|| {
                    host.answer(&request);
                    host.drain();
                }));
            } else {
                host.answer(&request);
            }
        }
    }
    json!({
        "accounts": accounts,
        // Accounts added after the first (none with one account).
        "bytesPerIdleAccount": (accounts > 1).then(|| (synced - before.min(synced)) as f64 / (accounts - 1) as f64),
        "timeout": micros(timeouts),
        "pollAnswer": micros(polls),
        "deviceEnrolledTargeted": micros(targeted),
        "deviceEnrolledUntargeted": micros(untargeted),
    })
}
