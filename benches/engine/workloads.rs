//! The benchmarks, each on its own fresh engine(s). `scripts/bench/wasm.mjs` runs the same
//! steps through the wasm package; keep the two in step.

use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use serde_json::{json, Value};
use vpp_license_engine::{AssignmentQuery, Input, LicenseType};

use crate::world::{
    config, device_policy, policy, policy_id, serial, user_id, Host, Org, Pages, Scale, ACCOUNT, LOCATION_UID, NOTIFICATION_TOKEN,
};
use crate::{alloc, measured, medians, summary, timed};

/// Apple's documented limits, which the bench Apple's service config sends.
const MAX_ASSETS: usize = 25;
const MAX_SERIAL_NUMBERS: usize = 1_000;
const MAX_CLIENT_USER_IDS: usize = 1_000;
const MAX_REVOKE_SERIAL_NUMBERS: usize = 100;

/// Simulated time allowed for a workload's requests to go out (the rate limit spreads them).
const SEND_WINDOW_MS: u64 = 120_000;
/// Simulated time the single-input samples may span (less than the 30-minute delta sync).
const SAMPLE_WINDOW_MS: u64 = 10 * 60_000;

/// Answers the requests issued before the first page (service config, client config), so that
/// what follows is the sync itself.
fn ready_to_sync(host: &mut Host) {
    host.drain();
    for request in std::mem::take(&mut host.pending) {
        host.answer(&request);
    }
}

/// Policies wanting exactly what every device holds, then Clean Up adopts it all as ours.
fn load(host: &mut Host, scale: &Scale) {
    for (a, devices) in scale.holders().iter().enumerate() {
        host.input(device_policy(a, devices.iter().map(|d| serial(*d))));
    }
    host.input(Input::CleanUp { account_id: ACCOUNT.into() });
    settle(host);
}

/// Drains and answers until the engine has nothing to do now.
fn settle(host: &mut Host) {
    host.run(0, |_| true);
}

/// (1) First page to sync complete, `reps` times after one warm-up.
pub fn ingest(pages: &Rc<Pages>, reps: usize) -> Value {
    let mut runs = Vec::new();
    for rep in 0..=reps {
        let mut host = Host::new(pages.clone());
        ready_to_sync(&mut host);
        let run = measured(|| host.sync());
        if rep > 0 {
            runs.push(run);
        }
    }
    medians(&runs)
}

/// (4) Heap growth of a full sync, and of policies plus provenance on top.
pub fn memory(scale: &Scale, pages: &Rc<Pages>) -> Value {
    let n = scale.assignments() as f64;
    let mut host = Host::new(pages.clone());
    host.drain();
    alloc::reset_peak();
    let before = alloc::live();
    host.sync();
    let synced = alloc::live();
    let synced_peak = alloc::peak();
    load(&mut host, scale);
    let loaded = alloc::live();
    let loaded_peak = alloc::peak();
    let per = |bytes: usize| (bytes - before) as f64 / n;
    json!({
        "synced": {"bytesPerAssignment": per(synced), "peakBytesPerAssignment": per(synced_peak)},
        "loaded": {"bytesPerAssignment": per(loaded), "peakBytesPerAssignment": per(loaded_peak)},
    })
}

