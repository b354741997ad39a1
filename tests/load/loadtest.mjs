// The production-shaped load test (issue 13, item 5): a school district's morning, end to end.
//
//   Apple:   the Apps and Books simulator over HTTP in a child process (tests/load/apple.mjs), events completing
//            after 2 s, notifications on, faults on during the morning (503 + Retry-After, 429, dropped
//            connections, slow answers, slow events).
//   Backend: this process: the package's Engine and Driver with the fetch transport, a SQLite store in a temp dir
//            and the Node notification endpoint, to which the simulator POSTs Apple's notifications.
//   MDM:     the workload below, one driver.input per fact with Poisson arrivals, as an MDM server reports them.
//
// Usage: node tests/load/loadtest.mjs [--small] [--seed N] [--coalesce-ms N] [--coalesce-quiet-ms N] [--no-faults]
// [--store sqlite|memory] (scripts/loadtest.sh is the wrapper; README "Load test"). Exit code 1 when a check fails.
// Run scripts/build-pkg.sh first. For a closer look: LOADTEST_TRACE=1 prints the engine's non-license events of the
// morning; LOADTEST_DUMP=<file> writes the morning's request log and the facts' changes as JSON.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Engine } from '../../pkg/vpp_license_engine.node.mjs';
import { Driver, MemoryStore, createFetchTransport } from '../../pkg/host-shim/index.js';
import { SqliteStore, startNotificationServer } from '../../pkg/host-shim/node/index.js';
import { Random } from '../../host-shim/simulator/random.js';
import { forkApple } from './apple-process.mjs';
import { checkRequestLog, compareState, countingStore, fmt, lowerBounds, mib, percentiles, requestKind, secs } from './lib.mjs';

/**
 * Sizes. Per location: `devices` serial numbers, of which `enrollments` enroll this morning and the rest are enrolled
 * and licensed already (the warm-up); `apps` apps (the last one free); `users` users Apple knows. District-wide:
 * `retirements`, `removals` (apps the user deleted), `newUsers` (user licenses), spread over the locations.
 */
const SIZES = {
  full: {
    locations: 3, devices: 5000, enrollments: 1000, apps: 20, users: [667, 667, 666], morningMs: 120_000,
    retirements: 400, removals: 200, newUsers: 50, teacherAdds: 25, bulkAdd: 250, bulkRemove: 50,
    groups: 5, commonApps: 5, groupApps: 3, warmUsers: 100,
  },
  small: {
    locations: 2, devices: 750, enrollments: 150, apps: 12, users: [100, 100], morningMs: 40_000,
    retirements: 40, removals: 20, newUsers: 6, teacherAdds: 6, bulkAdd: 40, bulkRemove: 10,
    groups: 3, commonApps: 4, groupApps: 2, warmUsers: 10,
  },
};
const FAILED_INSTALLS = 0.02;
/** Mean time from licenseReady to the MDM reporting the install's outcome (appInstalled / installFailed). */
const INSTALL_MEAN_MS = 4000;
const EVENT_DELAY_MS = 2000;
const FAULTS = {
  requestRate: 0.01,
  mix: { 503: 3, 429: 3, drop: 2, slowAnswer: 2 },
  retryAfterS: 2,
  slowAnswerMs: 3000,
  slowEventRate: 0.01,
  slowEventMs: 8000,
  eventDelayMs: EVENT_DELAY_MS,
};
/** An association sent without an answer (a dropped connection) is confirmed by a sync this long after (default 10 min). */
const UNCONFIRMED_SETTLE_MS = 30_000;

const { values: opts } = parseArgs({
  options: {
    small: { type: 'boolean', default: false },
    seed: { type: 'string', default: '1' },
    'coalesce-ms': { type: 'string' },
    'coalesce-quiet-ms': { type: 'string' },
    'no-faults': { type: 'boolean', default: false },
    store: { type: 'string', default: 'sqlite' },
  },
});
const SIZE_NAME = opts.small ? 'small' : 'full';
const S = SIZES[SIZE_NAME];
const SEED = Number(opts.seed);
const COALESCE_MS = opts['coalesce-ms'] === undefined ? 5000 : Number(opts['coalesce-ms']);
/** Absent: the engine's default (1000). */
const COALESCE_QUIET_MS = opts['coalesce-quiet-ms'] === undefined ? undefined : Number(opts['coalesce-quiet-ms']);
if (!['sqlite', 'memory'].includes(opts.store)) throw new Error(`--store sqlite|memory, not ${opts.store}`);
const rng = new Random(SEED);
const log = (...args) => console.log(...args);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ------------------------------------------------------------------------------------------- Apple (child)

const apple = forkApple();
const appleCall = apple.call;

// ------------------------------------------------------------------------------------------- workload

/** A shuffled copy (seeded). */
function shuffled(items, r) {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r.next() * (i + 1));
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** `n` arrival times of a Poisson process over [0, spanMs) (sorted uniforms: the same law given the count). */
function poissonTimes(n, spanMs, r) {
  return Array.from({ length: n }, () => r.next() * spanMs).sort((a, b) => a - b);
}

const exponential = (mean, r) => -mean * Math.log(1 - r.next());

/** Splits `total` over `parts` as evenly as possible. */
const spread = (total, parts) => Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));

/**
 * One location's structure: device apps = common apps + the apps of the device's group (grade); one app policy per
 * app (its targets: the devices of every group that has it), one user-license policy. The teacher's class app and
 * the bulk-edited app are group apps of groups 0 and 1; their new targets come from other groups.
 */
