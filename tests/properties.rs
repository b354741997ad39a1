//! Property tests (proptest) through the public API: license batching against random service-config
//! limits, the backoff schedule, and decoding round trips (sToken, `Retry-After`, Apple's pages).
//!
//! Each property states what holds for *every* input of its strategy; proptest shrinks a failure
//! to a minimal case and prints it. `PROPTEST_CASES=<n>` runs more cases than the defaults below.
//!
//! Native only: proptest seeds its generator from OS randomness (getrandom), which does not build
//! for wasm32-unknown-unknown without a JavaScript backend, so Cargo.toml declares it for native
//! targets alone. The code under test is the same on both; the scenario tests cover wasm32.
#![cfg(not(target_arch = "wasm32"))]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, UNIX_EPOCH};

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine as _;
use proptest::prelude::*;
use serde_json::{json, Value};
use support::fake_apple::{make_token, Org};
use support::{app, Harness, START};
use vpp_license_engine::apple::outcome::{classify, retry_after, Outcome};
use vpp_license_engine::time::{parse_http_date, DAY, MINUTE, SECOND};
use vpp_license_engine::token::SToken;
use vpp_license_engine::{
    AppPolicy, AssignmentQuery, BackoffPolicy, Engine, EngineConfig, Event, Input, LicenseType, Output, PricingParam,
};

/// Cases for properties that drive a whole engine against the fake Apple (each syncs an account).
fn engine_cases() -> ProptestConfig {
    ProptestConfig::with_cases(24)
}

/// Cases for properties of pure functions.
fn pure_cases() -> ProptestConfig {
    ProptestConfig::with_cases(256)
}

fn serial(i: usize) -> String {
    format!("SERIAL{i:05}")
}

fn user(i: usize) -> String {
    format!("user-{i}")
}

// ============================================================================ batching

/// Service-config limits small enough that a few dozen targets need several requests.
#[derive(Debug, Clone, Copy)]
struct SmallLimits {
    max_assets: usize,
    max_serial_numbers: usize,
    max_client_user_ids: usize,
    max_revoke_serial_numbers: usize,
}

impl SmallLimits {
    fn json(&self) -> Value {
        json!({"maxAssets": self.max_assets, "maxSerialNumbers": self.max_serial_numbers,
               "maxClientUserIds": self.max_client_user_ids, "maxRevokeSerialNumbers": self.max_revoke_serial_numbers,
               "maxRevokeClientUserIds": 100, "maxUsers": 100, "maxRequestPerSecond": 15})
    }
}

fn small_limits(max_assets: std::ops::RangeInclusive<usize>) -> impl Strategy<Value = SmallLimits> {
    (max_assets, 1usize..=8, 1usize..=8, 1usize..=8).prop_map(|(a, d, u, r)| SmallLimits {
        max_assets: a,
        max_serial_numbers: d,
        max_client_user_ids: u,
        max_revoke_serial_numbers: r,
    })
}

/// The license-relevant content of one associate, disassociate or revoke request.
#[derive(Debug)]
struct SentBatch {
    assets: Vec<String>,
    serials: Vec<String>,
    users: Vec<String>,
}

fn strings(body: &Value, key: &str) -> Vec<String> {
    body[key].as_array().into_iter().flatten().map(|v| v.as_str().expect("a string").to_owned()).collect()
}

fn sent_batches(h: &Harness, purpose: &str) -> Vec<SentBatch> {
    h.requests()
        .into_iter()
        .filter(|(_, r)| r.purpose == purpose)
        .map(|(_, r)| {
            let body: Value = serde_json::from_str(r.body.as_deref().expect("a body")).expect("JSON body");
            let assets = body["assets"].as_array().into_iter().flatten();
            SentBatch {
                assets: assets.map(|a| a["adamId"].as_str().unwrap().to_owned()).collect(),
                serials: strings(&body, "serialNumbers"),
                users: strings(&body, "clientUserIds"),
            }
        })
        .collect()
}

