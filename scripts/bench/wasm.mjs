// The benchmarks through the built wasm package in Node: the same steps as benches/engine/workloads.rs.
//   node scripts/bench/wasm.mjs --pkg DIR --part main|memory|fleet [--only ingest|plan|requests] [--quick] --out FILE
// `memory` runs alone in its process: wasm linear memory only grows, so earlier work would hide the figure;
// `fleet` too (one input on an engine of many accounts, scripts/bench/fleet.mjs).
// The package's web glue is loaded with initSync (same wasm as the Node entry) because it hands back
// the wasm exports, whose `memory` the memory figure reads.
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import {
  ACCOUNT, Host, LOCATION_UID, NOTIFICATION_TOKEN, SCALES, assignmentCount, buildPages, devicePolicy, districtOrg, emptyOrg, holders,
  appsOf, config, policy, policyId, range, serial, userId,
} from './world.mjs';
import { fleetInputs, fleetInputsAcrossEngines } from './fleet.mjs';

const MAX_ASSETS = 25;
const MAX_SERIAL_NUMBERS = 1_000;
const MAX_CLIENT_USER_IDS = 1_000;
const MAX_REVOKE_SERIAL_NUMBERS = 100;
const SEND_WINDOW_MS = 120_000;
const SAMPLE_WINDOW_MS = 10 * 60_000;

const args = process.argv.slice(2);
const option = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const quick = args.includes('--quick');
const part = option('--part') ?? 'main';
const pkg = resolve(option('--pkg') ?? 'pkg');
const out = option('--out');

const glue = await import(pathToFileURL(join(pkg, 'vpp_license_engine.js')).href);
const wasm = glue.initSync({ module: readFileSync(join(pkg, 'vpp_license_engine_bg.wasm')) });
const { Engine } = glue;
const scale = quick ? SCALES.quick : SCALES.full;
const log = (text) => process.stderr.write(`wasm: ${text}\n`);

/** Seconds `f` took. */
function timed(f) {
  const start = performance.now();
  f();
  return (performance.now() - start) / 1000;
}

/** CPU seconds this thread has run (Linux), if known: unlike wall time, it does not grow when other processes take the cores. */
function threadCpu() {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e9;
  } catch {
    return null;
  }
}

/** Wall and CPU seconds of `f`. */
function measured(f) {
  const cpu = threadCpu();
  const wall = timed(f);
  const after = threadCpu();
  return { wall, cpu: cpu === null || after === null ? null : after - cpu };
}

/** The medians of { wall, cpu } measurements. */
function medians(runs) {
  const median = (key) => {
    const values = runs.map((r) => r[key]).filter((v) => v !== null);
    return values.length > 0 ? summary(values).median : null;
  };
  return { wall: median('wall'), cpu: median('cpu'), runs };
}

/** Median and 99th percentile (nearest rank). */
function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (q) => sorted[Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length))) - 1];
  return { median: rank(0.5), p99: rank(0.99), min: sorted[0], samples: sorted.length };
}

function readyToSync(host) {
  host.drain();
  const pending = host.pending;
  host.pending = [];
  for (const request of pending) host.answer(request);
}

function load(host) {
  holders(scale).forEach((devices, a) => host.input(devicePolicy(a, devices.map(serial))));
  host.input({ type: 'cleanUp', accountId: ACCOUNT });
  settle(host);
}

const settle = (host) => host.run(0, () => true);

function ingest(pages, reps) {
  const runs = [];
  for (let rep = 0; rep <= reps; rep++) {
    const host = new Host(Engine, pages);
    readyToSync(host);
    const run = measured(() => host.sync());
    if (rep > 0) runs.push(run);
    host.engine.free();
  }
  return medians(runs);
}

function memory(pages) {
  const n = assignmentCount(scale);
  const bytes = () => wasm.memory.buffer.byteLength;
  const host = new Host(Engine, pages);
  host.drain();
  const before = bytes();
  host.sync();
  const synced = bytes();
  load(host);
  const loaded = bytes();
  return {
    linearMemoryBefore: before,
    synced: { growthBytesPerAssignment: (synced - before) / n },
    loaded: { growthBytesPerAssignment: (loaded - before) / n },
  };
}

function submittedSince(host, before) {
  return Object.fromEntries(Object.entries(host.submissions())
    .map(([p, n]) => [p, n - (before[p] ?? 0)]).filter(([, n]) => n > 0));
}

function requestsRow(name, issued, lowerBound, perInstall) {
  const total = Object.values(issued).reduce((a, b) => a + b, 0);
  return { name, issued: total, byPurpose: issued, lowerBound, perInstall };
}

/** Targets enter or leave app `a`'s policy: the time to the drained outputs, and the submissions once they went out. */
function scopeChange(host, a, add, remove) {
  const before = host.submissions();
  const time = measured(() => {
    host.input({ type: 'updatePolicyTargets', policyId: policyId(a), add, remove });
    host.drain();
  });
  host.run(SEND_WINDOW_MS, () => false);
  return [time, submittedSince(host, before)];
}