function planLocation(loc, org, counts, r) {
  const accountId = `school-${loc + 1}`;
  const deviceApps = org.assets.filter((a) => a.productType === 'App' && a.deviceAssignable).map((a) => a.adamId);
  const paid = org.assets.filter((a) => a.productType === 'App' && a.totalCount < 2147483647);
  const userApp = (paid.find((a) => !a.deviceAssignable) ?? paid[paid.length - 1]).adamId;
  const pool = deviceApps.filter((a) => a !== userApp);
  const common = pool.slice(0, S.commonApps);
  const rest = pool.slice(S.commonApps);
  if (rest.length < S.groupApps + 1) throw new Error(`location ${loc}: too few device-assignable apps (${pool.length})`);
  const groupApps = Array.from({ length: S.groups }, (_, g) => Array.from({ length: S.groupApps }, (_, k) => rest[(g * S.groupApps + k) % rest.length]));
  const appsOf = (g) => [...new Set([...common, ...groupApps[g]])];
  const serials = org.serialNumbers;
  const existing = serials.slice(0, S.devices - S.enrollments);
  const fresh = serials.slice(S.devices - S.enrollments);
  const group = new Map(serials.map((s) => [s, Math.floor(r.next() * S.groups)]));
  const policyOf = (adamId) => `${accountId}/app-${adamId}`;
  const classApp = groupApps[0][0];
  const bulkApp = groupApps[1 % S.groups][0];

  // Disjoint pools of existing devices for each kind of fact.
  const free = shuffled(existing, r);
  const take = (n, ok = () => true) => {
    const picked = [];
    for (let i = 0; i < free.length && picked.length < n; i++) {
      if (ok(free[i])) picked.push(...free.splice(i--, 1));
    }
    if (picked.length < n) throw new Error(`location ${loc}: not enough devices`);
    return picked;
  };
  const lacks = (adamId) => (s) => !appsOf(group.get(s)).includes(adamId);
  const retirements = take(counts.retirements);
  const removals = take(counts.removals).map((s) => ({ serial: s, adamId: r.pick(appsOf(group.get(s))) }));
  const teacher = counts.teacher ? take(S.teacherAdds, lacks(classApp)) : [];
  const bulkAdd = counts.bulk ? take(S.bulkAdd, lacks(bulkApp)) : [];
  const bulkRemove = counts.bulk ? take(S.bulkRemove, (s) => !lacks(bulkApp)(s)) : [];

  // Policies at the start of the morning (the warm-up states them with these targets, all at once).
  const policies = new Map(); // policyId → { policyId, adamId, licenseType, targets }
  const policy = (adamId, licenseType) => {
    const id = licenseType === 'user' ? `${accountId}/users-${adamId}` : policyOf(adamId);
    if (!policies.has(id)) policies.set(id, { policyId: id, name: `${licenseType} licenses of ${adamId}`, accountId, adamId, pricingParam: 'STDQ', licenseType, targets: [] });
    return policies.get(id);
  };
  for (const s of existing) for (const a of appsOf(group.get(s))) policy(a, 'device').targets.push(s);
  for (let g = 0; g < S.groups; g++) for (const a of appsOf(g)) policy(a, 'device');
  policy(classApp, 'device');
  const userPolicy = policy(userApp, 'user');
  const known = org.users.filter((u) => u.status === 'Associated').map((u) => u.clientUserId);
  userPolicy.targets.push(...known.slice(0, S.warmUsers));
  const newUsers = Array.from({ length: counts.newUsers }, (_, i) => ({
    clientUserId: `${accountId}-new-${i + 1}-${r.uuid()}`,
    managedAppleId: `new.student${i + 1}@${accountId}.springfield.example`,
  }));

  return { loc, accountId, org, token: org.token, policies, policyOf, appsOf, group, fresh, retirements, removals, teacher, classApp, bulkAdd, bulkRemove, bulkApp, userPolicy, newUsers };
}

/** The morning's facts, in time order: `{ at, kind, loc, ... }` (at: ms after the morning starts). */
function planMorning(locs, r) {
  const facts = [];
  const span = S.morningMs;
  for (const L of locs) {
    const enrollAt = poissonTimes(L.fresh.length, span, r);
    L.fresh.forEach((serial, i) => facts.push({ at: enrollAt[i], kind: 'enroll', L, serial }));
    const retireAt = poissonTimes(L.retirements.length, span, r);
    L.retirements.forEach((serial, i) => facts.push({ at: retireAt[i], kind: 'retire', L, serial }));
    const removeAt = poissonTimes(L.removals.length, span, r);
    L.removals.forEach((x, i) => facts.push({ at: removeAt[i], kind: 'remove', L, ...x }));
    const userAt = poissonTimes(L.newUsers.length, span * 0.9, r);
    L.newUsers.forEach((user, i) => {
      facts.push({ at: userAt[i], kind: 'userAdded', L, user });
      facts.push({ at: userAt[i] + 500 + r.next() * 2500, kind: 'userScope', L, user });
    });
    // A teacher adds students to the class app's policy one at a time, a few seconds apart.
    let t = span * 0.25;
    for (const serial of L.teacher) {
      facts.push({ at: t, kind: 'teacherAdd', L, serial });
      t += 1000 + exponential(2500, r);
    }
    if (L.bulkAdd.length) facts.push({ at: span * 0.5, kind: 'bulkEdit', L });
  }
  return facts.sort((a, b) => a.at - b.at);
}

// ------------------------------------------------------------------------------------------- run

const started = Date.now();
const size = `${S.locations} location${S.locations > 1 ? 's' : ''}, ${fmt(S.devices * S.locations)} devices, ${S.apps * S.locations} apps, ` +
  `${fmt(S.users.reduce((a, b) => a + b, 0))} users; morning ${secs(S.morningMs)}: ${fmt(S.enrollments * S.locations)} enrollments, ` +
  `${S.retirements} retirements, ${S.removals} app removals, ${FAILED_INSTALLS * 100} % failed installs, ${S.newUsers} new users with user licenses, ` +
  `${S.teacherAdds} teacher adds, 1 bulk edit (+${S.bulkAdd}/−${S.bulkRemove})`;
