// The benchmark world for the wasm runs: the same location data, Apple pages, bench Apple and host
// loop as benches/engine/world.rs (keep the two in step: the report compares the page bytes).

export const START = 1_795_392_000_000; // 2026-11-23T00:00:00Z
export const SERVICE_CONFIG_URL = 'https://apple.bench/mdm/v2/service/config';
export const ACCOUNT = 'district';
/** The bearer Apple's notifications carry (the engine subscribes with it). */
export const NOTIFICATION_TOKEN = 'bench-notification-token';
/** The location's id at Apple (client config, notifications). */
export const LOCATION_UID = '2049025000431439';
export const OTHER_APPS_PER_DEVICE = 4;

export const SCALES = {
  // 1,000,000 assignments: 200,000 devices × 5 apps of 1,000; 10,000 users; pages of 1,000.
  full: { devices: 200_000, apps: 1_000, users: 10_000, pageSize: 1_000, scopeChange: 50_000 },
  // The CI variant: 10,000 assignments.
  quick: { devices: 2_000, apps: 100, users: 100, pageSize: 1_000, scopeChange: 500 },
};

export const assignmentCount = (scale) => scale.devices * (1 + OTHER_APPS_PER_DEVICE);

/** The apps device `d` holds: app 0 and four consecutive others. */
export function appsOf(scale, d) {
  const others = scale.apps - 1;
  const apps = [0];
  for (let k = 0; k < OTHER_APPS_PER_DEVICE; k++) apps.push(1 + ((d * OTHER_APPS_PER_DEVICE + k) % others));
  return apps;
}

/** The devices holding each app, by app index. */
export function holders(scale) {
  const result = Array.from({ length: scale.apps }, () => []);
  for (let d = 0; d < scale.devices; d++) for (const a of appsOf(scale, d)) result[a].push(d);
  return result;
}

export const serial = (d) => `DMPB${String(d).padStart(8, '0')}`;
const adamIds = [];
/** App `a`'s adamId, one string per app (the simulator's million assignments share them). */
export const adamId = (a) => (adamIds[a] ??= String(1_400_000_000 + a * 7));
export const userId = (u) => `client-${String(u).padStart(7, '0')}`;
export const range = (n) => Array.from({ length: n }, (_, i) => i);

export const ourMdm = { id: 'bench-mdm-0001', name: 'Bench MDM', metadata: '1.0' };
export const config = () => ({
  mdmInfo: ourMdm, serviceConfigUrl: SERVICE_CONFIG_URL, seed: 7,
  notifications: { url: 'https://mdm.bench/apple', authToken: NOTIFICATION_TOKEN },
  // The engine's default, spelled out: the Reconcile row runs simulated time to the end of this window.
  coalesceMs: 5_000,
});

/** An sToken file's text; `secret` gives a token of its own (the engine refuses one token on two accounts). */
export function token(secret = 'bench-secret') {
  const file = { expDate: '2027-11-23T00:00:00+0000', orgName: 'ORG-BENCH', token: secret };
  return Buffer.from(JSON.stringify(file)).toString('base64');
}

// Key order as serde_json writes it on the Rust side (sorted), so that both sides parse the same bytes.
const mdmJson = JSON.stringify({ id: ourMdm.id, metadata: ourMdm.metadata, name: ourMdm.name });

/** One location's data at Apple: `assignments` are [app, serial] pairs. */
export function districtOrg(scale) {
  const assignments = [];
  for (let d = 0; d < scale.devices; d++) {
    const s = serial(d);
    for (const a of appsOf(scale, d)) assignments.push([a, s]);
  }
  return { apps: scale.apps, spare: scale.devices, assignments, users: scale.users, pageSize: scale.pageSize };
}

/** Apps with `spare` licenses each and nothing assigned. */
export const emptyOrg = (apps, spare, users) => ({ apps, spare, assignments: [], users, pageSize: 1_000 });

function paged(key, records, pageSize, versionId) {
  const total = Math.max(1, Math.ceil(records.length / pageSize));
  return range(total).map((i) => {
    const slice = records.slice(i * pageSize, (i + 1) * pageSize);
    const next = i + 1 < total ? `"nextPageIndex":${i + 1},` : '';
    return `{"${key}":[${slice.join(',')}],"currentPageIndex":${i},${next}"size":${slice.length},"totalPages":${total},`
      + `"tokenExpirationDate":"2027-11-23T00:00:00+0000","uId":"2049025000431439","versionId":"${versionId}","mdmInfo":${mdmJson}}`;
  });
}