/** Previews of a scope change of app `a` (3 runs, medians), with the figures the preview reported. */
function preview(host, a, add, remove) {
  const runs = [];
  let totals = null;
  for (let i = 0; i < 3; i++) {
    const inputs = [{ type: 'updatePolicyTargets', policyId: policyId(a), add, remove }];
    runs.push(measured(() => { totals = host.engine.preview(inputs, host.now).totals; }));
  }
  return { ...medians(runs), figures: totals };
}

function planningAndInputs(pages) {
  const host = new Host(Engine, pages);
  host.sync();
  load(host);
  const s = scale.scopeChange;

  const previewLeave = preview(host, 0, [], range(s).map(serial));
  const [leave, leaveRequests] = scopeChange(host, 0, [], range(s).map(serial));

  const reconcile = [];
  for (let i = 0; i < 3; i++) {
    reconcile.push(measured(() => {
      host.input({ type: 'reconcile' });
      // The whole-account plan runs when the coalescing window closes: simulated time runs on to its end (the /status
      // polls due meanwhile are answered on the way: microseconds).
      host.run(config().coalesceMs, () => false);
    }));
    settle(host);
  }

  const entering = range(scale.devices).filter((d) => !appsOf(scale, d).includes(1)).slice(0, s).map(serial);
  const previewEnter = preview(host, 1, entering, []);
  const [enter, enterRequests] = scopeChange(host, 1, entering, []);

  const plan = { scopeLeave: leave, reconcile: medians(reconcile), scopeEnter: enter, previewLeave, previewEnter };
  const rows = [
    requestsRow(`${s.toLocaleString('en-US')} devices leave one app's scope`, leaveRequests, Math.ceil(s / MAX_SERIAL_NUMBERS), s),
    requestsRow(`${s.toLocaleString('en-US')} devices enter one app's scope`, enterRequests, Math.ceil(s / MAX_SERIAL_NUMBERS), s),
  ];
  return { plan, input: singleInputs(host), rows };
}

/** Samples in seconds → their summary in microseconds. */
const micros = (samples) => summary(samples.map((s) => s * 1e6));

function singleInputs(host) {
  const timeouts = [];
  for (let i = 0; i < 1_000; i++) {
    timeouts.push(timed(() => {
      host.input({ type: 'timeout' });
      host.drain();
    }));
    settle(host);
  }

  const polls = [];
  const end = host.now + SAMPLE_WINDOW_MS;
  while (polls.length < 1_000 && host.now < end) {
    const at = host.drain();
    const pending = host.pending;
    host.pending = [];
    if (pending.length === 0) {
      host.now = Math.max(host.now, at);
      host.input({ type: 'timeout' });
      continue;
    }
    for (const request of pending) {
      if (request.purpose === 'eventStatus') {
        polls.push(timed(() => {
          host.answer(request);
          host.drain();
        }));
      } else {
        host.answer(request);
      }
    }
  }

  const enrolled = [];
  const budget = performance.now();
  for (let d = 0; ; d++) {
    if (enrolled.length >= 3 && (enrolled.length >= 50 || performance.now() - budget > 5_000)) break;
    enrolled.push(timed(() => {
      host.input({ type: 'deviceEnrolled', serialNumber: serial(d), sharedIpad: false });
      host.drain();
    }));
    settle(host);
  }
  return { timeout: micros(timeouts), pollAnswer: micros(polls), deviceEnrolled: micros(enrolled), notification100: notificationsOf100(host) };
}

/**
 * Issue 17's notification floods: one ASSET_MANAGEMENT notification confirming 100 devices of an association still
 * pending at Apple, handled and drained, in microseconds (up to 50 of them, each a new notification for devices not
 * confirmed yet).
 */
function notificationsOf100(host) {
  const pending = new Set(host.engine.pendingOperations(ACCOUNT).map((op) => op.eventId).filter((id) => id !== null));
  const notifications = [];
  for (const [eventId, text] of host.apple.associations.filter(([id]) => pending.has(id))) {
    const body = JSON.parse(text);
    const assignments = (body.serialNumbers ?? []).flatMap((serialNumber) =>
      body.assets.map((a) => ({ adamId: a.adamId, pricingParam: a.pricingParam, serialNumber })));
    for (let k = 0; k + 100 <= assignments.length && notifications.length < 50; k += 100) {
      const notification = { eventId, result: 'SUCCESS', type: 'ASSOCIATE', assignments: assignments.slice(k, k + 100) };
      notifications.push(JSON.stringify({
        notificationId: `bench-notification-${notifications.length}`, notificationType: 'ASSET_MANAGEMENT', notification, uId: LOCATION_UID,
      }));
    }
  }
  const held = (query) => host.engine.assignments(ACCOUNT, query).total;
  const firstAssignment = notifications.length > 0 ? JSON.parse(notifications[0]).notification.assignments[0] : null;
  const first = firstAssignment && { adamId: firstAssignment.adamId, serialNumber: firstAssignment.serialNumber };
  const before = first && held(first);
  const authorization = `Bearer ${NOTIFICATION_TOKEN}`;
  const samples = [];
  for (const body of notifications) {
    samples.push(timed(() => {
      const status = host.engine.handleNotification(ACCOUNT, authorization, body, host.now);
      if (status !== 200) throw new Error(`the engine answered the notification with ${status}`);
      host.drain();
    }));
    settle(host);
  }
  if (first && (before !== 0 || held(first) !== 1)) throw new Error('the notification did not confirm its devices\' licenses');
  return micros(samples);
}