log(`load test (${SIZE_NAME}, seed ${SEED}): ${size}`);
log(`coalesceMs ${COALESCE_MS}, coalesceQuietMs ${COALESCE_QUIET_MS ?? 'default'}; Apple events take ${secs(EVENT_DELAY_MS)}, notifications on; faults ${opts['no-faults'] ? 'off' : `on: ${FAULTS.requestRate * 100} % of requests (503 + Retry-After ${FAULTS.retryAfterS} s, 429, dropped, slow ${secs(FAULTS.slowAnswerMs)}), ${FAULTS.slowEventRate * 100} % of events slow (${secs(FAULTS.slowEventMs)})`}`);

const dir = mkdtempSync(path.join(tmpdir(), 'vpp-loadtest-'));
let exitCode = 1;
try {
  exitCode = await run();
} catch (error) {
  console.error('load test aborted:', error);
} finally {
  rmSync(dir, { recursive: true, force: true });
  apple.disconnect();
}
process.exit(exitCode);

async function run() {
  const simInfo = await appleCall('start', { port: 0, seed: SEED, pageSize: 1000, eventDelayMs: EVENT_DELAY_MS, notificationRetryDelayMs: 1000 });
  const limits = simInfo.limits;
  const orgs = [];
  for (let i = 0; i < S.locations; i++) {
    orgs.push(await appleCall('addOrganization', {
      orgName: 'Springfield School District', locationName: `School ${i + 1}`, apps: S.apps, freeApps: 1, books: 0,
      devices: S.devices, users: S.users[i], assignedFraction: 0,
    }));
  }
  const retire = spread(S.retirements, S.locations);
  const remove = spread(S.removals, S.locations);
  const users = spread(S.newUsers, S.locations);
  const locs = orgs.map((org, i) => planLocation(i, org, {
    retirements: retire[i], removals: remove[i], newUsers: users[i], teacher: i === 0, bulk: i === 1 % S.locations,
  }, rng.fork(`location ${i}`)));
  const facts = planMorning(locs, rng.fork('morning'));

  // Desired state (pairs 'adamId|serial' / 'adamId|u:user' per location), kept as the facts are given.
  const desired = new Map(locs.map((L) => [L.accountId, new Set()]));
  for (const L of locs) for (const p of L.policies.values()) for (const t of p.targets) desired.get(L.accountId).add(pairOf(p.adamId, p.licenseType, t));
  // Enough licenses of every paid app: what the morning can want, plus a margin.
  const need = new Map();
  for (const L of locs) {
    for (const p of L.policies.values()) need.set(`${L.loc}|${p.adamId}`, (need.get(`${L.loc}|${p.adamId}`) ?? 0) + p.targets.length);
    for (const s of L.fresh) for (const a of L.appsOf(L.group.get(s))) need.set(`${L.loc}|${a}`, (need.get(`${L.loc}|${a}`) ?? 0) + 1);
    need.set(`${L.loc}|${L.classApp}`, need.get(`${L.loc}|${L.classApp}`) + L.teacher.length);
    need.set(`${L.loc}|${L.bulkApp}`, need.get(`${L.loc}|${L.bulkApp}`) + L.bulkAdd.length);
    need.set(`${L.loc}|${L.userPolicy.adamId}`, need.get(`${L.loc}|${L.userPolicy.adamId}`) + L.newUsers.length);
  }
  await appleCall('provision', [...need].map(([key, n]) => {
    const [loc, adamId] = key.split('|');
    return { token: locs[loc].token, adamId, available: Math.ceil(n * 1.05) + 20 };
  }));

  // ---- the backend: SQLite store (counted), notification endpoint, engine, driver
  // SQLite as the SqliteStore opens it (WAL, synchronous=FULL); --store memory for comparison.
  const store = opts.store === 'memory' ? new MemoryStore() : SqliteStore.open(path.join(dir, 'vpp.db'));
  const counted = countingStore(store);
  const writes = counted.writes;
  const writesByPrefix = new Map(); // key prefix → { puts, deletes, bytes }, during the morning
  const errors = [];
  const notified = { handled: 0, statuses: {} };
  let driver;
  const authToken = randomBytes(32).toString('hex');
  const endpoint = await startNotificationServer({
    authToken,
    driver: {
      notification(accountId, authorization, body) {
        const status = driver.notification(accountId, authorization, body);
        notified.handled++;
        notified.statuses[status] = (notified.statuses[status] ?? 0) + 1;
        return status;
      },
    },
    onError: (error) => errors.push(error),
  });
  const engineConfig = {
    mdmInfo: { id: 'springfield-loadtest-mdm', name: 'Load Test MDM', metadata: 'tests/load' },
    serviceConfigUrl: simInfo.serviceConfigUrl,
    seed: SEED,
    notifications: { url: endpoint.url, authToken },
    unconfirmedSettleMs: UNCONFIRMED_SETTLE_MS,
    coalesceMs: COALESCE_MS,
    ...(COALESCE_QUIET_MS === undefined ? {} : { coalesceQuietMs: COALESCE_QUIET_MS }),
  };
  const engine = new Engine(engineConfig, Date.now());
  // The Driver gets the engine through a thin wrapper that notes when each request was emitted, so that the time it
  // then waits in the Driver (behind the store writes it must follow) can be told from the engine's own pacing.
  const emitted = new Map(); // engine request id → { decidedAt: the `now` pollOutputs was given, emittedAt: when it returned }
  const driverEngine = {
    handleInput: (input, now) => engine.handleInput(input, now),
    handleNotification: (accountId, authorization, body, now) => engine.handleNotification(accountId, authorization, body, now),
    pollOutputs(now) {
      const outputs = engine.pollOutputs(now);
      const at = Date.now();
      for (const o of outputs) if (o.type === 'request') emitted.set(o.id, { decidedAt: now, emittedAt: at });
      return outputs;
    },
  };

  // Every request is tagged (x-loadtest-id, copied into the simulator's log) with when it left and when its answer came.
  const fetchTransport = createFetchTransport({ timeoutMs: 30_000 });
  const client = new Map();
  const transportErrors = {};
  let requestSeq = 0;
  const transport = {
    async send(request) {
      const id = String(++requestSeq);
      const record = { sentAt: Date.now(), receivedAt: null, decidedAt: null, emittedAt: null, accountId: request.accountId, licensed: licensedBy(request), ...emitted.get(request.id) };
      emitted.delete(request.id);
      client.set(id, record);
      try {
        return await fetchTransport.send({ ...request, headers: { ...request.headers, 'x-loadtest-id': id } });
      } catch (error) {
        record.failed = true;
        const what = /timed out/.test(error?.message) ? 'timeout' : 'network error';
        transportErrors[what] = (transportErrors[what] ?? 0) + 1;
        throw error;
      } finally {
        record.receivedAt = Date.now();
      }
    },
  };

  const events = { counts: {}, unexpectedReleases: 0, unexpectedExamples: [], unexpectedReady: 0, assignmentFailed: [], requestFailed: 0, syncs: new Set(), morningSyncs: { full: 0, delta: 0 } };
  const awaiting = new Map(); // 'accountId|pair' → { at, kind: 'ready' | 'released', cause }
  const latency = { ready: [], released: [], byCause: {}, readyByPair: [] };
  let morning = false;
  let onReady = () => {};
  driver = new Driver({
    engine: driverEngine,
    transport,
    store: counted,
    onEvent(event) {
      events.counts[event.type] = (events.counts[event.type] ?? 0) + 1;
      if (morning && event.type === 'syncStarted') events.morningSyncs[event.kind]++;
      if (process.env.LOADTEST_TRACE && morning && !event.type.startsWith('license')) log(`  [${Date.now() - started} ms] ${JSON.stringify(event)}`);
      if (event.type === 'syncCompleted' && event.kind === 'full') events.syncs.add(event.accountId);
      if (event.type === 'requestFailed') events.requestFailed++;
      if (event.type === 'assignmentFailed') events.assignmentFailed.push(event);
      if (event.type !== 'licenseReady' && event.type !== 'licenseReleased') return;
      const key = `${event.accountId}|${pairOf(event.adamId, event.serialNumber === null ? 'user' : 'device', event.serialNumber ?? event.clientUserId)}`;
      const wait = awaiting.get(key);
      const kind = event.type === 'licenseReady' ? 'ready' : 'released';
      if (wait?.kind === kind) {
        awaiting.delete(key);
        const ms = Date.now() - wait.at;
        latency[kind].push(ms);
        (latency.byCause[wait.cause] ??= []).push(ms);
        if (kind === 'ready') latency.readyByPair.push([key.slice(key.indexOf('|') + 1), ms]);
        if (kind === 'ready') onReady(event, key);
      } else if (kind === 'released' && morning) {
        events.unexpectedReleases++;
        if (events.unexpectedExamples.length < 5) {
          events.unexpectedExamples.push(`${key} (${event.reason}; ${desired.get(event.accountId)?.has(key.slice(key.indexOf('|') + 1)) ? 'wanted' : 'not wanted'})`);
        }
      } else if (kind === 'ready' && morning) {
        events.unexpectedReady++;
      }
    },
    onError: (error) => errors.push(error),
  });

  // RSS, sampled (the peak of the whole run and of the morning), and the kernel's high-water mark at the end.
  const rss = { peak: 0, morningPeak: 0, atPeak: null };
  const sampler = setInterval(() => {
    const usage = process.memoryUsage();
    if (usage.rss > rss.peak) Object.assign(rss, { peak: usage.rss, atPeak: usage });
    if (morning) rss.morningPeak = Math.max(rss.morningPeak, usage.rss);
  }, 200);
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });

  const until = async (label, predicate, timeoutMs, everyMs = 250) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (await predicate()) return true;
      if (Date.now() > deadline) {
        log(`  ${label}: not within ${secs(timeoutMs)}`);
        return false;
      }
      await sleep(everyMs);
    }
  };
  const tokens = locs.map((L) => L.token);
  const pendingOps = () => locs.reduce((n, L) => n + engine.pendingOperations(L.accountId).length, 0);
  const appleMatches = async () => {
    const counts = await appleCall('assignmentCounts', { tokens });
    return locs.every((L) => counts[L.token] === desired.get(L.accountId).size);
  };

  try {
    // ---- add the accounts, full sync
    driver.start();
    for (const L of locs) driver.input({ type: 'addAccount', accountId: L.accountId, name: L.org.locationName, token: L.token });
    const t0 = Date.now();
    if (!await until('full sync', () => events.syncs.size === locs.length, 120_000)) throw new Error('accounts did not sync');
    log(`accounts added and synced in ${secs(Date.now() - t0)}`);

    // ---- warm-up: the policies as they stand before the morning (the fleet licensed), each stated in one input
    const t1 = Date.now();
    for (const L of locs) for (const p of L.policies.values()) driver.input({ type: 'setPolicy', policy: { ...p, targets: [...p.targets] } });
    const warm = [...desired.values()].reduce((n, s) => n + s.size, 0);
    if (!await until('warm-up', async () => pendingOps() === 0 && await appleMatches(), 600_000, 1000)) throw new Error('warm-up did not finish');
    await driver.writesSettled();
    log(`warm-up: ${fmt(warm)} licenses assigned in ${secs(Date.now() - t1)} (${fmt(writes.puts)} records written)`);

    // ---- the morning
    const logFrom = await appleCall('logLength');
    const writesBefore = { ...writes };
    if (!opts['no-faults']) await appleCall('faultsOn', { ...FAULTS, seed: SEED });
    const issued = []; // changes for the lower bounds
    const factCounts = {};
    let factsPending = 0;
    const morningStart = Date.now();
    morning = true;
    counted.byPrefix = writesByPrefix;
    loopDelay.enable();
    const at = () => Date.now() - morningStart;
    const input = (x) => driver.input(x);
    const expect = (L, pair, kind, cause, when) => awaiting.set(`${L.accountId}|${pair}`, { at: when, kind, cause });
    const want = (L, pair) => desired.get(L.accountId).add(pair);
    const drop = (L, pair) => desired.get(L.accountId).delete(pair);
    const installRng = rng.fork('installs');
    const pairOwner = new Map(); // 'accountId|pair' → L, for the device licenses the morning makes
    const installsFor = new Set(['enroll', 'teacherAdd', 'bulkEdit']);
    const installs = { ok: 0, failed: 0 };

    // The MDM reports each install's outcome some seconds after licenseReady: 2 % fail.
    onReady = (event, key) => {
      const L = pairOwner.get(key);
      if (!L) return;
      pairOwner.delete(key);
      const fails = installRng.chance(FAILED_INSTALLS);
      const delay = Math.min(exponential(INSTALL_MEAN_MS, installRng), 4 * INSTALL_MEAN_MS);
      factsPending++;
      setTimeout(() => {
        factsPending--;
        const now = Date.now();
        const x = { serialNumber: event.serialNumber, adamId: event.adamId };
        if (fails) {
          installs.failed++;
          const pair = pairOf(event.adamId, 'device', event.serialNumber);
          expect(L, pair, 'released', 'installFailed', now);
          drop(L, pair);
          issued.push({ kind: 'disassociate', loc: L.loc, targetKind: 'device', target: event.serialNumber, assets: [event.adamId], at: now - morningStart });
          input({ type: 'installFailed', ...x });
        } else {
          installs.ok++;
          input({ type: 'appInstalled', ...x });
        }
      }, delay);
    };

    const give = (fact) => {
      const { L } = fact;
      const now = Date.now();
      const t = now - morningStart;
      factCounts[fact.kind] = (factCounts[fact.kind] ?? 0) + 1;
      const gain = (serial, adamIds, cause) => {
        for (const a of adamIds) {
          const pair = pairOf(a, 'device', serial);
          expect(L, pair, 'ready', cause, now);
          want(L, pair);
          if (installsFor.has(cause)) pairOwner.set(`${L.accountId}|${pair}`, L);
        }
        issued.push({ kind: 'associate', loc: L.loc, targetKind: 'device', target: serial, assets: adamIds, at: t });
      };
      switch (fact.kind) {
        case 'enroll': {
          const apps = L.appsOf(L.group.get(fact.serial));
          gain(fact.serial, apps, 'enroll');
          input({ type: 'deviceEnrolled', serialNumber: fact.serial });
          for (const a of apps) input({ type: 'updatePolicyTargets', policyId: L.policyOf(a), add: [fact.serial] });
          break;
        }
        case 'retire': {
          for (const a of L.appsOf(L.group.get(fact.serial))) {
            const pair = pairOf(a, 'device', fact.serial);
            expect(L, pair, 'released', 'retire', now);
            drop(L, pair);
          }
          issued.push({ kind: 'revoke', loc: L.loc, targetKind: 'device', target: fact.serial, assets: [], at: t });
          input({ type: 'deviceRetired', serialNumber: fact.serial });
          break;
        }
        case 'remove': {
          const pair = pairOf(fact.adamId, 'device', fact.serial);
          expect(L, pair, 'released', 'appRemoved', now);
          drop(L, pair);
          issued.push({ kind: 'disassociate', loc: L.loc, targetKind: 'device', target: fact.serial, assets: [fact.adamId], at: t });
          input({ type: 'appRemoved', serialNumber: fact.serial, adamId: fact.adamId });
          break;
        }
        case 'userAdded':
          input({ type: 'userAdded', clientUserId: fact.user.clientUserId, managedAppleId: fact.user.managedAppleId });
          break;
        case 'userScope': {
          const pair = pairOf(L.userPolicy.adamId, 'user', fact.user.clientUserId);
          expect(L, pair, 'ready', 'userLicense', now);
          want(L, pair);
          // Apple learns of the user when it enters a user-license policy's scope: created first, then licensed.
          issued.push({ kind: 'createUsers', loc: L.loc, targetKind: 'user', target: fact.user.clientUserId, assets: [], at: t });
          issued.push({ kind: 'associate', loc: L.loc, targetKind: 'user', target: fact.user.clientUserId, assets: [L.userPolicy.adamId], at: t });
          input({ type: 'updatePolicyTargets', policyId: L.userPolicy.policyId, add: [fact.user.clientUserId] });
          break;
        }
        case 'teacherAdd':
          gain(fact.serial, [L.classApp], 'teacherAdd');
          input({ type: 'updatePolicyTargets', policyId: L.policyOf(L.classApp), add: [fact.serial] });
          break;
        case 'bulkEdit': {
          for (const s of L.bulkAdd) gain(s, [L.bulkApp], 'bulkEdit');
          for (const s of L.bulkRemove) {
            const pair = pairOf(L.bulkApp, 'device', s);
            expect(L, pair, 'released', 'bulkEdit', now);
            drop(L, pair);
            issued.push({ kind: 'disassociate', loc: L.loc, targetKind: 'device', target: s, assets: [L.bulkApp], at: t });
          }
          input({ type: 'updatePolicyTargets', policyId: L.policyOf(L.bulkApp), add: [...L.bulkAdd], remove: [...L.bulkRemove] });
          break;
        }
        default:
          throw new Error(`unknown fact ${fact.kind}`);
      }
    };

    log(`morning: ${fmt(facts.length)} scheduled facts over ${secs(S.morningMs)} …`);
    const inputLag = [];
    for (const fact of facts) {
      const wait = fact.at - at();
      if (wait > 0) await sleep(wait);
      inputLag.push(at() - fact.at);
      give(fact);
    }
    const factsDone = at();
    await until('install outcomes reported', () => factsPending === 0, 120_000);
    const outcomesIn = await until('licenseReady / licenseReleased for every fact', () => awaiting.size === 0, 180_000, 500);
    const morningEnd = at();
    log(`morning facts given by +${secs(factsDone)}; every outcome by +${secs(morningEnd)}${outcomesIn ? '' : ` (${awaiting.size} still missing)`}`);

    // ---- faults off, settle: nothing pending and Apple holds what the policies and facts want
    const faultCounts = opts['no-faults'] ? null : await appleCall('faultsOff');
    const settleStart = Date.now();
    const settled = await until('settle', async () => pendingOps() === 0 && locs.every((L) => driver.requestsInFlight(L.accountId) === 0) && await appleMatches(),
      UNCONFIRMED_SETTLE_MS + 120_000, 1000);
    await driver.writesSettled();
    const settleMs = Date.now() - settleStart;
    morning = false;
    counted.byPrefix = null;
    loopDelay.disable();
    const writesMorning = Object.fromEntries(Object.keys(writes).map((k) => [k, writes[k] - writesBefore[k]]));
    const vmHwm = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) * 1024;

    // ---- what Apple saw
    const fullLog = await appleCall('log', { from: 0 });
    const morningLog = fullLog.slice(logFrom);
    const assignments = await appleCall('assignments', { tokens });
    const notificationStats = await appleCall('notifications');
    return report({
      limits, locs, desired, assignments, fullLog, morningLog, client, issued, latency, writes, writesMorning, rss, vmHwm,
      events, errors, notified, notificationStats, faultCounts, factCounts, installs, awaiting, settled, settleMs, morningEnd,
      inputLag, engineStats: engine.stats(), warm, writesByPrefix, loopDelay, morningStart, transportErrors,
    });
  } finally {
    clearInterval(sampler);
    driver.stop();
    await driver.whenIdle().catch(() => {});
    await endpoint.close();
    await counted.close();
    engine.free();
  }
}

