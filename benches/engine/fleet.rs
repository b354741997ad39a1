//! (8) One input on an engine holding many accounts (issue 20: a hosted MDM drives thousands of
//! locations): each account a location of `DEVICES_PER_ACCOUNT` devices holding one app, with one
//! device policy covering them. `scripts/bench/wasm.mjs --part fleet` runs the same steps.
//!
//! The inputs go to accounts spread over the fleet, so at 10,000 accounts each one finds its
//! account's state cold in the CPU caches, where with one account everything stays in cache. The
//! control, [`inputs_across_engines`], sends the same inputs to as many engines of one account
//! each: what an input costs there is the cost of cold memory alone, without an engine holding
//! the other accounts.

use std::collections::BTreeMap;
use std::rc::Rc;

use serde_json::{json, Value};
use vpp_license_engine::{Input, LicenseType};

use crate::world::{account_policy, token_with_secret, Host, Org, Pages, ACCOUNT};
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

/// The accounts measured: `accounts` locations, synced, each with one device policy covering its
/// devices, in one engine or in one engine each.
struct Fleet {
    hosts: Vec<Host>,
    /// Whether each account has an engine of its own (the control) or all share `hosts[0]`.
    one_engine_each: bool,
    accounts: usize,
}

impl Fleet {
    /// The engine and the id of account `a`.
    fn of(&mut self, a: usize) -> (&mut Host, String) {
        if self.one_engine_each {
            (&mut self.hosts[a], ACCOUNT.to_owned())
        } else {
            (&mut self.hosts[0], if a == 0 { ACCOUNT.to_owned() } else { account_id(a) })
        }
    }

    /// Adds account `a`'s device policy (covering its devices) and runs the engine until idle.
    fn add_policy(&mut self, a: usize) {
        let (host, id) = self.of(a);
        host.input(account_policy(&id, 0, LicenseType::Device, (0..DEVICES_PER_ACCOUNT).map(|d| fleet_serial(a, d))));
        host.run(0, |_| true);
    }
}

/// One engine holding `accounts` synced accounts; the memory each idle account holds.
fn one_engine(accounts: usize) -> (Fleet, Option<f64>) {
    let mut host = Host::new(Rc::new(Pages::build(&location(0))));
    // Host::new added the bench account: it is account 0's location under its own id.
    for a in 1..accounts {
        host.apple.locations.insert(account_id(a), Rc::new(Pages::build(&location(a))));
    }
    let before = alloc::live();
    for a in 1..accounts {
        host.input(Input::AddAccount {
            account_id: account_id(a),
            name: format!("School {a}"),
            token: token_with_secret(&format!("fleet-secret-{a}")),
        });
    }
    host.run(u64::MAX / 4, |h| h.syncs_completed >= accounts);
    let synced = alloc::live();
    // Accounts added after the first (none with one account).
    let per_idle_account = (accounts > 1).then(|| (synced - before.min(synced)) as f64 / (accounts - 1) as f64);
    let mut fleet = Fleet { hosts: vec![host], one_engine_each: false, accounts };
    (0..accounts).for_each(|a| fleet.add_policy(a));
    (fleet, per_idle_account)
}

/// `engines` engines of one synced account each (the control).
fn one_engine_each(engines: usize) -> Fleet {
    let hosts = (0..engines)
        .map(|a| {
            let mut host = Host::new(Rc::new(Pages::build(&location(a))));
            host.sync();
            host
        })
        .collect();
    let mut fleet = Fleet { hosts, one_engine_each: true, accounts: engines };
    (0..engines).for_each(|a| fleet.add_policy(a));
    fleet
}

/// The median and p99 of one input handled and drained, in microseconds, for each kind of input,
/// on an engine holding `accounts` synced accounts; and the memory each idle account holds.
pub fn inputs(accounts: usize) -> Value {
    let (mut fleet, per_idle_account) = one_engine(accounts);
    let mut report = measure(&mut fleet);
    report["accounts"] = accounts.into();
    report["bytesPerIdleAccount"] = per_idle_account.into();
    report
}