/// An engine with one synced account "a1" whose location has `apps` apps (plenty of licenses) and
/// `users` registered users, Apple announcing `limits`; `devices` enrolled.
fn licensing_harness(apps: usize, devices: usize, users: usize, limits: SmallLimits) -> Harness {
    let mut h = Harness::with_notifications();
    h.apple.limits = limits.json();
    let mut org = Org::generated("PS01", apps, 0, users);
    for asset in &mut org.assets {
        asset["totalCount"] = json!(10_000);
        asset["availableCount"] = json!(10_000);
    }
    let token = h.org("ORG1", org);
    h.add_account("a1", &token);
    h.run_for(MINUTE);
    for i in 0..devices {
        h.input(Input::DeviceEnrolled { serial_number: serial(i), client_user_id: None, shared_ipad: false, enrollment_id: None, user_enrollment: false, platform: None }).unwrap();
    }
    h
}

/// Sets one device policy and one user policy per app, for the targets whose app set contains it.
fn set_policies(h: &mut Harness, apps: usize, devices: &[BTreeSet<usize>], users: &[BTreeSet<usize>]) {
    for a in 0..apps {
        let kinds = [(LicenseType::Device, devices, serial as fn(usize) -> String), (LicenseType::User, users, user)];
        for (kind, sets, name) in kinds {
            let targets = sets.iter().enumerate().filter(|(_, s)| s.contains(&a)).map(|(i, _)| name(i)).collect();
            let policy_id = format!("{kind:?}-{a}");
            let policy = AppPolicy {
                name: policy_id.clone(),
                policy_id,
                account_id: "a1".into(),
                adam_id: app(a),
                pricing_param: PricingParam::Stdq,
                license_type: kind,
                targets,
            };
            h.input(Input::SetPolicy { policy }).unwrap();
        }
    }
}

/// Every (app, target) pair the associate requests asked for, with repetitions.
fn asked_pairs(batches: &[SentBatch]) -> Vec<(String, String)> {
    let mut pairs: Vec<(String, String)> = batches
        .iter()
        .flat_map(|b| b.assets.iter().flat_map(move |a| b.serials.iter().chain(&b.users).map(move |t| (a.clone(), t.clone()))))
        .collect();
    pairs.sort();
    pairs
}

fn app_sets(apps: usize, max_targets: usize) -> impl Strategy<Value = Vec<BTreeSet<usize>>> {
    prop::collection::vec(prop::collection::btree_set(0..apps, 0..=apps), 0..=max_targets)
}

fn assert_within_limits(
    batches: &[SentBatch],
    max_assets: usize,
    max_serials: usize,
    max_users: usize,
) -> Result<(), TestCaseError> {
    for b in batches {
        prop_assert!(b.assets.len() <= max_assets, "{} assets > maxAssets {max_assets}", b.assets.len());
        prop_assert!(b.serials.len() <= max_serials, "{} serial numbers > {max_serials}", b.serials.len());
        prop_assert!(b.users.len() <= max_users, "{} client user ids > {max_users}", b.users.len());
        prop_assert!(!b.serials.is_empty() || !b.users.is_empty(), "a request without targets");
    }
    Ok(())
}