/**
 * What a request to Apple may license, for telling the licenses whose way met a fault: an association's pairs
 * (`adamId|serial`, `adamId|u:user`), a user creation's users (`u:user`, any app). Null for other requests.
 */
function licensedBy(request) {
  if (request.method !== 'POST' || typeof request.body !== 'string') return null;
  const path = new URL(request.url).pathname;
  if (path !== '/mdm/v2/assets/associate' && path !== '/mdm/v2/users/create') return null;
  const body = JSON.parse(request.body);
  if (body.users) return body.users.map((u) => `u:${u.clientUserId}`);
  const targets = [...(body.serialNumbers ?? []), ...(body.clientUserIds ?? []).map((u) => `u:${u}`)];
  return body.assets.flatMap((a) => targets.map((t) => `${a.adamId}|${t}`));
}

/** Whether a request met an injected fault on its way: refused (503, 429), dropped, answered late, or its event slow. */
function faulted(logEntry, clientRecord) {
  if (!logEntry || clientRecord.failed) return true;
  const late = logEntry.answeredAt !== null && logEntry.answeredAt - logEntry.at >= FAULTS.slowAnswerMs;
  return logEntry.status === 503 || logEntry.status === 429 || logEntry.dropped || logEntry.slowEvent || late;
}

/** The licenseReady latencies of the licenses none of whose requests met a fault (see `faulted`). */
function readyWithoutFaults(r) {
  const logById = new Map(r.morningLog.filter((e) => e.id !== null).map((e) => [e.id, e]));
  const touched = new Set();
  for (const [id, record] of r.client) {
    if (record.licensed && faulted(logById.get(id), record)) for (const key of record.licensed) touched.add(key);
  }
  return r.latency.readyByPair
    .filter(([pair]) => !touched.has(pair) && !touched.has(pair.slice(pair.indexOf('|') + 1)))
    .map(([, ms]) => ms);
}