/** How many devices hold each app, by app index. */
function assignedCounts(org) {
  const assigned = new Array(org.apps).fill(0);
  for (const [a] of org.assignments) assigned[a]++;
  return assigned;
}

// The records of one location as Get Assets, Get Assignments and Get Users show them (keys in serde_json's order).
const assetRecord = (org, a, assigned) => ({
  adamId: adamId(a), assignedCount: assigned, availableCount: org.spare, deviceAssignable: true, pricingParam: 'STDQ',
  productType: 'App', retiredCount: 0, revocable: true, supportedPlatforms: ['iOS', 'macOS'], totalCount: assigned + org.spare,
});
const assignmentRecord = ([a, s]) => ({ adamId: adamId(a), pricingParam: 'STDQ', serialNumber: s });
const userRecord = (u) => ({
  clientUserId: userId(u), email: `student${u}@district.example`, idHash: 'leSKk3IaE2vk2KLmv2k3/200D3=', status: 'Associated',
});

/** Apple's answers, prepared as the strings the host receives. */
export function buildPages(org) {
  const assigned = assignedCounts(org);
  const assets = range(org.apps).map((a) => JSON.stringify(assetRecord(org, a, assigned[a])));
  const assignments = org.assignments.map((pair) => JSON.stringify(assignmentRecord(pair)));
  const users = range(org.users).map((u) => JSON.stringify(userRecord(u)));
  const limits = { maxAssets: 25, maxClientUserIds: 1000, maxRequestPerSecond: 15, maxRevokeClientUserIds: 100,
    maxRevokeSerialNumbers: 100, maxSerialNumbers: 1000, maxUsers: 100 };
  return {
    serviceConfig: JSON.stringify({ errorCodes: [], limits, urls: {} }),
    clientConfig: `{"countryISO2ACode":"US","locationName":"Bench District","mdmInfo":${mdmJson},"uId":"2049025000431439"}`,
    assets: paged('assets', assets, org.pageSize, 'a1f0c740-514c-11eb-bb63-a90b882fcd52'),
    assignments: paged('assignments', assignments, org.pageSize, '009061cb-87d1-4ea8-ae4c-7849dc49224e'),
    users: paged('users', users, org.pageSize, '021f10a0-7035-11eb-9f67-bd1df52e1e13'),
  };
}

/**
 * Adds the benchmark world's location at `scale` ('full' or 'quick') to an Apps and Books simulator
 * (host-shim/simulator): the same apps and counts, assignments (in the same order) and users as `buildPages` serves,
 * through the simulator's state API, with its page size. The simulator's own envelope (uId, token expiry, versionIds)
 * and limits (Apple's example: the same as `buildPages`') stay. Run in the simulator's process
 * (tests/load/apple.mjs `seed`). Returns the location's sToken and its counts.
 */
export function seedSimulator(sim, { scale: name }) {
  const scale = SCALES[name];
  const org = districtOrg(scale);
  const assigned = assignedCounts(org);
  const location = sim.addOrganization({
    orgName: 'ORG-BENCH', locationName: 'Bench District', apps: 0, freeApps: 0, books: 0, devices: 0, users: 0,
  });
  sim.setPageSize(scale.pageSize);
  sim.mutate(location.token, (o) => {
    for (const a of range(org.apps)) {
      const { assignedCount, availableCount, ...asset } = assetRecord(org, a, assigned[a]); // Apple derives these two
      o.addAsset(asset);
    }
    for (const u of range(org.users)) o.addUser(userRecord(u));
    for (const pair of org.assignments) o.addAssignment(assignmentRecord(pair));
  });
  return { token: location.token, apps: org.apps, assignments: org.assignments.length, users: org.users, pageSize: scale.pageSize };
}

const SUBMISSIONS = ['associateAssets', 'disassociateAssets', 'revokeAssets', 'createUsers'];

/** Answers every request from the prepared pages; license operations stay pending. Counts by purpose. */
export class BenchApple {
  constructor(pages) {
    this.pages = pages;
    /** The location of each other account (by account id); the rest answer from `pages`. */
    this.locations = new Map();
    this.nextEvent = 0;
    this.asked = {};
    /** The associations accepted: [event id, request body]. */
    this.associations = [];
  }

