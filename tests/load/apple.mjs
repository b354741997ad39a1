// "Apple" for the load test: the Apps and Books simulator in its own process (so that the backend's CPU, event loop
// and peak RSS are the backend's alone), driven over IPC (tests/load/apple-process.mjs) by tests/load/loadtest.mjs and
// scripts/bench/first-sync.mjs. Faults are drawn here:
// after each handled request, the next request gets a fault with probability `requestRate`; after each accepted
// asset or user event, the next event is slow with probability `slowEventRate`.
import { startSimulator } from '../../host-shim/simulator/index.js';
import { Random } from '../../host-shim/simulator/random.js';

let sim = null;
let faults = null;
const counts = { 503: 0, 429: 0, drop: 0, slowAnswer: 0, slowEvent: 0 };
const slowEvents = new Set(); // event ids submitted with the slow delay

/** Request faults: 503 + Retry-After, 429, a dropped connection, a slow answer (weights in `mix`). */
function armFaults(spec) {
  const rng = new Random(spec.seed);
  const kinds = Object.entries(spec.mix);
  const total = kinds.reduce((sum, [, w]) => sum + w, 0);
  const pickKind = () => {
    let roll = rng.next() * total;
    for (const [kind, w] of kinds) if ((roll -= w) < 0) return kind;
    return kinds[kinds.length - 1][0];
  };
  faults = { ...spec, on: true };
  let slowNext = false;
  sim.setReplyHook((entry) => {
    if (!faults?.on) return;
    if (entry.eventId !== undefined && slowNext) {
      // This event was submitted with the slow delay: the next one is drawn afresh.
      counts.slowEvent++;
      slowEvents.add(entry.eventId);
      slowNext = false;
      sim.setEventDelay(spec.eventDelayMs);
    }
    if (entry.eventId !== undefined && rng.chance(spec.slowEventRate)) {
      slowNext = true;
      sim.setEventDelay(spec.slowEventMs);
    }
    if (!rng.chance(spec.requestRate)) return;
    const kind = pickKind();
    counts[kind]++;
    if (kind === '503') sim.injectFault({ status: 503, retryAfter: String(spec.retryAfterS) });
    else if (kind === '429') sim.injectFault({ status: 429 });
    else if (kind === 'drop') sim.injectFault({ drop: true });
    else sim.injectFault({ delayMs: spec.slowAnswerMs });
  });
}

function stopFaults() {
  if (!faults) return;
  faults.on = false;
  sim.setReplyHook(null);
  sim.clearFaults();
  sim.setEventDelay(faults.eventDelayMs);
}

const pairKey = (a) => `${a.adamId}|${a.serialNumber ?? `u:${a.clientUserId}`}`;

const commands = {
  async start(options) {
    sim = await startSimulator({ ...options, logHeaders: ['x-loadtest-id'] });
    return { url: sim.url, serviceConfigUrl: sim.serviceConfigUrl, limits: sim.limits };
  },
  addOrganization(options) {
    const org = sim.addOrganization(options);
    return {
      token: org.token,
      locationName: org.locationName,
      serialNumbers: org.serialNumbers,
      assets: org.assets,
      users: org.users.map(({ clientUserId, status }) => ({ clientUserId, status })),
    };
  },
  /**
   * Runs the export `name` of the ES module `module` (a URL) as `fn(sim, args)` in this process and returns its result:
   * content built here (a large location, say) costs the caller neither the time nor the memory of sending it over.
   */
  async seed({ module, name, args }) {
    const fn = (await import(module))[name];
    if (typeof fn !== 'function') throw new TypeError(`${module} exports no function ${name}`);
    return fn(sim, args);
  },
  /** This process's CPU time so far (µs, process.cpuUsage) and peak RSS (bytes). */
  usage() {
    return { cpu: process.cpuUsage(), maxRssBytes: process.resourceUsage().maxRSS * 1024 };
  },
  /** Sets each asset's available count to at least `available` ({ token, adamId, available }[]). */
  provision(list) {
    for (const { token, adamId, available } of list) {
      sim.mutate(token, (org) => {
        const asset = org.asset(adamId, 'STDQ');
        if (!org.isUnlimited(adamId, 'STDQ') && asset.availableCount < available) {
          org.adjustAssetCount(adamId, 'STDQ', available - asset.availableCount);
        }
      });
    }
    return true;
  },
  faultsOn(spec) {
    armFaults(spec);
    return true;
  },
  faultsOff() {
    stopFaults();
    return { ...counts };
  },
  /** Request log entries from index `from` on, with the details of the asset and user events they created. */
  log({ from }) {
    return sim.requestLog.slice(from).map((e) => {
      const event = e.eventId === undefined ? undefined : sim.event(e.eventId);
      return {
        at: e.at, answeredAt: e.answeredAt ?? null, method: e.method, path: e.path, token: e.token, status: e.status,
        errorNumber: e.errorNumber, dropped: e.dropped === true, id: e.headers?.['x-loadtest-id'] ?? null,
        eventId: e.eventId ?? null, slowEvent: e.eventId !== undefined && slowEvents.has(e.eventId),
        event: event && { eventType: event.eventType, eventStatus: event.eventStatus, failures: event.failures, request: event.request },
      };
    });
  },
  logLength() {
    return sim.requestLog.length;
  },
  /** Every (adamId, target) pair each location holds, as 'adamId|serial' / 'adamId|u:clientUserId'. */
  assignments({ tokens }) {
    return Object.fromEntries(tokens.map((token) => [token, sim.organization(token).assignments.map(pairKey)]));
  },
  assignmentCounts({ tokens }) {
    return Object.fromEntries(tokens.map((token) => [token, sim.organization(token).assignments.length]));
  },
  notifications() {
    const byType = {};
    for (const n of sim.notificationLog) {
      const slot = (byType[n.notificationType] ??= { attempts: 0, failed: 0 });
      slot.attempts++;
      if (n.status === null || n.status >= 300) slot.failed++;
    }
    return byType;
  },
  async close() {
    stopFaults();
    await sim?.close();
    return true;
  },
};

process.on('message', async ({ id, cmd, args }) => {
  try {
    const result = await commands[cmd](args);
    process.send({ id, result });
  } catch (error) {
    process.send({ id, error: String(error?.stack ?? error) });
  }
});
process.on('disconnect', () => process.exit(0));