proptest! {
    #![proptest_config(engine_cases())]

    /// Whatever mix of apps devices and users need, and whatever limits Apple announces: no
    /// associate request exceeds `maxAssets`, `maxSerialNumbers` or `maxClientUserIds`; each wanted
    /// license is asked for exactly once and nothing else is; targets share a request only if they
    /// need the same apps; and each group of targets needing the same set S of apps costs
    /// `⌈|S| / maxAssets⌉ × max(⌈devices / maxSerialNumbers⌉, ⌈users / maxClientUserIds⌉)` requests.
    #[test]
    fn associate_requests_respect_the_limits_and_ask_for_each_wanted_license_once(
        (apps, devices, users) in (1usize..=5).prop_flat_map(|apps| (Just(apps), app_sets(apps, 24), app_sets(apps, 24))),
        limits in small_limits(1..=4),
    ) {
        let mut h = licensing_harness(apps, devices.len(), users.len(), limits);
        set_policies(&mut h, apps, &devices, &users);
        h.run_for(2 * MINUTE);

        let batches = sent_batches(&h, "associateAssets");
        assert_within_limits(&batches, limits.max_assets, limits.max_serial_numbers, limits.max_client_user_ids)?;

        let mut wanted: Vec<(String, String)> = Vec::new();
        let mut groups: BTreeMap<&BTreeSet<usize>, (usize, usize)> = BTreeMap::new();
        for (sets, name, is_device) in [(&devices, serial as fn(usize) -> String, true), (&users, user, false)] {
            for (i, set) in sets.iter().enumerate().filter(|(_, s)| !s.is_empty()) {
                wanted.extend(set.iter().map(|a| (app(*a), name(i))));
                let group = groups.entry(set).or_default();
                if is_device { group.0 += 1 } else { group.1 += 1 }
            }
        }
        wanted.sort();
        prop_assert_eq!(asked_pairs(&batches), wanted);

        let set_of = |target: &String| -> BTreeSet<String> {
            let (sets, index) = match target.strip_prefix("SERIAL") {
                Some(n) => (&devices, n.parse::<usize>().unwrap()),
                None => (&users, target.trim_start_matches("user-").parse::<usize>().unwrap()),
            };
            sets[index].iter().map(|a| app(*a)).collect()
        };
        for b in &batches {
            let needs: BTreeSet<BTreeSet<String>> = b.serials.iter().chain(&b.users).map(set_of).collect();
            prop_assert_eq!(needs.len(), 1, "targets needing different apps share a request: {:?}", b);
        }

        let expected: usize = groups
            .iter()
            .map(|(set, (d, u))| {
                set.len().div_ceil(limits.max_assets)
                    * d.div_ceil(limits.max_serial_numbers).max(u.div_ceil(limits.max_client_user_ids))
            })
            .sum();
        prop_assert_eq!(batches.len(), expected);
    }

    /// When every device and user needs the same `k × maxAssets` apps, no plan can do with fewer
    /// requests than the engine sends. The bound, for any plan: each app must reach every device,
    /// at most `maxSerialNumbers` per request, so it appears in ≥ ⌈devices / maxSerialNumbers⌉
    /// requests; a request carries at most `maxAssets` apps; so ≥ ⌈|S| · ⌈devices / maxSerialNumbers⌉ / maxAssets⌉
    /// requests (likewise for users, and the two may share requests).
    #[test]
    fn targets_needing_the_same_apps_take_the_fewest_requests_possible(
        limits in small_limits(1..=4),
        chunks in 1usize..=3,
        devices in 0usize..=30,
        users in 0usize..=30,
    ) {
        let apps = chunks * limits.max_assets;
        let all: BTreeSet<usize> = (0..apps).collect();
        let mut h = licensing_harness(apps, devices, users, limits);
        set_policies(&mut h, apps, &vec![all.clone(); devices], &vec![all; users]);
        h.run_for(2 * MINUTE);

        let per_app = |targets: usize, per_request: usize| (apps * targets.div_ceil(per_request)).div_ceil(limits.max_assets);
        let lower_bound = per_app(devices, limits.max_serial_numbers).max(per_app(users, limits.max_client_user_ids));
        prop_assert_eq!(sent_batches(&h, "associateAssets").len(), lower_bound);
    }

    /// Retiring devices releases their licenses in revoke (or disassociate) requests within
    /// Apple's limits, never more requests than revoking `maxRevokeSerialNumbers` devices at a time
    /// would take, and Apple ends up holding nothing for the retired devices.
    #[test]
    fn releases_of_retired_devices_respect_the_revoke_limits(
        (apps, devices, retired) in (1usize..=4, 1usize..=24).prop_flat_map(|(apps, n)| {
            let devices = prop::collection::vec(prop::collection::btree_set(0..apps, 1..=apps), n);
            (Just(apps), devices, prop::collection::btree_set(0..n, 0..=n))
        }),
        limits in small_limits(1..=4),
    ) {
        let mut h = licensing_harness(apps, devices.len(), 0, limits);
        set_policies(&mut h, apps, &devices, &[]);
        h.run_for(2 * MINUTE);
        let token = h.apple.orgs.keys().next().unwrap().clone();
        let held_before = h.apple.org(&token).assignments.len();
        prop_assert_eq!(held_before, devices.iter().map(BTreeSet::len).sum::<usize>());

        for d in &retired {
            h.input(Input::DeviceRetired { serial_number: serial(*d) }).unwrap();
        }
        h.run_for(2 * MINUTE);

        let revokes = sent_batches(&h, "revokeAssets");
        let disassociates = sent_batches(&h, "disassociateAssets");
        assert_within_limits(&revokes, 0, limits.max_revoke_serial_numbers, 100)?;
        assert_within_limits(&disassociates, limits.max_assets, limits.max_serial_numbers, limits.max_client_user_ids)?;
        prop_assert!(revokes.len() + disassociates.len() <= retired.len().div_ceil(limits.max_revoke_serial_numbers));
        let retired_serials: BTreeSet<String> = retired.iter().map(|d| serial(*d)).collect();
        let still_held = h.apple.org(&token).assignments.iter().filter(|(_, a)| {
            a["serialNumber"].as_str().is_some_and(|s| retired_serials.contains(s))
        }).count();
        prop_assert_eq!(still_held, 0);
    }
}