/// Submissions between two snapshots, by purpose.
fn submitted_since(host: &Host, before: &BTreeMap<&'static str, usize>) -> BTreeMap<&'static str, usize> {
    host.submissions().into_iter().map(|(p, n)| (p, n - before.get(p).copied().unwrap_or(0))).filter(|(_, n)| *n > 0).collect()
}

fn requests_row(name: &str, issued: BTreeMap<&'static str, usize>, lower_bound: usize, per_install: usize) -> Value {
    json!({"name": name, "issued": issued.values().sum::<usize>(), "byPurpose": issued,
           "lowerBound": lower_bound, "perInstall": per_install})
}

/// Targets enter or leave app `a`'s policy: the time to the drained outputs, and the submissions
/// once the requests had time to go out.
fn scope_change(host: &mut Host, a: usize, add: Vec<String>, remove: Vec<String>) -> (Value, BTreeMap<&'static str, usize>) {
    let before = host.submissions();
    let time = measured(|| {
        host.input(Input::UpdatePolicyTargets { policy_id: policy_id(a), add, remove });
        host.drain();
    });
    host.run(SEND_WINDOW_MS, |_| false);
    (time, submitted_since(host, &before))
}

/// Previews of a scope change of app `a` (3 runs, medians; the input is built outside the timing),
/// with the figures the preview reported.
fn preview(host: &mut Host, a: usize, add: Vec<String>, remove: Vec<String>) -> Value {
    let mut runs = Vec::new();
    let mut totals = None;
    for _ in 0..3 {
        let inputs = vec![Input::UpdatePolicyTargets { policy_id: policy_id(a), add: add.clone(), remove: remove.clone() }];
        runs.push(measured(|| totals = Some(host.engine.preview(inputs, host.now).expect("the engine previews it").totals)));
    }
    let mut time = medians(&runs);
    time["figures"] = json!(totals);
    time
}

/// (2) and (3) on one loaded engine: the 50k scope change (leave), Reconcile, a 50k scope
/// change (enter), then single inputs. Returns (plan, inputs, request rows).
pub fn planning_and_inputs(scale: &Scale, pages: &Rc<Pages>) -> (Value, Value, Vec<Value>) {
    let mut host = Host::new(pages.clone());
    host.sync();
    load(&mut host, scale);
    let s = scale.scope_change;

    let leaving: Vec<String> = (0..s).map(serial).collect();
    let preview_leave = preview(&mut host, 0, Vec::new(), leaving.clone());
    let (leave, leave_requests) = scope_change(&mut host, 0, Vec::new(), leaving);

    let mut reconcile = Vec::new();
    for _ in 0..3 {
        reconcile.push(measured(|| {
            host.input(Input::Reconcile);
            // The whole-account plan runs when the coalescing window closes: simulated time runs on
            // to its end (the /status polls due meanwhile are answered on the way: microseconds).
            host.run(config().coalesce_ms, |_| false);
        }));
        settle(&mut host);
    }

    let entering: Vec<String> = (0..scale.devices).filter(|d| !scale.apps_of(*d).any(|a| a == 1)).take(s).map(serial).collect();
    let preview_enter = preview(&mut host, 1, entering.clone(), Vec::new());
    let (enter, enter_requests) = scope_change(&mut host, 1, entering, Vec::new());

    let plan = json!({"scopeLeave": leave, "reconcile": medians(&reconcile), "scopeEnter": enter,
                      "previewLeave": preview_leave, "previewEnter": preview_enter});
    let rows = vec![
        requests_row(&format!("{} devices leave one app's scope", thousands(s)), leave_requests, s.div_ceil(MAX_SERIAL_NUMBERS), s),
        requests_row(&format!("{} devices enter one app's scope", thousands(s)), enter_requests, s.div_ceil(MAX_SERIAL_NUMBERS), s),
    ];
    let input = single_inputs(&mut host);
    (plan, input, rows)
}

/// `50000` → `"50,000"`, as the row names read.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Samples in seconds → their summary in microseconds.
fn micros(mut samples: Vec<f64>) -> Value {
    samples.iter_mut().for_each(|s| *s *= 1e6);
    summary(&mut samples)
}

/// (3) One input handled and drained, in microseconds.
fn single_inputs(host: &mut Host) -> Value {

    let mut timeouts = Vec::new();
    for _ in 0..1_000 {
        timeouts.push(timed(|| {
            host.input(Input::Timeout);
            host.drain();
        }));
        settle(host);
    }

    let mut polls = Vec::new();
    let end = host.now + SAMPLE_WINDOW_MS;
    while polls.len() < 1_000 && host.now < end {
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

    let mut enrolled = Vec::new();
    let budget = std::time::Instant::now();
    for d in 0.. {
        if enrolled.len() >= 3 && (enrolled.len() >= 50 || budget.elapsed().as_secs_f64() > 5.0) {
            break;
        }
        enrolled.push(timed(|| {
            // A re-enrollment (a new enrollment id): its licenses are reported ready again.
            let enrollment_id = Some(format!("re-enrolled-{d}"));
            host.input(Input::DeviceEnrolled { serial_number: serial(d), client_user_id: None, shared_ipad: false, enrollment_id, user_enrollment: false, platform: None });
            host.drain();
        }));
        settle(host);
    }

    json!({"timeout": micros(timeouts), "pollAnswer": micros(polls), "deviceEnrolled": micros(enrolled),
           "notification100": notifications_of_100(host)})
}

/// Issue 17's notification floods: one `ASSET_MANAGEMENT` notification confirming 100 devices of an
/// association still pending at Apple, handled and drained, in microseconds (up to 50 of them,
/// each a new notification for devices not confirmed yet).
fn notifications_of_100(host: &mut Host) -> Value {
    let pending: BTreeSet<String> = host.engine.pending_operations(ACCOUNT).expect("the account exists").into_iter().filter_map(|op| op.event_id).collect();
    let mut notifications = Vec::new();
    for (event_id, body) in host.apple.associations.iter().filter(|(id, _)| pending.contains(id)) {
        let body: Value = serde_json::from_str(body).expect("an association's body is JSON");
        let assets = body["assets"].as_array().cloned().unwrap_or_default();
        let assignments: Vec<Value> = body["serialNumbers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|serial| assets.iter().map(move |a| json!({"adamId": a["adamId"], "pricingParam": a["pricingParam"], "serialNumber": serial})))
            .collect();
        for chunk in assignments.chunks_exact(100).take(50 - notifications.len().min(50)) {
            let notification = json!({"eventId": event_id, "result": "SUCCESS", "type": "ASSOCIATE", "assignments": chunk});
            let id = format!("bench-notification-{}", notifications.len());
            notifications.push(json!({"notificationId": id, "notificationType": "ASSET_MANAGEMENT", "notification": notification, "uId": LOCATION_UID}).to_string());
        }
    }
    let authorization = format!("Bearer {NOTIFICATION_TOKEN}");
    let first = notifications.first().map(|body| {
        let assignment = serde_json::from_str::<Value>(body).expect("JSON")["notification"]["assignments"][0].clone();
        AssignmentQuery { adam_id: assignment["adamId"].as_str().map(str::to_owned), serial_number: assignment["serialNumber"].as_str().map(str::to_owned), ..AssignmentQuery::default() }
    });
    let held = |host: &Host, query: &AssignmentQuery| host.engine.assignments(ACCOUNT, query).expect("the account exists").total;
    let before = first.as_ref().map(|q| held(host, q));
    let mut samples = Vec::new();
    for body in notifications {
        samples.push(timed(|| {
            let status = host.engine.handle_notification(ACCOUNT, Some(&authorization), &body, host.now);
            assert_eq!(status, 200, "the engine accepts the notification");
            host.drain();
        }));
        settle(host);
    }
    if let (Some(query), Some(before)) = (&first, before) {
        assert_eq!((before, held(host, query)), (0, 1), "the notification confirmed its devices' licenses");
    }
    micros(samples)
}

/// Submissions one workload causes on a freshly synced engine: `setup` runs first (not
/// counted), then `act`, then the requests have `SEND_WINDOW_MS` to go out.
fn count(org: Org, setup: impl FnOnce(&mut Host), act: impl FnOnce(&mut Host)) -> BTreeMap<&'static str, usize> {
    let mut host = Host::new(Rc::new(Pages::build(&org)));
    host.sync();
    setup(&mut host);
    settle(&mut host);
    let before = host.submissions();
    act(&mut host);
    host.run(SEND_WINDOW_MS, |_| false);
    submitted_since(&host, &before)
}

/// (6) Requests for the standard workloads, against the lower bound from the limits.
pub fn request_counts() -> Vec<Value> {
    let devices = |n: usize| (0..n).map(serial).collect::<Vec<_>>();
    let users = |n: usize| (0..n).map(user_id).collect::<Vec<_>>();
    let mut rows = Vec::new();

    let issued = count(Org::empty(1, 10_000, 0), |_| {}, |h| h.input(device_policy(0, devices(2_500))));
    rows.push(requests_row("1 app → 2,500 devices", issued, 1usize.div_ceil(MAX_ASSETS) * 2_500usize.div_ceil(MAX_SERIAL_NUMBERS), 2_500));

    let issued = count(Org::empty(30, 10_000, 0), |_| {}, |h| {
        for a in 0..30 {
            h.input(device_policy(a, devices(1_000)));
        }
    });
    rows.push(requests_row("30 apps → 1,000 devices", issued, 30usize.div_ceil(MAX_ASSETS) * 1_000usize.div_ceil(MAX_SERIAL_NUMBERS), 30_000));

    // 250 devices holding 3 of 30 apps each (30 different sets), all ours; then all retire.
    let held = |d: usize| (0..3).map(move |k| (d + k) % 30);
    let mut org = Org::empty(30, 10_000, 0);
    org.assignments = (0..250).flat_map(|d| held(d).map(move |a| (a, serial(d)))).collect();
    let issued = count(
        org,
        |h| {
            for a in 0..30 {
                h.input(device_policy(a, (0..250).filter(|d| held(*d).any(|x| x == a)).map(serial)));
            }
            h.input(Input::CleanUp { account_id: ACCOUNT.into() });
        },
        |h| {
            for d in 0..250 {
                h.input(Input::DeviceRetired { serial_number: serial(d) });
            }
        },
    );
    rows.push(requests_row("revoke 250 devices (3 of 30 apps each)", issued, 250usize.div_ceil(MAX_REVOKE_SERIAL_NUMBERS), 750));

    let issued = count(Org::empty(30, 10_000, 2_500), |_| {}, |h| {
        for a in 0..30 {
            h.input(policy(a, LicenseType::User, users(2_500)));
        }
    });
    rows.push(requests_row("30 apps → 2,500 users", issued, 30usize.div_ceil(MAX_ASSETS) * 2_500usize.div_ceil(MAX_CLIENT_USER_IDS), 75_000));
    rows
}