function count(org, setup, act) {
  const host = new Host(Engine, buildPages(org));
  host.sync();
  setup(host);
  settle(host);
  const before = host.submissions();
  act(host);
  host.run(SEND_WINDOW_MS, () => false);
  const issued = submittedSince(host, before);
  host.engine.free();
  return issued;
}

function requestCounts() {
  const devices = (n) => range(n).map(serial);
  const users = (n) => range(n).map(userId);
  const rows = [];

  let issued = count(emptyOrg(1, 10_000, 0), () => {}, (h) => h.input(devicePolicy(0, devices(2_500))));
  rows.push(requestsRow('1 app → 2,500 devices', issued, Math.ceil(1 / MAX_ASSETS) * Math.ceil(2_500 / MAX_SERIAL_NUMBERS), 2_500));

  issued = count(emptyOrg(30, 10_000, 0), () => {}, (h) => range(30).forEach((a) => h.input(devicePolicy(a, devices(1_000)))));
  rows.push(requestsRow('30 apps → 1,000 devices', issued, Math.ceil(30 / MAX_ASSETS) * Math.ceil(1_000 / MAX_SERIAL_NUMBERS), 30_000));

  // 250 devices holding 3 of 30 apps each (30 different sets), all ours; then all retire.
  const held = (d) => [0, 1, 2].map((k) => (d + k) % 30);
  const org = emptyOrg(30, 10_000, 0);
  org.assignments = range(250).flatMap((d) => held(d).map((a) => [a, serial(d)]));
  issued = count(
    org,
    (h) => {
      range(30).forEach((a) => h.input(devicePolicy(a, range(250).filter((d) => held(d).includes(a)).map(serial))));
      h.input({ type: 'cleanUp', accountId: ACCOUNT });
    },
    (h) => range(250).forEach((d) => h.input({ type: 'deviceRetired', serialNumber: serial(d) })),
  );
  rows.push(requestsRow('revoke 250 devices (3 of 30 apps each)', issued, Math.ceil(250 / MAX_REVOKE_SERIAL_NUMBERS), 750));

  issued = count(emptyOrg(30, 10_000, 2_500), () => {}, (h) => range(30).forEach((a) => h.input(policy(a, 'user', users(2_500)))));
  rows.push(requestsRow('30 apps → 2,500 users', issued, Math.ceil(30 / MAX_ASSETS) * Math.ceil(2_500 / MAX_CLIENT_USER_IDS), 75_000));
  return rows;
}

log(`building ${assignmentCount(scale)} assignments as Apple pages`);
const pages = buildPages(districtOrg(scale));
const pageBytes = [...pages.assets, ...pages.assignments, ...pages.users].reduce((n, p) => n + Buffer.byteLength(p), 0);
let report;
if (part === 'memory') {
  log('memory');
  report = { runtime: 'wasm', pageBytes, memory: memory(pages) };
} else if (part === 'fleet') {
  const sizes = quick ? [1, 100] : [1, 1_000, 10_000];
  report = { runtime: 'wasm', pageBytes, fleet: sizes.map((accounts) => {
    log(`one input on an engine of ${accounts} accounts`);
    return fleetInputs(Engine, () => wasm.memory.buffer.byteLength, accounts);
  }) };
  const engines = sizes.at(-1);
  log(`the same inputs on ${engines} engines of one account each`);
  report.fleetAcrossEngines = fleetInputsAcrossEngines(Engine, engines);
} else {
  // `--only NAME` (ingest, plan, requests) runs one part, e.g. while trying a change.
  const only = option('--only');
  const wanted = (name) => only === undefined || only === name;
  report = { runtime: 'wasm', pageBytes, requests: [] };
  if (wanted('ingest')) {
    const reps = quick ? 3 : 5;
    log(`full-sync ingest ×${reps}`);
    report.ingest = ingest(pages, reps);
  }
  if (wanted('plan')) {
    log('planning at scale');
    const { plan, input, rows } = planningAndInputs(pages);
    Object.assign(report, { plan, input, requests: rows });
  }
  if (wanted('requests')) {
    log('requests for standard workloads');
    report.requests = [...requestCounts(), ...report.requests];
  }
}
const text = JSON.stringify(report, null, 2);
if (out) writeFileSync(out, text); else process.stdout.write(`${text}\n`);