  answer(request) {
    this.asked[request.purpose] = (this.asked[request.purpose] ?? 0) + 1;
    const location = this.locations.get(request.accountId) ?? this.pages;
    const page = (pages) => {
      const index = Number(/[?&]pageIndex=(\d+)/.exec(request.url)?.[1] ?? 0);
      return index < pages.length
        ? [200, pages[index]]
        : [400, '{"errorNumber":9650,"errorMessage":"The provided page index is out of range."}'];
    };
    switch (request.purpose) {
      case 'serviceConfig': return [200, location.serviceConfig];
      case 'clientConfig': case 'claimOwnership': case 'testAccount': return [200, location.clientConfig];
      case 'assetsPage': return page(location.assets);
      case 'assignmentsPage': return page(location.assignments);
      case 'usersPage': return page(location.users);
      case 'eventStatus': return [200, `{"eventStatus":"PENDING","eventType":"ASSOCIATE","mdmInfo":${mdmJson}}`];
      default: {
        this.nextEvent += 1;
        const id = `ed3edfc3-e617-465e-b309-${String(this.nextEvent).padStart(12, '0')}`;
        if (request.purpose === 'associateAssets') this.associations.push([id, request.body ?? '']);
        return [200, `{"eventId":"${id}","mdmInfo":${mdmJson},"uId":"${LOCATION_UID}"}`];
      }
    }
  }
}

/** The host: answers each request as soon as it is issued, jumps simulated time to the engine's timeouts. */
export class Host {
  /** `records`: a Map that keeps what the engine persists (key → value), as a store would. `engine`: a restored one. */
  constructor(Engine, pages, { records = null, engine = null, now = START } = {}) {
    this.engine = engine ?? new Engine(config(), now);
    this.now = now;
    this.apple = new BenchApple(pages);
    this.pending = [];
    this.syncsCompleted = 0;
    this.syncKinds = [];
    this.records = records;
    if (engine === null) this.input({ type: 'addAccount', accountId: ACCOUNT, name: 'Bench District', token: token() });
  }

  input(input) {
    this.engine.handleInput(input, this.now);
  }

  /** Drains the outputs in `pollOutputs` batches until one ends with the timeout; returns the engine's next timeout. Requests are kept for answering. */
  drain() {
    for (;;) {
      for (const out of this.engine.pollOutputs(this.now)) {
        if (out.type === 'request') this.pending.push(out);
        else if (out.type === 'event' && out.event.type === 'syncCompleted') this.syncsCompleted += 1;
        else if (out.type === 'event' && out.event.type === 'syncStarted') this.syncKinds.push(out.event.kind);
        else if (out.type === 'persist' && this.records !== null) {
          for (const op of out.ops) {
            if (op.op === 'put') this.records.set(op.key, op.value);
            else this.records.delete(op.key);
          }
        }
        else if (out.type === 'timeout') return out.at;
      }
    }
  }

  answer(request) {
    const [status, body] = this.apple.answer(request);
    this.input({ type: 'response', id: request.id, status, headers: {}, body });
  }

  /** Runs until `done` holds (checked whenever the engine is idle) or `limitMs` of simulated time passed. */
  run(limitMs, done) {
    const end = this.now + limitMs;
    for (;;) {
      const at = this.drain();
      if (this.pending.length > 0) {
        const pending = this.pending;
        this.pending = [];
        for (const request of pending) this.answer(request);
        continue;
      }
      if (done(this) || at > end) return;
      this.now = Math.max(this.now, at);
      this.input({ type: 'timeout' });
    }
  }

  /** Runs the first full sync to its end. */
  sync() {
    this.run(Infinity, (h) => h.syncsCompleted > 0);
  }

  /** Submissions of license operations so far, by purpose. */
  submissions() {
    return Object.fromEntries(Object.entries(this.apple.asked).filter(([p]) => SUBMISSIONS.includes(p)));
  }
}

export const policyId = (a) => `app-${a}`;

/** A policy for app `a` of `accountId` (its id names both). */
export const accountPolicy = (accountId, a, licenseType, targets) => ({
  type: 'setPolicy',
  policy: {
    policyId: accountId === ACCOUNT ? policyId(a) : `${accountId}-app-${a}`, name: `App ${a}`, accountId, adamId: adamId(a),
    pricingParam: 'STDQ', licenseType, targets,
  },
});
/** A policy for app `a` of the bench account. */
export const policy = (a, licenseType, targets) => accountPolicy(ACCOUNT, a, licenseType, targets);
export const devicePolicy = (a, targets) => policy(a, 'device', targets);