// ============================================================================ backoff

/// A backoff policy as configured: base ≥ 1 s (the config's minimum), cap ≥ base, up to 30 days.
fn backoff_policy() -> impl Strategy<Value = BackoffPolicy> {
    (SECOND..=10 * MINUTE).prop_flat_map(|base| (Just(base), base..=30 * DAY)).prop_map(|(base, max)| BackoffPolicy { base, max })
}

proptest! {
    #![proptest_config(pure_cases())]

    /// The n-th consecutive failure waits between half its ceiling and its ceiling.
    #[test]
    fn each_delay_lies_between_half_the_ceiling_and_the_ceiling(
        policy in backoff_policy(), failures in 1u32..=200, seed in any::<u64>(),
    ) {
        let ceiling = policy.ceiling(failures);
        let delay = policy.delay(failures, &mut fastrand::Rng::with_seed(seed));
        prop_assert!(delay >= ceiling / 2 && delay <= ceiling, "delay {delay} outside [{}, {ceiling}]", ceiling / 2);
    }

    /// The ceiling starts at the base, doubles with each failure until it reaches the cap, and then
    /// stays at the cap (no overflow, however many failures).
    #[test]
    fn the_ceiling_doubles_from_the_base_then_stays_at_the_cap(policy in backoff_policy()) {
        prop_assert_eq!(policy.ceiling(1), policy.base);
        let mut previous = policy.ceiling(1);
        let mut capped_at = None;
        for n in 2..=300u32 {
            let ceiling = policy.ceiling(n);
            prop_assert_eq!(ceiling, previous.saturating_mul(2).min(policy.max), "failure {}", n);
            if ceiling == policy.max && capped_at.is_none() {
                capped_at = Some(n);
            }
            previous = ceiling;
        }
        prop_assert_eq!(policy.ceiling(u32::MAX), policy.max);
        // The cap is reached after the fewest doublings of the base that reach it.
        let doublings = (0u32..).find(|k| policy.base << k >= policy.max).unwrap();
        prop_assert_eq!(capped_at.unwrap_or(1), doublings + 1);
    }

    /// The same seed gives the same sequence of delays.
    #[test]
    fn delays_are_deterministic_for_a_seed(policy in backoff_policy(), seed in any::<u64>()) {
        let schedule = |seed: u64| {
            let mut rng = fastrand::Rng::with_seed(seed);
            (1..=20).map(|n| policy.delay(n, &mut rng)).collect::<Vec<_>>()
        };
        prop_assert_eq!(schedule(seed), schedule(seed));
    }
}

/// Drives an engine whose every service-config request fails with HTTP 500, `failures` times;
/// returns each retry delay the engine chose (from its `backoff` events).
fn service_config_retry_delays(config: EngineConfig, failures: usize) -> Vec<u64> {
    let mut now = START;
    let mut engine = Engine::new(config, now).unwrap();
    let mut delays = Vec::new();
    while delays.len() < failures {
        match engine.poll_output(now) {
            Output::Request(request) => {
                assert_eq!(request.purpose, "serviceConfig");
                let answer = Input::Response { id: request.id, status: 500, headers: BTreeMap::new(), body: String::new() };
                engine.handle_input(answer, now).unwrap();
            }
            Output::Event { event: Event::Backoff { until, .. } } => delays.push(until - now),
            Output::Event { .. } | Output::Persist { .. } => {}
            Output::Timeout { at } => now = at,
        }
    }
    delays
}

