// Row 9 (issue 14, item 4): the first full sync of the benchmark world end to end, as an MDM backend runs it.
//   node scripts/bench/first-sync.mjs --pkg DIR [--quick] --out FILE
//
//   Apple:   the Apps and Books simulator over HTTP in its own process (tests/load/apple.mjs, as the load test runs it),
//            seeded there with the location of scripts/bench/world.mjs (`seedSimulator`: 1,000 apps, 1,000,000 device
//            assignments, 10,000 users; --quick 10,000 assignments) and enforcing maxRequestPerSecond per sToken.
//   Backend: this process: the package's Engine (DIR's wasm), the host shim's Driver and fetch transport, a SqliteStore
//            in a temp dir; the engine's default config but for the simulator's service-config URL, this MDM and a seed.
//
// Times the wall from the first request leaving to the `syncCompleted` of the first full sync, against Apple's floor:
// the requests Apple counts toward the rate limit (every one but the service config's) ÷ maxRequestPerSecond.
// Reports the requests by purpose, peak RSS, the bytes written to the store, the CPU of the engine, of this process
// and of the simulator, and where the wall time went. `node --cpu-prof scripts/bench/first-sync.mjs …` profiles it.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { Driver, createFetchTransport } from '../../host-shim/index.js';
import { SqliteStore } from '../../host-shim/node/sqlite-store.js';
import { forkApple } from '../../tests/load/apple-process.mjs';
import { checkRequestLog, countingStore, percentiles } from '../../tests/load/lib.mjs';
import { ACCOUNT, ourMdm } from './world.mjs';

const args = process.argv.slice(2);
const option = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const quick = args.includes('--quick');
const pkg = resolve(option('--pkg') ?? 'pkg');
const out = option('--out');
const log = (text) => process.stderr.write(`first-sync: ${text}\n`);
/** The first full sync must end within this (full size: ~1,000 requests at 15 a second take over a minute). */
const SYNC_TIMEOUT_MS = 15 * 60_000;
const SERVICE_CONFIG_PATH = '/mdm/v2/service/config';
/** The engine's default `rateLimitMarginMs`: it lets maxRequestPerSecond requests go per 1 s + this. */
const ENGINE_RATE_MARGIN_MS = 250;

const { Engine } = await import(pathToFileURL(join(pkg, 'vpp_license_engine.node.mjs')).href);

/** CPU seconds of this thread (Linux), or null. */
function threadCpu() {
  try {
    return Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e9;
  } catch {
    return null;
  }
}

/** Bytes this process caused to be written to storage (Linux /proc/self/io), or null. */
function diskWriteBytes() {
  try {
    return Number(/^write_bytes: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))[1]);
  } catch {
    return null;
  }
}

const cpuSeconds = (usage) => (usage.user + usage.system) / 1e6;

/** Time during which at least one of some overlapping operations was under way (`begin()` … `end()`), in ms. */
function busyClock() {
  let open = 0;
  let since = 0;
  const clock = {
    ms: 0,
    begin() {
      if (open++ === 0) since = performance.now();
    },
    end() {
      if (--open === 0) clock.ms += performance.now() - since;
    },
  };
  return clock;
}

/** Wraps the engine's calls the Driver makes, adding their wall time (the main thread's, synchronous) to `spent.ms`. */
function timedEngine(engine, spent) {
  const timed = (f) => (...a) => {
    const t = performance.now();
    try {
      return f(...a);
    } finally {
      const ms = performance.now() - t;
      spent.ms += ms;
      spent.maxMs = Math.max(spent.maxMs, ms);
      spent.calls++;
    }
  };
  return {
    handleInput: timed((input, now) => engine.handleInput(input, now)),
    pollOutputs: timed((now) => engine.pollOutputs(now)),
    handleNotification: timed((accountId, authorization, body, now) => engine.handleNotification(accountId, authorization, body, now)),
  };
}

