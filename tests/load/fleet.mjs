// The fleet test (issue 20, item 3): several backend processes on one PostgreSQL drive thousands of locations.
//
//   Apple:     the Apps and Books simulator in this process, with one location per account (a few devices, one app
//              with licenses to spare), logging the `x-instance` header every backend request carries.
//   Backends:  `instances` processes of tests/node/fixtures/backend.mjs (the built engine, the host shim's Driver, a
//              PostgresStore and a LeaseKeeper) sharing one database; the store is seeded with every account, its
//              device facts and one device-license policy, and the instances share the accounts out by their leases.
//   Relay:     the one notification URL Apple knows, forwarding each notification to the instance that last sent a
//              request for the account (503 otherwise: Apple retries).
//
// The run: start every instance at once; wait until every location is claimed, synced and holds its desired licenses
// and the accounts are shared out; watch `syncs` delta syncs of every account; give every account of the busiest
// instance one more device and SIGKILL that instance; wait until the others drive its accounts again and hold the
// new desired licenses; watch `syncsAfter` more delta syncs. Judged from the simulator's request log (who sent what,
// when) and Apple's final state. The 30-minute delta sync is compressed with the engine's `deltaSyncIntervalMs`
// (default max(5 s, 15 ms × locations)); everything else keeps the engine's defaults except `unconfirmedSettleMs`
// (2 s: an association the SIGKILL left unanswered is confirmed within the run).
//
// tests/node/fleet.test.mjs runs it at CI size (3 instances, 200 locations); scripts/fleet.sh runs it at full size
// (4 instances, 2,000 locations; `--locations 10000` as the benchmark size) and prints the table for BENCHMARKS.md:
//   node tests/load/fleet.mjs [--instances N] [--locations N] [--devices N] [--delta-sync-ms N] [--ttl-ms N (10000)]
//                             [--syncs N] [--syncs-after N] [--seed N] [--verify-store]
// The lease ttl is the LeaseKeeper's default here, 30 s (renewed every ttl / 3, margin ttl / 6); 3 s in the CI-size test
// as in the other multi-instance tests: at 500 accounts per instance on 2 busy cores an event loop stalls for seconds.
// Needs pkg/ built and VPP_PG_URL (scripts/fleet.sh starts a PostgreSQL server when it is unset). Exit code 1 when
// a check fails.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import os from 'node:os';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Engine } from '../../pkg/vpp_license_engine.node.mjs';
import { PostgresStore } from '../../host-shim/node/index.js';
import { startSimulator } from '../../host-shim/simulator/index.js';
import { Backend, driverRuns, overlappingRuns, startRelay, waitFor } from '../node/fixtures/backends.mjs';
import { fmt, mib, percentiles, secs } from './lib.mjs';

const MDM = { id: 'fleet-mdm', name: 'Fleet MDM', metadata: 'fleet test' };
/** Accounts per instance may differ from the fair share by this fraction (issue 20: ±20 %). */
export const SPREAD_TOLERANCE = 0.2;
const ASSIGNMENTS_PATH = '/mdm/v2/assignments';
const CLIENT_CONFIG_PATH = '/mdm/v2/client/config';
const ASSOCIATE_PATH = '/mdm/v2/assets/associate';
/** What Driver.notification throws on an instance that does not hold the account (the endpoint answers 503). */
const NOT_THE_HOLDER = 'this instance does not hold the account\'s lease';

/** The delta sync interval a run of `locations` uses unless told: about 200 Apple requests a second in steady state. */
export const defaultDeltaSyncMs = (locations) => Math.max(5000, Math.round(locations * 15));

/**
 * `byToken` kept up to date as the log grows: `update()` adds the entries logged since the last call and returns the
 * groups (the waits call it often; grouping the whole log each time would load the simulator's process).
 */
export function logIndex(log) {
  const groups = new Map();
  let cursor = 0;
  return {
    update() {
      for (; cursor < log.length; cursor += 1) {
        const entry = log[cursor];
        if (entry.token === null) continue;
        let list = groups.get(entry.token);
        if (list === undefined) groups.set(entry.token, (list = []));
        list.push(entry);
      }
      return groups;
    },
  };
}

/** How many of an account's requests (`entries`, in arrival order) at or after `from` start a delta sync. */
export function deltaSyncsSince(entries, from) {
  let n = 0;
  for (let i = entries.length - 1; i >= 0 && entries[i].at >= from; i -= 1) if (syncStart(entries[i]) === 'delta') n += 1;
  return n;
}

/** Whether a logged request starts a sync: page 0 of the assignments, with a cursor (delta) or without (full). */
export function syncStart(entry) {
  if (entry.method !== 'GET' || entry.path !== ASSIGNMENTS_PATH || (entry.query?.pageIndex ?? '0') !== '0') return null;
  return entry.query?.sinceVersionId === undefined ? 'full' : 'delta';
}

/** The simulator's log grouped by account (bearer token), in arrival order; requests without a token left out. */
export function byToken(log) {
  const groups = new Map();
  for (const entry of log) {
    if (entry.token === null) continue;
    let list = groups.get(entry.token);
    if (list === undefined) groups.set(entry.token, (list = []));
    list.push(entry);
  }
  return groups;
}