proptest! {
    #![proptest_config(engine_cases())]

    /// Through the engine: consecutive failures are retried after delays within
    /// [ceiling/2, ceiling] of the configured policy, and the same seed replays the same schedule.
    #[test]
    fn the_engine_retries_on_the_configured_schedule_reproducibly(policy in backoff_policy(), seed in any::<u64>()) {
        let config = EngineConfig { seed, backoff_base_ms: policy.base, backoff_max_ms: policy.max, ..support::config() };
        let delays = service_config_retry_delays(config.clone(), 12);
        for (n, delay) in (1u32..).zip(&delays) {
            let ceiling = policy.ceiling(n);
            prop_assert!(*delay >= ceiling / 2 && *delay <= ceiling, "failure {n}: {delay} outside [{}, {ceiling}]", ceiling / 2);
        }
        prop_assert_eq!(service_config_retry_delays(config, 12), delays);
    }
}

// ============================================================================ decoding round trips

/// Non-blank text (the sToken refuses blank fields), including non-ASCII.
fn non_blank() -> impl Strategy<Value = String> {
    "[^\\x00]{0,20}[\\p{L}\\p{N}][^\\x00]{0,20}"
}

/// An `expDate` as Apple writes it (`+hhmm` offset) or as RFC 3339 (`Z`, `+hh:mm`), and the
/// instant it denotes in Unix ms.
fn exp_date() -> impl Strategy<Value = (String, u64)> {
    // 1970-01-02 … 9999-12-30, so that any offset keeps the local date within four-digit years.
    (86_400i64..=253_402_128_000, -(23 * 60 + 59)..=(23 * 60 + 59i32), 0..3u8).prop_map(|(seconds, offset_minutes, style)| {
        let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).unwrap();
        let local = time::OffsetDateTime::from_unix_timestamp(seconds).unwrap().to_offset(offset);
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let (hh, mm) = (offset_minutes.abs() / 60, offset_minutes.abs() % 60);
        let zone = match style {
            0 => format!("{sign}{hh:02}{mm:02}"),
            1 => format!("{sign}{hh:02}:{mm:02}"),
            _ if offset_minutes == 0 => "Z".to_owned(),
            _ => format!("{sign}{hh:02}:{mm:02}"),
        };
        let text = format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}{zone}",
            local.year(), local.month() as u8, local.day(), local.hour(), local.minute(), local.second()
        );
        (text, seconds as u64 * SECOND)
    })
}

/// Inserts line breaks and spaces at the given positions (as copying a token out of a mail does).
fn with_whitespace(text: &str, breaks: &[(usize, u8)]) -> String {
    let mut out: Vec<char> = text.chars().collect();
    for (at, kind) in breaks {
        let ws = [' ', '\n', '\r', '\t'][usize::from(*kind % 4)];
        out.insert(at % (out.len() + 1), ws);
    }
    out.into_iter().collect()
}