function pairOf(adamId, licenseType, target) {
  return licenseType === 'user' ? `${adamId}|u:${target}` : `${adamId}|${target}`;
}

// ------------------------------------------------------------------------------------------- report

function report(r) {
  const { limits } = r;
  // Requests by kind during the morning (from its first fact to the end of the settle period).
  const kinds = ['associateAssets', 'disassociateAssets', 'revokeAssets', 'createUsers', 'userUpdates', 'eventStatus', 'pages', 'config', 'other'];
  const byKind = Object.fromEntries(kinds.map((k) => [k, { sent: 0, faulted: 0 }]));
  for (const e of r.morningLog) {
    const slot = byKind[requestKind(e)];
    slot.sent++;
    if (e.dropped || e.status === 503 || e.errorNumber === 9646) slot.faulted++;
  }
  const bounds = lowerBounds(r.issued, limits, COALESCE_MS);
  // LOADTEST_DUMP=<file>: the morning's requests (with their events) and the facts' changes, for a closer look.
  if (process.env.LOADTEST_DUMP) {
    writeFileSync(process.env.LOADTEST_DUMP, JSON.stringify({ morningStart: r.morningStart, limits, coalesceMs: COALESCE_MS, issued: r.issued, morningLog: r.morningLog, client: [...r.client] }));
  }
  const boundOf = { associateAssets: bounds.associate, disassociateAssets: bounds.disassociate, revokeAssets: bounds.revoke, createUsers: bounds.createUsers };
  const licenseKinds = Object.keys(boundOf);
  const licenseSent = licenseKinds.reduce((n, k) => n + byKind[k].sent, 0);
  const ratio = licenseSent / Math.max(1, bounds.total.withinWindow);
  const totalSent = r.morningLog.length;

  log('');
  log(`Apple requests, morning and settle (${secs(r.morningEnd + r.settleMs)}), ${fmt(totalSent)} in all:`);
  log(`  ${'kind'.padEnd(20)}${'sent'.padStart(8)}${'faulted'.padStart(9)}${'bound at once'.padStart(15)}${`bound within ${COALESCE_MS / 1000} s`.padStart(18)}`);
  for (const k of kinds) {
    if (byKind[k].sent === 0 && !boundOf[k]) continue;
    const b = boundOf[k];
    log(`  ${k.padEnd(20)}${fmt(byKind[k].sent).padStart(8)}${fmt(byKind[k].faulted).padStart(9)}${(b ? fmt(b.atOnce) : '').padStart(15)}${(b ? fmt(b.withinWindow) : '').padStart(18)}`);
  }
  log(`  ${'license requests'.padEnd(20)}${fmt(licenseSent).padStart(8)}${''.padStart(9)}${fmt(bounds.total.atOnce).padStart(15)}${fmt(bounds.total.withinWindow).padStart(18)}`);
  log(`  ratio to the bound within the window: ${ratio.toFixed(2)}× (check ≤ 1.2×); to the bound at once: ${(licenseSent / Math.max(1, bounds.total.atOnce)).toFixed(2)}×`);

  const ready = percentiles(r.latency.ready);
  const released = percentiles(r.latency.released);
  const line = (label, p) => `  ${label.padEnd(34)} n=${fmt(p.n).padEnd(7)} p50 ${secs(p.p50).padEnd(8)} p95 ${secs(p.p95).padEnd(8)} p99 ${secs(p.p99).padEnd(8)} max ${secs(p.max)}`;
  const target = COALESCE_MS + 5000;
  log('');
  log(`Latency from the fact (driver.input) to the engine's event, per license:`);
  log(line('→ licenseReady (all)', ready));
  log(line('→ licenseReleased (all)', released));
  for (const [cause, values] of Object.entries(r.latency.byCause)) log(line(`  ${cause}`, percentiles(values)));
  const clean = percentiles(readyWithoutFaults(r));
  log(line('→ licenseReady, no fault on its way', clean));
  log(`  target (issue 13): p99 → licenseReady ≤ coalesceMs + 5 s = ${secs(target)}: ${ready.p99 !== null && ready.p99 <= target ? 'ok' : 'MISSED'}` +
    ` (licenses whose requests met no injected fault: ${clean.p99 !== null && clean.p99 <= target ? 'ok' : 'MISSED'})`);
  const lag = percentiles(r.inputLag);
  log(`  input lag (scheduled → given): p99 ${secs(lag.p99)}, max ${secs(lag.max)}; event loop delay p50 ${secs(r.loopDelay.percentile(50) / 1e6)}, ` +
    `p99 ${secs(r.loopDelay.percentile(99) / 1e6)}, max ${secs(r.loopDelay.max / 1e6)}`);
  const morningRequests = [...r.client.values()].filter((c) => c.sentAt >= r.morningStart && c.emittedAt !== null);
  const drain = percentiles(morningRequests.map((c) => c.emittedAt - c.decidedAt));
  const dispatch = percentiles(morningRequests.map((c) => c.sentAt - c.emittedAt));
  log(`  requests: the engine's clock when it decided → pollOutputs returned: p99 ${secs(drain.p99)}, max ${secs(drain.max)}; ` +
    `→ the transport sent (waiting in the Driver behind store writes): p50 ${secs(dispatch.p50)}, p99 ${secs(dispatch.p99)}, max ${secs(dispatch.max)}`);

  log('');
  const w = r.writesMorning;
  log(`Store (${opts.store === 'memory' ? 'memory' : 'SQLite, WAL, synchronous=FULL'}): morning ${fmt(w.puts)} records put, ${fmt(w.deletes)} deleted, ${mib(w.bytes)} in ${fmt(w.applies)} transactions; ` +
    `whole run ${fmt(r.writes.puts)} put, ${fmt(r.writes.deletes)} deleted, ${mib(r.writes.bytes)} (counting them cost the backend ${secs(r.writes.countingMs)})`);
  log(`  by key prefix (morning): ${[...r.writesByPrefix].sort((a, b) => b[1].bytes - a[1].bytes)
    .map(([prefix, w]) => `${prefix} ${fmt(w.puts)}+${fmt(w.deletes)} ${mib(w.bytes)}`).join(', ')}`);
  const at = r.rss.atPeak ?? {};
  log(`Memory (backend process): peak RSS ${mib(r.rss.peak)} sampled (morning ${mib(r.rss.morningPeak)}), VmHWM ${mib(r.vmHwm)}; ` +
    `at the peak: JS heap ${mib(at.heapUsed ?? 0)} used of ${mib(at.heapTotal ?? 0)}, array buffers (wasm memory) ${mib(at.arrayBuffers ?? 0)}, external ${mib(at.external ?? 0)}`);
  log(`Facts: ${Object.entries(r.factCounts).map(([k, n]) => `${k} ${fmt(n)}`).join(', ')}; installs reported ${fmt(r.installs.ok)} ok, ${fmt(r.installs.failed)} failed`);
  log(`Notifications handled ${fmt(r.notified.handled)} (${Object.entries(r.notified.statuses).map(([s, n]) => `${s}: ${fmt(n)}`).join(', ')}); ` +
    `engine: ${fmt(r.engineStats.requestsIssued)} requests issued; events ${Object.entries(r.events.counts).map(([k, n]) => `${k} ${fmt(n)}`).join(', ')}`);
  log(`Of note: assignmentFailed ${r.events.assignmentFailed.length}, requestFailed ${r.events.requestFailed}, ` +
    `insufficientLicenses ${r.events.counts.insufficientLicenses ?? 0}, transport errors ${JSON.stringify(r.transportErrors)}, ` +
    `licenseReady nobody waited for ${r.events.unexpectedReady}, licenseReleased nobody asked for ${r.events.unexpectedReleases}` +
    `${r.events.unexpectedExamples.length ? ` (e.g. ${r.events.unexpectedExamples.join(', ')})` : ''}`);
  if (r.faultCounts) log(`Faults injected: ${Object.entries(r.faultCounts).map(([k, n]) => `${k} ${n}`).join(', ')}`);
  if (r.errors.length) log(`Driver / endpoint errors: ${r.errors.length}: ${r.errors.slice(0, 3).map(String).join(' | ')}`);

  // ---- checks
  const rules = checkRequestLog(r.fullLog, { limits, retryAfterS: FAULTS.retryAfterS, client: r.client, origin: r.morningStart });
  // The same sliding window on the times the engine emitted its requests (its own pacing) and the transport sent them
  // (after waiting in the Driver behind store writes): where a burst Apple saw was made.
  const peakOf = (field) => {
    const byAccount = new Map();
    for (const c of r.client.values()) {
      if (c[field] === null || c.accountId === null) continue;
      if (!byAccount.has(c.accountId)) byAccount.set(c.accountId, []);
      byAccount.get(c.accountId).push(c[field]);
    }
    return [...byAccount.values()].map((times) => {
      times.sort((a, b) => a - b);
      let i = 0;
      let peak = 0;
      for (let j = 0; j < times.length; j++) {
        while (times[j] - times[i] >= 1000) i++;
        peak = Math.max(peak, j - i + 1);
      }
      return peak;
    }).join(' / ');
  };
  const state = r.locs.map((L) => ({ L, ...compareState(r.desired.get(L.accountId), r.assignments[L.token]) }));
  const missing = state.reduce((n, s) => n + s.missing.length, 0);
  const extra = state.reduce((n, s) => n + s.extra.length, 0);
  const checks = [
    ['rate', 'rate ≤ maxRequestPerSecond per token in any second', rules.rate, `peak ${Object.values(rules.peakRatePerToken).join(' / ')} of ${limits.maxRequestPerSecond} as Apple saw them; ${peakOf('decidedAt')} by the engine's clock, ${peakOf('sentAt')} as the transport sent them`],
    ['Retry-After', 'nothing sent inside a Retry-After window', rules.retryAfter, ''],
    ['limits', 'request limits (and no request Apple rejected)', rules.limits, ''],
    ['double association', 'no pair associated twice while Apple held it', rules.doubleAssociation, ''],
    ['outcomes', 'every fact got its licenseReady / licenseReleased', { violations: r.awaiting.size, examples: [...r.awaiting.keys()].slice(0, 3) }, ''],
    ['final state', 'Apple holds exactly the desired licenses', { violations: missing + extra, examples: state.flatMap((s) => [...s.missing.slice(0, 2).map((p) => `${s.L.accountId} missing ${p}`), ...s.extra.slice(0, 2).map((p) => `${s.L.accountId} extra ${p}`)]) },
      `${fmt([...r.desired.values()].reduce((n, s) => n + s.size, 0))} licenses; missing ${missing}, extra ${extra}${r.settled ? '' : '; did not settle'}`],
    ['ratio', `license requests ≤ 1.2 × bound within the window`, { violations: ratio <= 1.2 ? 0 : 1, examples: [] }, `${fmt(licenseSent)} vs ${fmt(bounds.total.withinWindow)}: ${ratio.toFixed(2)}×`],
  ];
  log('');
  log('Checks (request log of the whole run, warm-up included):');
  let failed = 0;
  for (const [name, label, result, detail] of checks) {
    const ok = result.violations === 0;
    // The 1.2x target is issue 13's acceptance at full size; at CI size a handful of requests moves the ratio past it.
    const judged = !(opts.small && name === 'ratio');
    if (!ok && judged) failed++;
    log(`  ${ok ? 'ok  ' : judged ? 'FAIL' : 'info'} ${label}${detail ? ` (${detail})` : ''}${ok ? '' : `: ${result.violations} — ${result.examples.join('; ')}`}`);
  }
  const violations = rules.rate.violations + rules.retryAfter.violations + rules.limits.violations + rules.doubleAssociation.violations;

  log('');
  log(`SUMMARY loadtest ${SIZE_NAME}: license requests ${fmt(licenseSent)} vs bound ${fmt(bounds.total.withinWindow)} within ${COALESCE_MS / 1000} s ` +
    `(${ratio.toFixed(2)}×; at once ${fmt(bounds.total.atOnce)}); p99 ready ${secs(ready.p99)}, released ${secs(released.p99)}; ` +
    `writes ${fmt(w.puts + w.deletes)} (${mib(w.bytes)}); peak RSS ${mib(Math.max(r.rss.peak, r.vmHwm))}; rule violations ${violations}; ` +
    `final state ${missing + extra === 0 ? 'exact' : `off by ${missing + extra}`}; ${failed === 0 ? 'PASS' : `FAIL (${failed} check${failed > 1 ? 's' : ''})`}`);
  log('| run | license requests / bound within coalesceMs | bound at once | fact → licenseReady p50 / p95 / p99 | ' +
    'fact → licenseReleased p50 / p95 / p99 | store writes, morning (put / deleted) | peak RSS | rule violations | final state | checks |');
  log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  log(`| ${SIZE_NAME}, ${opts.store === 'memory' ? 'memory store' : 'SQLite'}, seed ${SEED} | ` +
    `${fmt(licenseSent)} / ${fmt(bounds.total.withinWindow)} (${ratio.toFixed(2)}×) | ${fmt(bounds.total.atOnce)} | ` +
    `${secs(ready.p50)} / ${secs(ready.p95)} / ${secs(ready.p99)} | ${secs(released.p50)} / ${secs(released.p95)} / ${secs(released.p99)} | ` +
    `${fmt(w.puts)} / ${fmt(w.deletes)} (${mib(w.bytes)}) | ${mib(Math.max(r.rss.peak, r.vmHwm))} | ${violations} | ${missing + extra === 0 ? 'exact' : `off by ${missing + extra}`} | ` +
    `${failed === 0 ? 'PASS' : `FAIL: ${checks.filter(([, , result]) => result.violations > 0).map(([name]) => name).join(', ')}`} |`);
  return failed === 0 ? 0 : 1;
}