/**
 * The delta sync rhythm in the window [from, to) of each account's requests (`groups`: token → entries): for each
 * pair of consecutive delta sync starts inside it sent by the same instance, the gap. Returns the gaps, how many
 * syncs each account had in the window, and the accounts with a gap under `intervalMs` (the engine schedules the next
 * delta sync `intervalMs` after the last one completed, so a shorter gap means a sync came early) or of
 * `2 × intervalMs` or more (one was skipped).
 */
export function deltaRhythm(groups, { from, to, intervalMs }) {
  const gaps = [];
  const syncs = new Map();
  const early = [];
  const skipped = [];
  for (const [token, entries] of groups) {
    const starts = entries.filter((e) => e.at >= from && e.at < to && syncStart(e) === 'delta');
    syncs.set(token, starts.length);
    for (let i = 1; i < starts.length; i += 1) {
      const [a, b] = [starts[i - 1], starts[i]];
      if (a.headers?.['x-instance'] !== b.headers?.['x-instance']) continue;
      const gap = b.at - a.at;
      gaps.push(gap);
      if (gap < intervalMs) early.push({ token, gap });
      if (gap >= 2 * intervalMs) skipped.push({ token, gap });
    }
  }
  return { gaps, syncs, early, skipped };
}

/**
 * Which instance drove each account in [from, to) (`groups`: token → entries): token → the one instance that sent
 * its requests then, or a list when several did (a finding), or null when none did.
 */
export function driversIn(groups, { from, to }) {
  const drivers = new Map();
  for (const [token, entries] of groups) {
    const senders = new Set(entries.filter((e) => e.at >= from && e.at < to).map((e) => e.headers?.['x-instance'] ?? null));
    drivers.set(token, senders.size === 0 ? null : senders.size === 1 ? [...senders][0] : [...senders].sort());
  }
  return drivers;
}

/** Accounts per instance (`instances`: names) against the fair share: `{ fair, counts: {name: n}, outside: [names] }`. */
export function spread(counts, instances, total, tolerance = SPREAD_TOLERANCE) {
  const fair = total / instances.length;
  const outside = instances.filter((name) => Math.abs((counts.get(name) ?? 0) - fair) > tolerance * fair);
  return { fair, counts: Object.fromEntries(instances.map((n) => [n, counts.get(n) ?? 0])), outside };
}

/** How many accounts each instance drove (`drivers`: token → instance from driversIn); accounts with several drivers left out. */
export function countDrivers(drivers) {
  const counts = new Map();
  for (const driver of drivers.values()) if (typeof driver === 'string') counts.set(driver, (counts.get(driver) ?? 0) + 1);
  return counts;
}

/**
 * For each token of `orphans`, the first request after `killedAt` by an instance other than `victim`: token →
 * `{ at, instance }`, or undefined while there is none.
 */
export function takeovers(groups, orphans, victim, killedAt) {
  const result = new Map();
  for (const token of orphans) {
    const first = (groups.get(token) ?? []).find((e) => e.at >= killedAt && e.headers?.['x-instance'] !== victim);
    result.set(token, first && { at: first.at, instance: first.headers['x-instance'] });
  }
  return result;
}

/**
 * (account, asset, device) pairs that more than one accepted associate request named: `[key, [request]]`, each request
 * described by `describe(entry, event)` (default `instance@at`).
 */
export function pairsAssociatedTwice(log, event, name = (token) => token, describe = (entry) => `${entry.headers?.['x-instance']}@${entry.at}`) {
  const pairs = new Map();
  for (const entry of log) {
    if (entry.path !== ASSOCIATE_PATH || entry.eventId === undefined) continue;
    const submitted = event(entry.eventId);
    for (const asset of submitted.request.assets) {
      for (const s of submitted.request.serialNumbers) {
        const key = `${name(entry.token)}/${asset.adamId}/${s}`;
        pairs.set(key, [...(pairs.get(key) ?? []), describe(entry, submitted)]);
      }
    }
  }
  return [...pairs].filter(([, by]) => by.length > 1);
}

/** Lease changes of one instance by type and reason: 'acquired: lease acquired 200, lost: …'. */
function leaseSummary(changes) {
  const counts = new Map();
  for (const c of changes) counts.set(`${c.type}: ${c.reason}`, (counts.get(`${c.type}: ${c.reason}`) ?? 0) + 1);
  return [...counts].map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
}