proptest! {
    #![proptest_config(pure_cases())]

    /// base64 of the JSON `{token, expDate, orgName}` decodes back to the same organization and
    /// expiry, padded or not, whatever whitespace was pasted into it; the bearer is the text without
    /// the whitespace.
    #[test]
    fn an_encoded_stoken_decodes_to_its_fields(
        secret in non_blank(),
        org_name in non_blank(),
        (exp_text, expires_at) in exp_date(),
        padded in any::<bool>(),
        breaks in prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
    ) {
        let json = json!({"token": secret, "expDate": exp_text, "orgName": org_name}).to_string();
        let encoded = if padded { STANDARD.encode(&json) } else { STANDARD_NO_PAD.encode(&json) };
        let pasted = with_whitespace(&encoded, &breaks);
        let token = SToken::decode(&pasted).map_err(|e| TestCaseError::fail(format!("{}: {e}", e.code())))?;
        prop_assert_eq!(&token.org_name, &org_name);
        prop_assert_eq!(token.expires_at, expires_at);
        // Compared without printing: the bearer is a credential.
        prop_assert!(token.bearer().expose() == encoded, "the bearer is not the token text");
    }

    /// `Retry-After: <seconds>` (with any surrounding spaces) is a deadline that many seconds
    /// after the answer, capped at the latest time JavaScript represents (2^53 - 1 ms); `0` is no
    /// deadline at all.
    #[test]
    fn retry_after_seconds_give_a_deadline_that_many_seconds_later(
        now in 0u64..=(1 << 50),
        seconds in prop_oneof![0u64..=10_000_000, any::<u64>()],
        pad in "[ \t]{0,2}",
    ) {
        let headers = BTreeMap::from([("retry-after".to_owned(), format!("{pad}{seconds}{pad}"))]);
        let expected = (seconds > 0).then_some(now.saturating_add(seconds.saturating_mul(SECOND)).min((1 << 53) - 1));
        prop_assert_eq!(retry_after(&headers, now), expected);
        let outcome = classify(503, &headers, "", now).outcome;
        match expected {
            Some(until) => prop_assert!(matches!(outcome, Outcome::RetryAfter { until: u, .. } if u == until), "{:?}", outcome),
            None => prop_assert!(matches!(outcome, Outcome::Transient { .. }), "{:?}", outcome),
        }
    }

    /// An HTTP-date in any of the three forms HTTP allows parses back to its second, and as
    /// `Retry-After` it is a deadline exactly when it lies after the answer.
    #[test]
    fn retry_after_http_dates_round_trip(
        seconds in 0u64..=253_402_300_799, form in 0..3u8, now in 0u64..=253_402_300_799_000,
    ) {
        let at = UNIX_EPOCH + Duration::from_secs(seconds);
        let t = time::OffsetDateTime::from_unix_timestamp(seconds as i64).unwrap();
        let weekday = t.weekday().to_string();
        let month = &t.month().to_string()[..3];
        let (day, hh, mm, ss) = (t.day(), t.hour(), t.minute(), t.second());
        let (text, expected): (String, u64) = match form {
            0 => (httpdate::fmt_http_date(at), seconds * SECOND),
            // asctime: `Sun Nov  6 08:49:37 1994`
            1 => (format!("{} {month} {day:>2} {hh:02}:{mm:02}:{ss:02} {}", &weekday[..3], t.year()), seconds * SECOND),
            // RFC 850: `Sunday, 06-Nov-94 08:49:37 GMT`; its two-digit years stand for 1970–2069.
            _ if (1970..2070).contains(&t.year()) => {
                (format!("{weekday}, {day:02}-{month}-{:02} {hh:02}:{mm:02}:{ss:02} GMT", t.year() % 100), seconds * SECOND)
            }
            _ => (httpdate::fmt_http_date(at), seconds * SECOND),
        };
        prop_assert_eq!(parse_http_date(&text), Some(expected), "{}", text);
        let headers = BTreeMap::from([("retry-after".to_owned(), text)]);
        prop_assert_eq!(retry_after(&headers, now), (expected > now).then_some(expected));
    }

    /// The HTTP-date parser of `src/time.rs` (by hand: `httpdate` would add 6.8 KB to the wasm, see
    /// ARCHITECTURE.md) reads what `httpdate`, the well-kept reader, reads: a date in any of the three forms
    /// after up to three random edits (a character replaced, inserted or removed). Left out are the two
    /// places where httpdate is more lenient: it trims surrounding whitespace (the engine trims `Retry-After`
    /// itself) and ignores the character between an RFC 850 date and its time.
    #[test]
    fn http_dates_read_as_httpdate_reads_them(
        seconds in 0u64..=253_402_300_799,
        form in 0..4usize,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0..3u8, any::<prop::sample::Index>()), 0..4),
    ) {
        const CHARACTERS: &[u8] = b"0123456789 ,:-ADFGJMNOSTWZacdeghilnoprstuvy\t";
        let t = time::OffsetDateTime::from_unix_timestamp(seconds as i64).unwrap();
        let (weekday, month) = (t.weekday().to_string(), t.month().to_string());
        let (day, hh, mm, ss, year) = (t.day(), t.hour(), t.minute(), t.second(), t.year());
        let mut text = match form {
            0 => httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(seconds)),
            1 => format!("{} {} {day:>2} {hh:02}:{mm:02}:{ss:02} {year}", &weekday[..3], &month[..3]),
            2 => format!("{} {} {day:02} {hh:02}:{mm:02}:{ss:02} {year}", &weekday[..3], &month[..3]),
            _ => format!("{weekday}, {day:02}-{}-{:02} {hh:02}:{mm:02}:{ss:02} GMT", &month[..3], year % 100),
        }
        .into_bytes();
        for (at, edit, character) in edits {
            let character = *character.get(CHARACTERS);
            match edit {
                0 if !text.is_empty() => { let i = at.index(text.len()); text[i] = character; }
                1 => { let i = at.index(text.len() + 1); text.insert(i, character); }
                _ if !text.is_empty() => { text.remove(at.index(text.len())); }
                _ => {}
            }
        }
        let text = String::from_utf8(text).unwrap();
        let rfc850_separator = text.split_once(", ").is_some_and(|(_, rest)| text.len() != 29 && rest.len() == 22 && rest.as_bytes()[9] != b' ');
        prop_assume!(text.trim() == text && !rfc850_separator);
        let by_httpdate = httpdate::parse_http_date(&text).ok().map(|at| at.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64);
        prop_assert_eq!(parse_http_date(&text), by_httpdate, "{:?}", text);
    }
}