async function run(apple, dir) {
  const sim = await apple.call('start', { port: 0, seed: 7 });
  const seedStart = performance.now();
  const world = await apple.call('seed', {
    module: new URL('./world.mjs', import.meta.url).href, name: 'seedSimulator', args: { scale: quick ? 'quick' : 'full' },
  });
  log(`simulator seeded with ${world.assignments.toLocaleString('en-US')} assignments, ${world.apps} apps, ${world.users} users ` +
    `(pages of ${world.pageSize}) in ${((performance.now() - seedStart) / 1000).toFixed(1)} s; limits ${JSON.stringify(sim.limits)}`);

  // ---- the backend
  const dbPath = join(dir, 'vpp.db');
  const sqlite = SqliteStore.open(dbPath);
  const counted = countingStore(sqlite);
  const writing = busyClock();
  let longestApplyMs = 0;
  let syncDone = false;
  const writesAfterSync = { applies: 0, records: 0 }; // the sync's records are written once it completes
  const store = {
    apply(ops) {
      if (syncDone) {
        writesAfterSync.applies++;
        writesAfterSync.records += ops.length;
      }
      writing.begin();
      const t = performance.now();
      return Promise.resolve(counted.apply(ops)).finally(() => {
        longestApplyMs = Math.max(longestApplyMs, performance.now() - t);
        writing.end();
      });
    },
    load: () => counted.load(),
  };
  const sending = busyClock();
  const fetchTransport = createFetchTransport({ timeoutMs: 60_000 });
  // Each request is tagged (x-loadtest-id, copied into the simulator's log) to tell when it left from when Apple saw it.
  const sent = []; // { purpose, sentAt, sentDate, ms } per request, in the order sent (its id: index + 1)
  const transport = {
    async send(request) {
      const record = { purpose: request.purpose, sentAt: performance.now(), sentDate: Date.now(), ms: null };
      sent.push(record);
      const id = String(sent.length);
      sending.begin();
      try {
        return await fetchTransport.send({ ...request, headers: { ...request.headers, 'x-loadtest-id': id } });
      } finally {
        record.ms = performance.now() - record.sentAt;
        sending.end();
      }
    },
  };
  const engine = new Engine({ mdmInfo: ourMdm, serviceConfigUrl: sim.serviceConfigUrl, seed: 7 }, Date.now());
  const inEngine = { ms: 0, maxMs: 0, calls: 0 };
  const errors = [];
  const events = {};
  let completed;
  const fullSync = new Promise((resolveSync, reject) => {
    completed = resolveSync;
    setTimeout(() => reject(new Error(`no full syncCompleted within ${SYNC_TIMEOUT_MS / 1000} s; events ${JSON.stringify(events)}`)), SYNC_TIMEOUT_MS).unref();
  });
  const driver = new Driver({
    engine: timedEngine(engine, inEngine),
    transport,
    store,
    onEvent(event) {
      events[event.type] = (events[event.type] ?? 0) + 1;
      if (event.type === 'syncCompleted' && event.kind === 'full') {
        syncDone = true;
        completed({ event, at: performance.now(), date: Date.now() });
      }
    },
    onError: (error) => errors.push(error),
  });

  // Peak RSS: the kernel's high-water mark at the end; sampled, what the memory held at the sampled peak.
  const rss = { peak: 0, atPeak: null };
  const sampler = setInterval(() => {
    const now = process.memoryUsage.rss();
    if (now > rss.peak) Object.assign(rss, { peak: now, atPeak: process.memoryUsage() });
  }, 200);
  const loopDelay = monitorEventLoopDelay({ resolution: 10 });
  loopDelay.enable();
  const before = {
    rssHighWater: process.resourceUsage().maxRSS * 1024,
    cpu: process.cpuUsage(),
    thread: threadCpu(),
    disk: diskWriteBytes(),
    loop: performance.eventLoopUtilization(),
    simulator: await apple.call('usage'),
    logLength: await apple.call('logLength'),
  };

  let sync;
  try {
    driver.start();
    driver.input({ type: 'addAccount', accountId: ACCOUNT, name: 'Bench District', token: world.token });
    sync = await fullSync;
    await driver.writesSettled();
  } finally {
    clearInterval(sampler);
    loopDelay.disable();
    driver.stop();
  }
  const storedAt = performance.now();
  const after = {
    cpu: process.cpuUsage(before.cpu),
    thread: threadCpu(),
    disk: diskWriteBytes(),
    loop: performance.eventLoopUtilization(before.loop),
    simulator: await apple.call('usage'),
  };
  await driver.whenIdle();
  const engineStats = engine.stats();
  engine.free();
  await counted.close();
  const sqliteFileBytes = statSync(dbPath).size; // closing checkpoints the WAL into the file and removes it
  const peakRssBytes = process.resourceUsage().maxRSS * 1024;

  // ---- what Apple saw: the requests that arrived up to syncCompleted
  const appleLog = (await apple.call('log', { from: before.logLength })).filter((e) => e.at <= sync.date);
  const rateLimited = appleLog.filter((e) => e.token !== null && e.path !== SERVICE_CONFIG_PATH);
  const rules = checkRequestLog(appleLog, { limits: sim.limits, retryAfterS: 0, client: new Map() });
  const answered = (code) => appleLog.filter((e) => e.status === code).length;
  const simulatorMs = percentiles(appleLog.filter((e) => e.answeredAt !== null).map((e) => e.answeredAt - e.at));
  const sentOf = (e) => (e.id === null ? undefined : sent[Number(e.id) - 1]);
  // From the transport's send to the simulator's arrival stamp: the HTTP client, the loopback and both event loops.
  const arrivalMs = percentiles(appleLog.filter((e) => sentOf(e)).map((e) => e.at - sentOf(e).sentDate));
  // Each refusal for the rate: the requests Apple counted in the second before it, when each left and arrived.
  const refusals = appleLog.filter((e) => e.status === 429).map((refused) => {
    const window = appleLog.filter((e) => e.token === refused.token && e.at > refused.at - 1000 && e.at <= refused.at);
    const start = sentOf(window[0])?.sentDate ?? window[0].at;
    return {
      path: refused.path,
      atSeconds: (refused.at - sent[0].sentDate) / 1000,
      inWindow: window.length,
      arrivedWithinMs: refused.at - window[0].at,
      leftWithinMs: sentOf(refused) ? sentOf(refused).sentDate - start : null,
      requests: window.map((e) => ({ leftMs: sentOf(e) ? sentOf(e).sentDate - start : null, arrivedMs: e.at - start, answeredMs: e.answeredAt === null ? null : e.answeredAt - start })),
    };
  });

  const first = sent[0].sentAt;
  const inSync = sent.filter((r) => r.sentAt <= sync.at);
  const byPurpose = {};
  for (const r of inSync) byPurpose[r.purpose] = (byPurpose[r.purpose] ?? 0) + 1;
  const wallSeconds = (sync.at - first) / 1000;
  const max = sim.limits.maxRequestPerSecond;
  const floorSeconds = rateLimited.length / max;
  // The engine lets `max` requests go per 1 s + its rateLimitMarginMs: N requests need (⌈N / max⌉ − 1) such windows.
  const pacingFloorSeconds = (Math.ceil(rateLimited.length / max) - 1) * (1000 + ENGINE_RATE_MARGIN_MS) / 1000;
  const roundTrip = percentiles(inSync.filter((r) => r.ms !== null).map((r) => r.ms));
  const mainThreadSeconds = before.thread === null || after.thread === null ? null : after.thread - before.thread;
  const event = sync.event;

  return {
    part: 'first-sync',
    quick,
    world: { apps: world.apps, assignments: world.assignments, users: world.users, pageSize: world.pageSize },
    synced: { assets: event.assets, assignments: event.assignments, users: event.users },
    complete: event.assignments === world.assignments && event.assets === world.apps && event.users === world.users,
    limits: { maxRequestPerSecond: max },
    requests: {
      sent: inSync.length,
      byPurpose,
      arrived: appleLog.length,
      rateLimited: rateLimited.length,
      answered429: answered(429),
      errors: appleLog.filter((e) => e.status !== 200).length,
      peakPerSecond: Math.max(0, ...Object.values(rules.peakRatePerToken)),
      roundTripMs: roundTrip,
      arrivalMs,
      simulatorMs,
      refusals,
    },
    floorSeconds,
    pacingFloorSeconds,
    wallSeconds,
    ratio: wallSeconds / floorSeconds,
    storedSeconds: (storedAt - first) / 1000,
    memory: {
      peakRssBytes,
      rssHighWaterBeforeBytes: before.rssHighWater,
      sampledPeakBytes: rss.peak,
      atSampledPeak: rss.atPeak,
      simulatorPeakRssBytes: after.simulator.maxRssBytes,
    },
    store: {
      kind: 'SqliteStore (WAL, synchronous=FULL)',
      applies: counted.writes.applies,
      puts: counted.writes.puts,
      deletes: counted.writes.deletes,
      bytes: counted.writes.bytes,
      countingSeconds: counted.writes.countingMs / 1000,
      afterSyncCompleted: writesAfterSync,
      sqliteFileBytes,
      diskWriteBytes: before.disk === null || after.disk === null ? null : after.disk - before.disk,
    },
    time: {
      engineSeconds: inEngine.ms / 1000,
      engineCalls: inEngine.calls,
      longestEngineCallMs: inEngine.maxMs,
      longestStoreApplyMs: longestApplyMs,
      eventLoopDelayMs: { p50: loopDelay.percentile(50) / 1e6, p99: loopDelay.percentile(99) / 1e6, max: loopDelay.max / 1e6 },
      storeBusySeconds: writing.ms / 1000,
      httpBusySeconds: sending.ms / 1000,
      eventLoopUtilization: after.loop.utilization,
      mainThreadCpuSeconds: mainThreadSeconds,
      processCpuSeconds: cpuSeconds(after.cpu),
      simulatorCpuSeconds: cpuSeconds(after.simulator.cpu) - cpuSeconds(before.simulator.cpu),
    },
    engineStats,
    events,
    errors: errors.map(String),
  };
}