/// The same inputs sent to `engines` engines of one account each, spread as over the accounts of
/// [`inputs`]: the cost of an input whose account is cold in the caches, with no other account in
/// its engine.
pub fn inputs_across_engines(engines: usize) -> Value {
    let mut fleet = one_engine_each(engines);
    let mut report = measure(&mut fleet);
    report["engines"] = engines.into();
    report
}

/// The account the `i`-th sample goes to: spread over the fleet.
fn spread(i: usize, accounts: usize) -> usize {
    i * 7919 % accounts
}

fn measure(fleet: &mut Fleet) -> Value {
    let accounts = fleet.accounts;
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

    let timeouts: Vec<f64> = (0..SAMPLES).map(|i| one(fleet.of(spread(i, accounts)).0, Input::Timeout)).collect();
    let untargeted: Vec<f64> = (0..SAMPLES)
        .map(|i| {
            let serial_number = format!("NOPOLICY{i:05}");
            one(
                fleet.of(spread(i, accounts)).0,
                Input::DeviceEnrolled {
                    serial_number,
                    client_user_id: None,
                    shared_ipad: false,
                    enrollment_id: None,
                    user_enrollment: false,
                    platform: None,
                },
            )
        })
        .collect();
    // A re-enrollment (a new enrollment id) of a device an account's policy covers: its license is reported ready again.
    let targeted: Vec<f64> = (0..SAMPLES)
        .map(|i| {
            let a = spread(i, accounts);
            let enrollment_id = Some(format!("re-enrolled-{i}"));
            let serial_number = fleet_serial(a, i % DEVICES_PER_ACCOUNT);
            one(
                fleet.of(a).0,
                Input::DeviceEnrolled {
                    serial_number,
                    client_user_id: None,
                    shared_ipad: false,
                    enrollment_id,
                    user_enrollment: false,
                    platform: None,
                },
            )
        })
        .collect();

    // /status answers: new devices enter some accounts' policies; their associations stay PENDING at the bench Apple.
    let polled: Vec<usize> = (0..SAMPLES.min(accounts)).map(|i| spread(i, accounts)).collect();
    for (i, &a) in polled.iter().enumerate() {
        let (host, id) = fleet.of(a);
        let policy_id = if id == ACCOUNT { crate::world::policy_id(0) } else { format!("{id}-app-0") };
        host.input(Input::UpdatePolicyTargets { policy_id, add: vec![fleet_serial(a, DEVICES_PER_ACCOUNT + i)], remove: Vec::new() });
    }
    let mut polls = Vec::new();
    if fleet.one_engine_each {
        // The engines in turn, one poll each, until there are enough samples.
        let mut turn = 0;
        while polls.len() < SAMPLES {
            poll_answers(fleet.of(polled[turn % polled.len()]).0, 1, &mut polls);
            turn += 1;
        }
    } else {
        poll_answers(&mut fleet.hosts[0], SAMPLES, &mut polls);
    }
    json!({
        "timeout": micros(timeouts),
        "pollAnswer": micros(polls),
        "deviceEnrolledTargeted": micros(targeted),
        "deviceEnrolledUntargeted": micros(untargeted),
    })
}

/// Times `wanted` more answers to the engine's `/status` polls (handled and drained) into `polls`;
/// the other requests are answered untimed. The same events are polled again while they stay
/// PENDING: with few accounts, an hour of simulated time gives enough samples.
fn poll_answers(host: &mut Host, wanted: usize, polls: &mut Vec<f64>) {
    let goal = polls.len() + wanted;
    let end = host.now + 60 * 60_000;
    while polls.len() < goal && host.now < end {
        let at = host.drain();
        let pending = std::mem::take(&mut host.pending);
        if pending.is_empty() {
            host.now = host.now.max(at);
            host.input(Input::Timeout);
            continue;
        }
        for request in pending {
            if request.purpose == "eventStatus" && polls.len() < goal {
                // Apple's answer is made before the timing: the row times the engine, not the bench Apple.
                let (status, body) = host.apple.answer(&request);
                let answer = Input::Response { id: request.id, status, headers: BTreeMap::new(), body };
                polls.push(timed(|| {
                    host.input(answer);
                    host.drain();
                }));
            } else {
                host.answer(&request);
            }
        }
    }
}