proptest! {
    #![proptest_config(engine_cases())]

    /// Through the engine: a 503 whose `Retry-After` header (any case) names a deadline becomes a
    /// `backoff` event with exactly that deadline.
    #[test]
    fn the_engine_reports_the_retry_after_deadline_it_was_given(
        seconds in 1u64..=1_000_000, as_date in any::<bool>(), name in "[rR][eE][tT][rR][yY]-[aA][fF][tT][eE][rR]",
    ) {
        let mut engine = Engine::new(support::config(), START).unwrap();
        let Output::Request(request) = engine.poll_output(START) else { panic!("the service config request comes first") };
        let deadline = START + seconds * SECOND;
        let value = match as_date {
            true => httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_millis(deadline)),
            false => seconds.to_string(),
        };
        let headers = BTreeMap::from([(name, value)]);
        engine.handle_input(Input::Response { id: request.id, status: 503, headers, body: String::new() }, START).unwrap();
        let until = std::iter::from_fn(|| match engine.poll_output(START) {
            Output::Timeout { .. } => None,
            output => Some(output),
        })
        .find_map(|o| match o {
            Output::Event { event: Event::Backoff { until, .. } } => Some(until),
            _ => None,
        });
        prop_assert_eq!(until, Some(deadline));
    }

    /// An sToken added to the engine shows the organization and expiry it encodes.
    #[test]
    fn an_added_token_shows_its_organization_and_expiry(org_name in non_blank(), days in 1u64..=3_650) {
        let mut engine = Engine::new(support::config(), START).unwrap();
        let expires_at = START + days * DAY;
        let token = make_token(&org_name, "secret", expires_at);
        engine.handle_input(Input::AddAccount { account_id: "a1".into(), name: "A".into(), token }, START).unwrap();
        let view = engine.accounts().pop().unwrap();
        prop_assert_eq!(view.org_name, org_name);
        prop_assert_eq!(view.token_expires_at, expires_at);
    }
}

/// One asset of a random location, with counts Apple would report.
#[derive(Debug, Clone)]
struct RandomAsset {
    adam_id: u64,
    plus: bool,
    book: bool,
    total: i64,
    retired: i64,
    device_assignable: bool,
    revocable: bool,
    /// The targets holding a license: (is a user, index).
    holders: BTreeSet<(bool, usize)>,
    numeric_id: bool,
}

fn random_assets() -> impl Strategy<Value = Vec<RandomAsset>> {
    prop::collection::btree_map(
        (1u64..=99_999_999_999, any::<bool>()),
        (
            any::<bool>(),
            0i64..=1_000_000,
            0i64..=50,
            any::<bool>(),
            any::<bool>(),
            prop::collection::btree_set((any::<bool>(), 0usize..20), 0..12),
            any::<bool>(),
        ),
        1..=12,
    )
    .prop_map(|assets| {
        assets
            .into_iter()
            .map(|((adam_id, plus), (book, extra, retired, device_assignable, revocable, holders, numeric_id))| RandomAsset {
                adam_id,
                plus,
                book,
                total: holders.len() as i64 + extra,
                retired,
                device_assignable,
                revocable,
                holders,
                numeric_id,
            })
            .collect()
    })
}