const apple = forkApple();
const dir = mkdtempSync(join(tmpdir(), 'vpp-first-sync-'));
let report;
try {
  report = await run(apple, dir);
} finally {
  await apple.call('close').catch(() => {});
  apple.disconnect();
  rmSync(dir, { recursive: true, force: true });
}
const mb = (bytes) => `${(bytes / 1e6).toFixed(1)} MB`;
const t = report.time;
log(`${report.requests.sent} requests (${JSON.stringify(report.requests.byPurpose)}), ${report.requests.rateLimited} of them rate-limited: floor ${report.floorSeconds.toFixed(1)} s; `
  + `wall to syncCompleted ${report.wallSeconds.toFixed(1)} s, ${report.ratio.toFixed(2)}× (the engine's own pacing: ${report.pacingFloorSeconds.toFixed(1)} s); `
  + `every record stored at ${report.storedSeconds.toFixed(1)} s; ${report.requests.answered429} refused for the rate (peak ${report.requests.peakPerSecond} in a second)`);
log(`peak RSS ${mb(report.memory.peakRssBytes)}; store ${report.store.puts} puts in ${report.store.applies} writes, ${mb(report.store.bytes)} `
  + `(SQLite file ${mb(report.store.sqliteFileBytes)}, ${report.store.diskWriteBytes === null ? '?' : mb(report.store.diskWriteBytes)} to disk); `
  + `engine calls ${t.engineSeconds.toFixed(2)} s, store busy ${t.storeBusySeconds.toFixed(2)} s, HTTP busy ${t.httpBusySeconds.toFixed(2)} s, `
  + `event loop ${(t.eventLoopUtilization * 100).toFixed(0)} % busy; CPU: main thread ${t.mainThreadCpuSeconds?.toFixed(2)} s, `
  + `process ${t.processCpuSeconds.toFixed(2)} s, simulator ${t.simulatorCpuSeconds.toFixed(2)} s`);
if (report.errors.length > 0) log(`Driver errors: ${report.errors.slice(0, 3).join(' | ')}`);
const text = JSON.stringify(report, null, 2);
if (out) writeFileSync(out, text); else process.stdout.write(`${text}\n`);