/** The requestFailed events of one instance by purpose and message: 'page: fetch failed 3, …'. */
function failureSummary(events) {
  const counts = new Map();
  for (const e of events) {
    if (e.type !== 'requestFailed') continue;
    const key = `${e.purpose}: ${e.message}`.slice(0, 120);
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';
}

/** Node's child-process CPU share of one core over an interval: Δcpu µs / Δwall ms. */
const cpuShare = (a, b) => (b && a ? (b.cpuMicros - a.cpuMicros) / 1000 / Math.max(1, b.at - a.at) : null);
const pct = (x) => (x === null || x === undefined ? '—' : `${(x * 100).toFixed(1)} %`);
const pgRequire = createRequire(import.meta.url);

/**
 * Runs the fleet test against the PostgreSQL server at `pgUrl` and resolves with its figures and checks
 * (`result.checks`: `[{ name, ok, target, measured }]`). `log(line)` gets the progress.
 */
export async function runFleet({
  pgUrl,
  instances = 4,
  locations = 2000,
  devices = 5,
  deltaSyncMs = defaultDeltaSyncMs(locations),
  ttlMs = 3000,
  renewEveryMs = Math.floor(ttlMs / 3),
  marginMs = Math.round(ttlMs / 6),
  syncs = 3,
  syncsAfter = 2,
  seed = 1,
  verifyStore = false,
  log = () => {},
} = {}) {
  if (!pgUrl) throw new Error('runFleet needs pgUrl (a PostgreSQL server: scripts/postgres.sh start)');
  if (devices < 2) throw new Error('runFleet needs at least 2 devices per location (one is added before the kill)');
  const started = Date.now();
  const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const say = (line) => log(`[${elapsed()}] ${line}`);
  const names = Array.from({ length: instances }, (_, i) => `i${i + 1}`);
  const lease = { ttlMs, marginMs, renewEveryMs };
  const table = `vpp_fleet_${process.pid}_${Date.now() % 100000}`;
  const cleanup = [];
  const result = { config: { instances, locations, devices, deltaSyncMs, lease, syncs, syncsAfter, seed, verifyStore }, checks: [], targets: [] };
  /** A correctness check: the test asserts it, the script exits 1 when it fails. */
  const check = (name, ok, target, measured) => result.checks.push({ name, ok: Boolean(ok), target, measured });
  /** A timing target of issue 20: shown as ok or MISSED, never asserted (it depends on the machine's load). */
  const aim = (name, ok, target, measured) => result.targets.push({ name, ok: Boolean(ok), target, measured });

  try {
    const store = await PostgresStore.connect({ connectionString: pgUrl, table });
    cleanup.push(async () => {
      await store.close();
      const pool = new (pgRequire('pg').Pool)({ connectionString: pgUrl, max: 1 });
      for (const suffix of ['', '_leases', '_holders']) await pool.query(`DROP TABLE IF EXISTS "${table}${suffix}"`);
      await pool.end();
    });

    // Apple: one location per account, a few devices, one app with a license for each of them.
    const sim = await startSimulator({ port: 0, seed, eventDelayMs: 200, notificationRetryDelayMs: 300, logHeaders: ['x-instance'] });
    cleanup.push(() => sim.close());
    const accounts = Array.from({ length: locations }, (_, i) => {
      const org = sim.addOrganization({ orgName: `FLEET${i}`, locationName: `L${i}`, apps: 1, freeApps: 0, books: 0, devices, users: 0, assignedFraction: 0 });
      // The policy's app: bought for every device of the location, and one to spare.
      const app = sim.mutate(org.token, (o) => o.addAsset({ adamId: String(900_000_000 + i), productType: 'App', totalCount: devices + 1 }));
      const serials = org.serialNumbers;
      return { accountId: `fleet-${i}`, org, app, serials, targets: serials.slice(0, devices - 1) };
    });
    const byAccountId = new Map(accounts.map((a) => [a.accountId, a]));
    const byTokenName = new Map(accounts.map((a) => [a.org.token, a.accountId]));
    const name = (token) => byTokenName.get(token) ?? '(unknown token)';
    const policy = (a) => ({ type: 'setPolicy', policy: {
      policyId: `policy-${a.accountId}`, name: `App for ${a.accountId}`, accountId: a.accountId,
      adamId: a.app.adamId, pricingParam: a.app.pricingParam, licenseType: 'device', targets: a.targets,
    } });
    const missing = () => accounts.flatMap((a) => a.targets
      .filter((s) => !a.org.hasAssignment({ adamId: a.app.adamId, pricingParam: a.app.pricingParam, serialNumber: s }))
      .map((s) => `${a.accountId}/${s}`));
    const unclaimed = () => accounts.filter((a) => a.org.mdmInfo?.id !== MDM.id).map((a) => a.accountId);

    // Notifications go to the instance that last sent a request for the account (read from the log as it grows).
    const backends = new Map();
    const lastSender = new Map();
    let scanned = 0;
    const relay = await startRelay((accountId) => {
      const entries = sim.requestLog;
      for (; scanned < entries.length; scanned += 1) {
        const e = entries[scanned];
        if (e.token !== null) lastSender.set(e.token, e.headers?.['x-instance']);
      }
      const backend = backends.get(lastSender.get(byAccountId.get(accountId)?.org.token));
      return backend?.alive ? backend.notificationUrl : null;
    });
    cleanup.push(() => relay.close());
    const authToken = randomBytes(32).toString('hex');
    const engineConfig = {
      mdmInfo: MDM, serviceConfigUrl: sim.serviceConfigUrl, seed, notifications: { url: relay.url, authToken },
      deltaSyncIntervalMs: deltaSyncMs, unconfirmedSettleMs: 2000,
    };

    // The store seeded as an MDM's first session would: the enrolled devices, then every account and its policy,
    // written by an engine that never calls Apple. The instances adopt them through their leases. (Devices first: the
    // engine handles a device fact in every account it has, so 10,000 facts after 2,000 accounts take minutes.)
    const seeder = new Engine(engineConfig, Date.now());
    for (const a of accounts) for (const serialNumber of a.serials) seeder.handleInput({ type: 'deviceEnrolled', serialNumber }, Date.now());
    for (const a of accounts) {
      seeder.handleInput({ type: 'addAccount', accountId: a.accountId, name: a.org.orgName, token: a.org.token }, Date.now());
      seeder.handleInput(policy(a), Date.now());
    }
    let records = 0;
    for (let done = false; !done;) {
      for (const out of seeder.pollOutputs(Date.now())) {
        if (out.type === 'persist') {
          await store.apply(out.ops);
          records += out.ops.length;
        }
        if (out.type === 'timeout') done = true;
      }
    }
    seeder.free();
    say(`store seeded: ${fmt(locations)} accounts, ${fmt(records)} records; delta sync every ${secs(deltaSyncMs)}, lease ttl ${secs(ttlMs)}`);

    // Every instance starts at once.
    const startedAt = Date.now();
    const statsAt = {};
    const sample = async (label) => {
      statsAt[label] = {};
      await Promise.all([...backends.values()].filter((b) => b.alive).map(async (b) => {
        statsAt[label][b.name] = await b.command('stats', { reset: true });
      }));
    };
    cleanup.push(() => Promise.all([...backends.values()].map((b) => b.kill())));
    await Promise.all(names.map((n) => {
      const backend = new Backend(n, {
        instance: n, store: { kind: 'postgres', url: pgUrl, table }, lease, engine: engineConfig,
        shadow: verifyStore, eventTypes: ['ownershipLost', 'requestFailed'],
      });
      backends.set(n, backend);
      return backend.ready;
    }));
    say(`${instances} instances ready`);

    const leaseCounts = async (live) => {
      const counts = new Map(live.map((n) => [n, 0]));
      let free = 0;
      for (const { holder } of await store.leaseStates()) {
        if (holder === null) free += 1;
        else counts.set(holder, (counts.get(holder) ?? 0) + 1);
      }
      return { counts, free };
    };
    const shared = async (live) => {
      const { counts, free } = await leaseCounts(live);
      return free === 0 && [...counts.keys()].every((n) => live.includes(n)) && spread(counts, live, locations).outside.length === 0;
    };
    const describe = async () => {
      const { counts, free } = await leaseCounts(names);
      return `missing ${missing().length} (${missing().slice(0, 5)}); unclaimed ${unclaimed().length}; leases ${JSON.stringify(Object.fromEntries(counts))}, ` +
        `free ${free}; lease changes: ${[...backends.values()].map((b) => `${b.name}: ${leaseSummary(b.leaseChanges)}`).join('; ')}; ` +
        `errors: ${[...backends.values()].map((b) => `${b.name}: ${b.errors.length} (${b.errors.slice(-2).map((e) => e.split('\n')[0]).join(' | ')}) ${b.stderr.slice(-300)}`)}`;
    };
    const scale = locations / 200;
    const fullSynced = new Set();
    let syncScan = 0;
    let unanswered = [];
    const allFullSynced = () => {
      for (const entries = sim.requestLog; syncScan < entries.length; syncScan += 1) {
        const e = entries[syncScan];
        if (e.token !== null && syncStart(e) === 'full') unanswered.push(e);
      }
      for (const e of unanswered) if (e.status === 200) fullSynced.add(e.token);
      unanswered = unanswered.filter((e) => e.status === null);
      return fullSynced.size === locations;
    };

    // 1. Claimed, synced, licensed, shared out.
    let reportAt = Date.now() + 30_000;
    await waitFor('every location claimed, synced and licensed, the accounts shared out', async () => {
      const synced = allFullSynced();
      const done = synced && unclaimed().length === 0 && missing().length === 0 && (await shared(names));
      if (!done && Date.now() >= reportAt) {
        reportAt = Date.now() + 30_000;
        say(`${fmt(locations - unclaimed().length)} claimed, ${fmt(fullSynced.size)} synced, ${fmt(missing().length)} licenses missing; ` +
          `adopted ${[...backends.values()].map((b) => `${b.name} ${b.leaseChanges.filter((c) => c.type === 'acquired').length}`).join(', ')}; ` +
          `lost ${[...backends.values()].map((b) => `${b.name} ${b.leaseChanges.filter((c) => c.type === 'lost').length}`).join(', ')}`);
      }
      return done;
    }, { timeoutMs: 120_000 + 120_000 * scale, everyMs: 250, describe });
    const convergedAt = Date.now();
    say(`converged: every location claimed, synced and licensed, the accounts shared out (${secs(convergedAt - startedAt)})`);

    // 2. Steady state: `syncs` delta syncs of every account, once no operation is pending (a confirmation arriving in
    //    the window would start a delta sync at once, to read the counts again: license work, not the rhythm).
    const quiet = async (live) => (await Promise.all(live.map((n) => backends.get(n).command('pendingCount')))).every((n) => n === 0);
    await waitFor('no operation pending', () => quiet(names), { timeoutMs: 60_000 + 30_000 * scale, everyMs: 500, describe });
    const index = logIndex(sim.requestLog);
    const deltasSince = (from, count) => {
      const groups = index.update();
      return accounts.every((a) => deltaSyncsSince(groups.get(a.org.token) ?? [], from) >= count);
    };
    const steady = { from: Date.now() };
    steady.leases = Object.fromEntries((await leaseCounts(names)).counts);
    await sample('steadyFrom');
    await waitFor(`${syncs} delta syncs of every account`, () => deltasSince(steady.from, syncs),
      { timeoutMs: (syncs + 2) * deltaSyncMs + 60_000 * scale, everyMs: 500, describe });
    steady.to = Date.now();
    await sample('steadyTo');
    say(`steady state watched for ${secs(steady.to - steady.from)}`);

    // 3. The busiest instance gets one more device for each of its accounts, and is SIGKILLed at once.
    const { counts: before } = await leaseCounts(names);
    const victim = names.reduce((a, b) => ((before.get(b) ?? 0) >= (before.get(a) ?? 0) ? b : a));
    const orphans = (await store.leaseStates()).filter((s) => s.holder === victim).map((s) => byAccountId.get(s.accountId));
    // Half of them get it first, and the kill comes once the victim has sent some of those associations (some are then
    // at Apple, answered or not); the other half get it right before the kill (their work is in the coalescing window).
    for (const a of orphans) a.targets = a.serials;
    const addDevice = (list) => Promise.all(list.map((a) => backends.get(victim).command('input', {
      input: { type: 'updatePolicyTargets', policyId: `policy-${a.accountId}`, add: [a.serials.at(-1)] },
    })));
    const half = Math.ceil(orphans.length / 2);
    const firstHalf = new Set(orphans.slice(0, half).map((a) => a.org.token));
    const changedAt = Date.now();
    await addDevice(orphans.slice(0, half));
    await waitFor(`${victim} sends associations of the first half`, () => {
      const groups = index.update();
      return [...firstHalf].some((token) => (groups.get(token) ?? []).some((e) => e.at >= changedAt && e.path === ASSOCIATE_PATH));
    }, { timeoutMs: 60_000 + 30_000 * scale, everyMs: 20, describe });
    await addDevice(orphans.slice(half));
    await sample('beforeKill');
    const killedAt = Date.now();
    await backends.get(victim).kill();
    const sentBeforeKill = [...firstHalf].filter((token) => (index.update().get(token) ?? []).some((e) => e.at >= changedAt && e.path === ASSOCIATE_PATH)).length;
    say(`${victim} SIGKILLed with ${orphans.length} accounts, each given one more device before (${sentBeforeKill} associations sent, ` +
      `${orphans.length - half} changes given just before the kill)`);
    const survivors = names.filter((n) => n !== victim);
    const orphanTokens = orphans.map((a) => a.org.token);
    // When each orphan's lease is held by a survivor in the store (the keepers' part), and its first request by one.
    const leaseTakenAt = new Map();
    const orphanIds = new Set(orphans.map((a) => a.accountId));
    await waitFor(`the accounts of ${victim} driven again`, async () => {
      for (const { accountId, holder } of await store.leaseStates()) {
        if (survivors.includes(holder) && orphanIds.has(accountId) && !leaseTakenAt.has(accountId)) {
          leaseTakenAt.set(accountId, Date.now());
        }
      }
      const found = takeovers(index.update(), orphanTokens, victim, killedAt);
      return [...found.values()].every((f) => f !== undefined);
    }, { timeoutMs: 4 * ttlMs + 120_000 * scale, everyMs: 200, describe });
    const drivenAgainAt = Date.now();
    await waitFor('every desired license at Apple, the accounts shared out again',
      async () => missing().length === 0 && (await shared(survivors)),
      { timeoutMs: 60_000 + 30_000 * scale, everyMs: 250, describe });
    say(`taken over: driven again after ${secs(drivenAgainAt - killedAt)}, every desired license at Apple after ${secs(Date.now() - killedAt)}`);

    // 4. Steady state again, on the survivors, once no operation is pending.
    await waitFor('no operation pending', () => quiet(survivors), { timeoutMs: 60_000 + 30_000 * scale, everyMs: 500, describe });
    const after = { from: Date.now() };
    after.leases = Object.fromEntries((await leaseCounts(survivors)).counts);
    await sample('afterFrom');
    await waitFor(`${syncsAfter} more delta syncs of every account`, () => deltasSince(after.from, syncsAfter),
      { timeoutMs: (syncsAfter + 2) * deltaSyncMs + 60_000 * scale, everyMs: 500, describe });
    after.to = Date.now();
    await sample('afterTo');
    say(`steady state after the kill watched for ${secs(after.to - after.from)}`);

    // Nothing lost in the store (with --verify-store): each survivor's store records are what its engine wrote.
    const verified = [];
    if (verifyStore) {
      for (const n of survivors) verified.push({ name: n, ...(await backends.get(n).command('verify')) });
    }
    for (const n of survivors) await backends.get(n).command('stop');
    const finishedAt = Date.now();

    // The judgement, from the simulator's request log.
    const log = sim.requestLog.filter((e) => e.token !== null);
    const groups = byToken(log);
    const unnamed = log.filter((e) => !names.includes(e.headers?.['x-instance']));
    const overlaps = overlappingRuns(driverRuns(log, new Map([[victim, killedAt]])), name);
    check('every request of an account names its instance', unnamed.length === 0, '0 without', `${unnamed.length} without`);
    check('one instance drives an account at a time (request log)', overlaps.length === 0, '0 overlaps',
      overlaps.length === 0 ? '0 overlaps' : `${overlaps.length}: ${overlaps.slice(0, 3).join('; ')}`);

    const claims = new Map();
    for (const e of log) {
      if (e.method === 'POST' && e.path === CLIENT_CONFIG_PATH && e.status === 200) {
        const set = claims.get(e.token) ?? new Set();
        set.add(e.headers?.['x-instance']);
        claims.set(e.token, set);
      }
    }
    const claimedByOne = accounts.filter((a) => claims.get(a.org.token)?.size === 1).length;
    const claimRequests = log.filter((e) => e.method === 'POST' && e.path === CLIENT_CONFIG_PATH).length;
    check('every location claimed (its mdmInfo ours)', unclaimed().length === 0,
      `${fmt(locations)}`, `${fmt(locations - unclaimed().length)} ours; ${fmt(claimRequests)} claim requests, ${fmt(claimedByOne)} locations claimed by one instance`);
    check('every account fully synced, then delta-synced by one instance in each steady window',
      allFullSynced(), `${fmt(locations)}`, `${fmt(fullSynced.size)} fully synced`);

    const windows = [
      { label: 'steady', ...steady, live: names, leases: steady.leases },
      { label: 'after the kill', ...after, live: survivors, leases: after.leases },
    ];
    for (const w of windows) {
      w.drivers = driversIn(groups, w);
      const several = [...w.drivers].filter(([, d]) => Array.isArray(d));
      const none = [...w.drivers].filter(([, d]) => d === null);
      w.spread = spread(countDrivers(w.drivers), w.live, locations);
      w.leaseSpread = spread(new Map(Object.entries(w.leases)), w.live, locations);
      w.rhythm = deltaRhythm(groups, { ...w, intervalMs: deltaSyncMs });
      w.requests = new Map(w.live.map((n) => [n, 0]));
      for (const e of log) if (e.at >= w.from && e.at < w.to) w.requests.set(e.headers['x-instance'], (w.requests.get(e.headers['x-instance']) ?? 0) + 1);
      check(`${w.label}: each account driven by exactly one instance`, several.length === 0 && none.length === 0,
        `${fmt(locations)}`, `${fmt(locations - several.length - none.length)}${several.length ? `; ${several.length} by several (${several.slice(0, 3).map(([t, d]) => `${name(t)}: ${d}`)})` : ''}${none.length ? `; ${none.length} by none` : ''}`);
      check(`${w.label}: accounts per instance within ±${SPREAD_TOLERANCE * 100} % of the fair share`, w.spread.outside.length === 0 && w.leaseSpread.outside.length === 0,
        `${fmt(w.spread.fair * (1 - SPREAD_TOLERANCE))}–${fmt(w.spread.fair * (1 + SPREAD_TOLERANCE))}`,
        w.live.map((n) => `${n} ${w.spread.counts[n]}`).join(', '));
      const p = percentiles(w.rhythm.gaps);
      const fewest = Math.min(...w.rhythm.syncs.values());
      const gapsText = `${fmt(p.n)} gaps: min ${secs(p.n ? Math.min(...w.rhythm.gaps) : null)}, p50 ${secs(p.p50)}, p99 ${secs(p.p99)}, max ${secs(p.max)}`;
      check(`${w.label}: no delta sync earlier than the interval after the last one`, w.rhythm.early.length === 0 && p.n > 0,
        `gap ≥ ${secs(deltaSyncMs)}`, `${gapsText}${w.rhythm.early.length ? `; early: ${w.rhythm.early.slice(0, 3).map((x) => `${name(x.token)} ${x.gap} ms`)}` : ''}`);
      aim(`${w.label}: delta syncs keep their rhythm (no beat skipped)`, w.rhythm.skipped.length === 0 && fewest >= 1,
        `gap < ${secs(2 * deltaSyncMs)}`, `${gapsText}; ≥ ${fewest} syncs per account${w.rhythm.skipped.length ? `; ${w.rhythm.skipped.length} skipped` : ''}`);
    }

    const found = takeovers(groups, orphanTokens, victim, killedAt);
    const delays = [...found.values()].filter(Boolean).map((f) => f.at - killedAt);
    // Each orphan's first adoption after the kill (the survivors stopping one after another at the end hand accounts
    // over once more).
    const adoptedAt = new Map();
    for (const n of survivors) {
      for (const c of backends.get(n).leaseChanges) {
        if (c.type === 'acquired' && c.at >= killedAt && orphanIds.has(c.accountId)) adoptedAt.set(c.accountId, Math.min(c.at, adoptedAt.get(c.accountId) ?? Infinity));
      }
    }
    const adoptDelays = [...adoptedAt.values()].map((at) => at - killedAt);
    const d = percentiles(delays);
    const l = percentiles([...leaseTakenAt.values()].map((at) => at - killedAt));
    const adopted = percentiles(adoptDelays);
    result.takeover = {
      victim, orphans: orphans.length, killedAt, drivenAgain: d, leaseTaken: l, adopted,
      by: countDrivers(new Map([...found].map(([t, f]) => [t, f?.instance]))),
    };
    check('the SIGKILLed instance\'s accounts driven again by the others', delays.length === orphans.length,
      `${fmt(orphans.length)} accounts`, `${fmt(delays.length)}, by ${survivors.map((n) => `${n} ${result.takeover.by.get(n) ?? 0}`).join(', ')}`);
    aim('the SIGKILLed instance\'s accounts driven again within ttl + renew interval', delays.length === orphans.length && d.max <= ttlMs + renewEveryMs,
      `${secs(ttlMs + renewEveryMs)}`, `first request after p50 ${secs(d.p50)}, max ${secs(d.max)}; lease taken (in the store) after p50 ${secs(l.p50)}, ` +
      `max ${secs(l.max)}; adopted after p50 ${secs(adopted.p50)}, max ${secs(adopted.max)}`);

    // Each association of a pair named twice: who sent it when, how long its answer took, what became of its event.
    const twice = pairsAssociatedTwice(log, (id) => sim.event(id), name, (e, ev) =>
      `${e.headers?.['x-instance']} at +${secs(e.at - started)}, answered after ${secs(e.answeredAt === undefined ? null : e.answeredAt - e.at)}, ${ev.eventStatus}`);
    const desired = accounts.reduce((n, a) => n + a.targets.length, 0);
    check('nothing lost: every desired license at Apple at the end, none associated twice', missing().length === 0 && twice.length === 0,
      `${fmt(desired)} licenses`, `${fmt(desired - missing().length)} present; ${twice.length} pairs associated twice${twice.length ? `: ${twice.slice(0, 3).map(([k, by]) => `${k} (${by.join('; ')})`).join(', ')}` : ''}`);
    if (verifyStore) {
      const diffs = verified.flatMap((v) => v.differences.map((line) => `${v.name}: ${line}`));
      const held = verified.flatMap((v) => v.held);
      check('nothing lost in the store: each survivor\'s records are what its engine wrote', diffs.length === 0 && held.length === locations,
        `${fmt(locations)} accounts`, `${fmt(held.length)} verified, ${diffs.length} differences${diffs.length ? `: ${diffs.slice(0, 3)}` : ''}`);
    }
    // A notification the relay sent to an instance that no longer drives the account is answered 503 (Apple retries)
    // and reported to onError: counted, not an error.
    const lines = [...backends.values()].flatMap((b) => b.errors.map((e) => `${b.name}: ${e.split('\n')[0]}`));
    const misrouted = lines.filter((line) => line.endsWith(NOT_THE_HOLDER));
    const errors = lines.filter((line) => !line.endsWith(NOT_THE_HOLDER));
    result.misroutedNotifications = misrouted.length;
    check('no instance reported an error', errors.length === 0, '0',
      `${errors.length}${errors.length ? `: ${errors.slice(0, 3)}` : ''} (and ${misrouted.length} notifications refused by an instance no longer holding the account)`);

    // Per instance: accounts, requests, CPU, memory.
    result.instances = names.map((n) => {
      const last = statsAt.afterTo?.[n] ?? statsAt.beforeKill?.[n];
      const total = log.filter((e) => e.headers?.['x-instance'] === n).length;
      return {
        name: n,
        killed: n === victim,
        accounts: windows.map((w) => w.spread.counts[n] ?? null),
        requests: total,
        requestRate: windows.map((w) => (w.live.includes(n) ? w.requests.get(n) / ((w.to - w.from) / 1000) : null)),
        cpuSeconds: last ? last.cpuMicros / 1e6 : null,
        cpuShare: [cpuShare(statsAt.steadyFrom?.[n], statsAt.steadyTo?.[n]), cpuShare(statsAt.afterFrom?.[n], statsAt.afterTo?.[n])],
        maxRss: last?.maxRss ?? null,
        adoptions: last?.adoptions ?? null,
        loopDelayMaxMs: Math.max(...Object.values(statsAt).map((s) => s[n]?.loopDelayMaxMs ?? 0)),
        leaseChanges: leaseSummary(backends.get(n).leaseChanges),
        failedRequests: failureSummary(backends.get(n).events),
      };
    });
    result.windows = windows.map((w) => ({ label: w.label, from: w.from, to: w.to, fair: w.spread.fair, gaps: percentiles(w.rhythm.gaps) }));
    result.requests = { total: log.length, perAccount: log.length / locations };
    result.timing = { converged: convergedAt - startedAt, total: finishedAt - started };
    result.fleet = { desired, records };
    result.machine = { cores: os.cpus().length, cpu: os.cpus()[0]?.model ?? '?', load: os.loadavg().map((x) => x.toFixed(2)).join(', '), node: process.version };
    return result;
  } finally {
    for (const step of cleanup.reverse()) {
      try {
        await step();
      } catch (error) {
        log(`clean-up: ${error?.message ?? error}`);
      }
    }
  }
}

/** The run as Markdown: one row per instance, then one per check. */
export function fleetTable(result) {
  const { config: c } = result;
  const lines = [];
  lines.push(`${c.instances} instances, ${fmt(c.locations)} locations × ${c.devices} devices; delta sync every ${secs(c.deltaSyncMs)} ` +
    `(30 min compressed ${fmt(1_800_000 / c.deltaSyncMs)}×); lease ttl ${secs(c.lease.ttlMs)}, renewed every ${secs(c.lease.renewEveryMs)}; ` +
    `converged after ${secs(result.timing.converged)}, whole run ${secs(result.timing.total)}; ${fmt(result.requests.total)} Apple requests.`);
  lines.push('');
  lines.push('| instance | accounts (steady / after the kill) | fair share | requests | requests/s (steady / after) | CPU, whole run | CPU of one core (steady / after) | peak RSS | adopting: accounts, total, longest | event loop delay, max |');
  lines.push('| --- | --- | --- | ---: | --- | ---: | --- | ---: | --- | ---: |');
  const fair = result.windows.map((w) => fmt(w.fair)).join(' / ');
  for (const i of result.instances) {
    lines.push(`| ${i.name}${i.killed ? ' (SIGKILLed)' : ''} | ${i.accounts.map((n) => (n === null ? '—' : fmt(n))).join(' / ')} | ${fair} | ${fmt(i.requests)} | ` +
      `${i.requestRate.map((r) => (r === null ? '—' : r.toFixed(1))).join(' / ')} | ${i.cpuSeconds === null ? '—' : `${i.cpuSeconds.toFixed(1)} s`} | ` +
      `${i.cpuShare.map(pct).join(' / ')} | ${i.maxRss === null ? '—' : mib(i.maxRss)} | ` +
      `${i.adoptions ? `${fmt(i.adoptions.count)}, ${secs(i.adoptions.totalMs)}, ${secs(i.adoptions.maxMs)}` : '—'} | ${secs(i.loopDelayMaxMs)} |`);
  }
  lines.push('');
  lines.push(`Lease changes (until the end, when the survivors stop one after another): ${result.instances.map((i) => `${i.name}: ${i.leaseChanges}`).join('; ')}.`);
  lines.push('');
  lines.push(`Failed requests (requestFailed events): ${result.instances.map((i) => `${i.name}: ${i.failedRequests}`).join('; ')}.`);
  lines.push('');
  lines.push('| check | expected | measured | result |');
  lines.push('| --- | --- | --- | --- |');
  for (const k of result.checks) lines.push(`| ${k.name} | ${k.target} | ${k.measured} | ${k.ok ? 'ok' : 'FAIL'} |`);
  for (const k of result.targets) lines.push(`| target: ${k.name} | ${k.target} | ${k.measured} | ${k.ok ? 'ok' : 'MISSED'} |`);
  return lines.join('\n');
}

async function main() {
  const { values } = parseArgs({
    options: {
      instances: { type: 'string', default: '4' },
      locations: { type: 'string', default: '2000' },
      devices: { type: 'string', default: '5' },
      'delta-sync-ms': { type: 'string' },
      'ttl-ms': { type: 'string', default: '30000' },
      syncs: { type: 'string', default: '3' },
      'syncs-after': { type: 'string', default: '2' },
      seed: { type: 'string', default: '1' },
      'verify-store': { type: 'boolean', default: false },
    },
  });
  const int = (key) => {
    const n = Number(values[key]);
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${key} must be a positive integer, not ${values[key]}`);
    return n;
  };
  const locations = int('locations');
  const result = await runFleet({
    pgUrl: process.env.VPP_PG_URL,
    instances: int('instances'),
    locations,
    devices: int('devices'),
    deltaSyncMs: values['delta-sync-ms'] === undefined ? defaultDeltaSyncMs(locations) : int('delta-sync-ms'),
    ttlMs: int('ttl-ms'),
    syncs: int('syncs'),
    syncsAfter: int('syncs-after'),
    seed: int('seed'),
    verifyStore: values['verify-store'],
    log: (line) => console.error(line),
  });
  console.log(fleetTable(result));
  console.log('');
  console.log(`Machine: ${result.machine.cores} cores, ${result.machine.cpu}; Node ${result.machine.node}; load average at the end ${result.machine.load}.`);
  const failed = result.checks.filter((k) => !k.ok);
  const missed = result.targets.filter((k) => !k.ok);
  console.log(`fleet: ${failed.length === 0 ? 'every check passed' : `${failed.length} checks FAILED`}; ${missed.length} of ${result.targets.length} timing targets missed`);
  process.exitCode = failed.length === 0 ? 0 : 1;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((error) => {
    console.error(error);
    process.exitCode = 1;
  });
}