impl RandomAsset {
    fn pricing(&self) -> &'static str {
        if self.plus { "PLUS" } else { "STDQ" }
    }

    /// The record as `GET /assets` returns it (Apple documents string ids; numbers are accepted).
    fn json(&self) -> Value {
        let assigned = self.holders.len() as i64;
        let id = if self.numeric_id { json!(self.adam_id) } else { json!(self.adam_id.to_string()) };
        json!({"adamId": id, "pricingParam": self.pricing(), "productType": if self.book { "Book" } else { "App" },
               "totalCount": self.total, "assignedCount": assigned, "availableCount": self.total - assigned,
               "retiredCount": self.retired, "deviceAssignable": self.device_assignable, "revocable": self.revocable,
               "supportedPlatforms": ["iOS", "macOS"]})
    }

    fn assignments(&self) -> Vec<Value> {
        self.holders
            .iter()
            .map(|(is_user, i)| {
                let mut record = json!({"adamId": self.adam_id.to_string(), "pricingParam": self.pricing()});
                match is_user {
                    true => record["clientUserId"] = json!(user(*i)),
                    false => record["serialNumber"] = json!(serial(*i)),
                }
                record
            })
            .collect()
    }
}

proptest! {
    #![proptest_config(engine_cases())]

    /// Pages of assets and assignments built from random data, served in random page sizes, sync
    /// into exactly the counts and assignments they describe, and an engine restored from what
    /// the sync stored holds the same.
    #[test]
    fn apple_pages_from_random_data_sync_to_the_same_counts_and_restore_from_the_store_unchanged(
        assets in random_assets(),
        page_size in 1usize..=7,
    ) {
        let mut h = Harness::new();
        h.apple.page_size = page_size;
        let mut org = Org::generated("PS01", 0, 0, 20);
        org.assets = assets.iter().map(RandomAsset::json).collect();
        org.assignments = assets.iter().flat_map(RandomAsset::assignments).map(|a| (1, a)).collect();
        let token = h.org("ORG1", org);
        h.add_account("a1", &token);
        h.run_for(MINUTE);

        let mut synced: Vec<Value> = h.engine.app_counts("a1").unwrap().iter().map(|c| json!({
            "adamId": c.adam_id, "pricingParam": c.pricing_param, "productType": c.product_type,
            "totalCount": c.total_count, "assignedCount": c.assigned_count, "availableCount": c.available_count,
            "retiredCount": c.retired_count, "deviceAssignable": c.device_assignable, "revocable": c.revocable,
        })).collect();
        let mut sent: Vec<Value> = assets.iter().map(|a| {
            let mut record = a.json();
            record["adamId"] = json!(a.adam_id.to_string());
            record.as_object_mut().unwrap().remove("supportedPlatforms");
            record
        }).collect();
        let key = |v: &Value| format!("{}{}", v["adamId"], v["pricingParam"]);
        synced.sort_by_key(key);
        sent.sort_by_key(key);
        prop_assert_eq!(synced, sent);

        let page = h.engine.assignments("a1", &AssignmentQuery { limit: 10_000, ..AssignmentQuery::default() }).unwrap();
        let mut synced: Vec<Value> = page.items.iter().map(|a| json!({
            "adamId": a.adam_id, "pricingParam": a.pricing_param,
            "serialNumber": a.serial_number, "clientUserId": a.client_user_id,
        })).collect();
        let mut sent: Vec<Value> = assets.iter().flat_map(RandomAsset::assignments).map(|mut a| {
            for key in ["serialNumber", "clientUserId"] {
                a.as_object_mut().unwrap().entry(key).or_insert(Value::Null);
            }
            a
        }).collect();
        let key = |v: &Value| v.to_string();
        synced.sort_by_key(key);
        sent.sort_by_key(key);
        prop_assert_eq!(page.total, sent.len());
        prop_assert_eq!(synced, sent);

        let restored = Engine::restore(h.engine_config(), h.stored_records(), h.now).unwrap();
        prop_assert_eq!(restored.app_counts("a1").unwrap(), h.engine.app_counts("a1").unwrap());
        let all = AssignmentQuery { limit: 10_000, ..AssignmentQuery::default() };
        let sorted = |engine: &Engine| {
            let mut items = engine.assignments("a1", &all).unwrap().items;
            items.sort_by_key(|a| serde_json::to_string(a).unwrap());
            items
        };
        prop_assert_eq!(sorted(&restored), sorted(&h.engine));
    }
}
