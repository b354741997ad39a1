// End to end, license decisions over real HTTP: the BUILT package, the Driver and fetch transport, the Node
// notification endpoint, and the Apps and Books simulator on loopback with events completing after 50 ms.
// Real time, a few seconds: the engine polls /status at most every 30 s, so every completion awaited here
// comes from an ASSET_MANAGEMENT / USER_MANAGEMENT notification. Run scripts/build-pkg.sh first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Engine } from '../../pkg/vpp_license_engine.node.mjs';
import { Driver, MemoryStore, createFetchTransport } from '../../pkg/host-shim/index.js';
import { startNotificationServer } from '../../pkg/host-shim/node/index.js';
import { startSimulator } from '../../host-shim/simulator/index.js';

const MDM = { id: 'e2e-licenses-mdm', name: 'E2E MDM', metadata: 'test' };
const ACCOUNT = 'district-1';
/** Well under the engine's 30 s between /status polls: a phase that finishes in time was finished by notifications. */
const PHASE_TIMEOUT_MS = 10_000;
const ASSOCIATE = '/mdm/v2/assets/associate';
const DISASSOCIATE = '/mdm/v2/assets/disassociate';
const REVOKE = '/mdm/v2/assets/revoke';
const CREATE_USERS = '/mdm/v2/users/create';
const STATUS = '/mdm/v2/status';

/**
 * Event-driven waiting: `changed()` (called on every engine event, HTTP answer and notification) re-checks
 * every pending `until`; `until` rejects after its timeout with `describe()` in the message.
 */
class Progress {
  #checks = new Set();
  #scheduled = false;

  changed() {
    if (this.#scheduled) return;
    this.#scheduled = true;
    // After the driver has fed the answer and drained (a few microtasks later), outside any engine call.
    setImmediate(() => {
      this.#scheduled = false;
      for (const check of [...this.#checks]) check();
    });
  }

  until(label, predicate, describe = () => '', timeoutMs = PHASE_TIMEOUT_MS) {
    return new Promise((resolve, reject) => {
      const started = Date.now();
      const check = () => {
        let value;
        try {
          value = predicate();
        } catch (error) {
          finish();
          reject(error);
          return;
        }
        if (value) {
          finish();
          resolve(Date.now() - started);
        }
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`${label}: not within ${timeoutMs} ms. ${describe()}`));
      }, timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.#checks.delete(check);
      };
      this.#checks.add(check);
      check();
    });
  }
}

const posts = (sim, path) => sim.requestLog.filter((r) => r.method === 'POST' && r.path === path);

/**
 * Simulator, notification endpoint (listening first: Apple tests it when the account is added), engine with
 * `notifications` configured, and a Driver over fetch; everything closed after the test. The account is added
 * and (unless `waitForSync` is false) its full sync awaited. `answered` records every notification the endpoint
 * handed to the driver, with the status it answered.
 */
async function harness(t, { simulator = {}, organization = {}, prepare = () => {}, accountId = ACCOUNT, waitForSync = true } = {}) {
  const sim = await startSimulator({ port: 0, seed: 7, pageSize: 20, eventDelayMs: 50, notificationRetryDelayMs: 200, ...simulator });
  t.after(() => sim.close());
  const org = sim.addOrganization(organization);
  prepare(sim, org);

  const progress = new Progress();
  const events = [];
  const errors = [];
  const sent = [];
  const fetchTransport = createFetchTransport({ timeoutMs: 5000 });
  const transport = {
    async send(request) {
      sent.push({ purpose: request.purpose, method: request.method, url: request.url });
      try {
        return await fetchTransport.send(request);
      } finally {
        progress.changed();
      }
    },
  };
  const authToken = randomBytes(32).toString('hex');
  const answered = [];
  let driver;
  const endpoint = await startNotificationServer({
    authToken,
    driver: {
      notification(accountId, authorization, body) {
        const status = driver.notification(accountId, authorization, body);
        answered.push({ accountId, type: JSON.parse(body).notificationType, status });
        progress.changed();
        return status;
      },
    },
    onError: (error) => errors.push(error),
  });
  t.after(() => endpoint.close());

  const engine = new Engine(
    { mdmInfo: MDM, serviceConfigUrl: sim.serviceConfigUrl, seed: 1, notifications: { url: endpoint.url, authToken } },
    Date.now(),
  );
  t.after(() => engine.free());
  driver = new Driver({
    engine,
    transport,
    store: new MemoryStore(),
    onEvent(event) {
      events.push({ at: Date.now(), ...event });
      progress.changed();
    },
    onError: (error) => errors.push(error),
  });
  t.after(async () => {
    driver.stop();
    await driver.whenIdle();
  });
  const trace = () => `events: ${JSON.stringify(events.map(({ at, ...e }) => e))}; requests: ${JSON.stringify(
    sim.requestLog.map((r) => `${r.method} ${r.path} ${r.status}${r.errorNumber ? `/${r.errorNumber}` : ''}`))}; ` +
    `notifications: ${JSON.stringify(sim.notificationLog.map((n) => `${n.notificationType} ${n.status ?? n.error}`))}; ` +
    `pending: ${JSON.stringify(engine.pendingOperations(accountId))}; errors: ${errors.map(String)}`;

  driver.start();
  driver.input({ type: 'addAccount', accountId, name: 'District', token: org.token });
  if (waitForSync) await progress.until('full sync', () => events.some((e) => e.type === 'syncCompleted' && e.kind === 'full'), trace);
  /** Events of `type` from index `mark` of `events` on. */
  const since = (mark, type) => events.slice(mark).filter((e) => e.type === type);
  return { sim, org, engine, driver, endpoint, authToken, progress, events, errors, sent, answered, trace, since };
}

/** Serial numbers of the fleet that hold no license of `adamId`. */
function devicesWithout(org, adamId, count) {
  const holders = new Set(org.assignments.filter((a) => a.adamId === adamId).map((a) => a.serialNumber));
  const devices = org.serialNumbers.filter((s) => !holders.has(s)).slice(0, count);
  assert.equal(devices.length, count);
  return devices;
}

const paidApps = (org) => org.assets.filter((a) => a.productType === 'App' && a.totalCount < 2147483647);

test('policies, facts and reclaim: batched associate/disassociate completed by notifications, then reconcile', { timeout: 90_000 }, async (t) => {
  const h = await harness(t, {
    organization: { orgName: 'ORG-E2E', locationName: 'HQ', apps: 3, freeApps: 1, books: 0, devices: 40, users: 10, assignedFraction: 0.3 },
    prepare(sim, org) {
      const [deviceApp, userApp] = paidApps(org);
      // Limited pools: 12 licenses of the device app for 10 devices (then 2 left: below the low threshold of 5).
      sim.mutate(org.token, (o) => {
        o.adjustAssetCount(deviceApp.adamId, 'STDQ', 12 - deviceApp.availableCount);
        o.adjustAssetCount(userApp.adamId, 'STDQ', 3 - userApp.availableCount);
      });
    },
  });
  const { sim, org, engine, driver, endpoint, authToken, progress, events, errors, sent, answered, trace, since } = h;
  const [deviceApp, userApp] = paidApps(org);
  assert.ok(deviceApp.deviceAssignable && deviceApp.revocable, 'the device app is device-assignable and revocable');
  const devices = devicesWithout(org, deviceApp.adamId, 10);

  // 1. The account was claimed with the notification endpoint, which Apple tested, and fully synced.
  assert.deepEqual(org.mdmInfo, MDM);
  assert.deepEqual(org.notification, { url: `${endpoint.url}/${ACCOUNT}`, authToken });
  for (const type of ['ASSET_MANAGEMENT', 'USER_MANAGEMENT']) {
    assert.ok(org.notificationTypes.includes(type), `not subscribed to ${type}: ${org.notificationTypes}`);
  }
  assert.deepEqual(answered.filter((a) => a.type === 'TEST_NOTIFICATION'), [{ accountId: ACCOUNT, type: 'TEST_NOTIFICATION', status: 200 }]);

  // 2. Ten devices enrol and a policy scopes the device app to them: one associate request, licenseReady for each.
  let mark = events.length;
  const started = Date.now();
  for (const serialNumber of devices) driver.input({ type: 'deviceEnrolled', serialNumber });
  const devicePolicy = {
    policyId: 'p-device', name: 'Device app for the fleet', accountId: ACCOUNT,
    adamId: deviceApp.adamId, pricingParam: 'STDQ', licenseType: 'device', targets: devices,
  };
  driver.input({ type: 'setPolicy', policy: devicePolicy });
  await progress.until('licenseReady for every device', () => {
    const ready = new Set(since(mark, 'licenseReady').filter((e) => e.adamId === deviceApp.adamId).map((e) => e.serialNumber));
    return devices.every((s) => ready.has(s));
  }, trace);
  t.diagnostic(`10 device licenses ready in ${Date.now() - started} ms; /status polls so far: ${sim.requestLog.filter((r) => r.path === STATUS).length}`);
  for (const e of since(mark, 'licenseReady')) {
    assert.deepEqual(
      { accountId: e.accountId, pricingParam: e.pricingParam, clientUserId: e.clientUserId },
      { accountId: ACCOUNT, pricingParam: 'STDQ', clientUserId: null },
    );
  }
  for (const serialNumber of devices) {
    assert.ok(sim.organization(org.token).hasAssignment({ adamId: deviceApp.adamId, pricingParam: 'STDQ', serialNumber }), serialNumber);
  }
  assert.equal(posts(sim, ASSOCIATE).length, 1, `associate requests for 10 devices of one app (maxSerialNumbers ${sim.limits.maxSerialNumbers})`);
  assert.deepEqual(since(mark, 'insufficientLicenses'), []);
  assert.ok(
    since(mark, 'lowLicenses').some((e) => e.adamId === deviceApp.adamId && e.available <= e.threshold),
    `no lowLicenses for ${deviceApp.adamId} with 2 licenses left; ${trace()}`,
  );
  const ready = engine.explain(ACCOUNT, { adamId: deviceApp.adamId, pricingParam: 'STDQ', serialNumber: devices[0] });
  assert.equal(ready.hasLicense, true, ready.reason);

  // 3. Three devices leave the policy's scope: reclaimed at once, in one disassociate request.
  mark = events.length;
  const removed = devices.slice(0, 3);
  const disassociatesBefore = posts(sim, DISASSOCIATE).length;
  driver.input({ type: 'updatePolicyTargets', policyId: devicePolicy.policyId, remove: removed });
  await progress.until('licenseReleased for the 3 devices out of scope', () => {
    const released = new Set(since(mark, 'licenseReleased').filter((e) => e.adamId === deviceApp.adamId).map((e) => e.serialNumber));
    return removed.every((s) => released.has(s));
  }, trace);
  for (const serialNumber of removed) {
    assert.ok(!sim.organization(org.token).hasAssignment({ adamId: deviceApp.adamId, pricingParam: 'STDQ', serialNumber }), serialNumber);
  }
  assert.equal(posts(sim, DISASSOCIATE).length - disassociatesBefore, 1, 'disassociate requests for 3 devices');
  assert.deepEqual(posts(sim, REVOKE), [], 'leaving a policy releases that app only: no revoke');
  assert.deepEqual(since(mark, 'licenseReleased').filter((e) => !removed.includes(e.serialNumber)), [], 'released a device still in scope');
  const gone = engine.explain(ACCOUNT, { adamId: deviceApp.adamId, pricingParam: 'STDQ', serialNumber: removed[0] });
  assert.equal(gone.hasLicense, false, gone.reason);

  // 4. A device is retired: its license is released.
  mark = events.length;
  const retired = devices[3];
  driver.input({ type: 'deviceRetired', serialNumber: retired });
  await progress.until('licenseReleased for the retired device', () =>
    since(mark, 'licenseReleased').some((e) => e.adamId === deviceApp.adamId && e.serialNumber === retired), trace);
  assert.ok(!sim.organization(org.token).hasAssignment({ adamId: deviceApp.adamId, pricingParam: 'STDQ', serialNumber: retired }));
  const kept = devices.slice(4);
  assert.deepEqual(since(mark, 'licenseReleased').filter((e) => kept.includes(e.serialNumber)), [], 'released a device still in scope');

  // 5. A user with a Managed Apple ID and a user-license policy: created at Apple, then licensed.
  mark = events.length;
  const clientUserId = 'e2e-user-0001';
  driver.input({ type: 'userAdded', clientUserId, email: 'ada@example.com', managedAppleId: 'ada@appleid.example.com' });
  driver.input({
    type: 'setPolicy',
    policy: { policyId: 'p-user', name: 'User app', accountId: ACCOUNT, adamId: userApp.adamId, pricingParam: 'STDQ', licenseType: 'user', targets: [clientUserId] },
  });
  await progress.until('licenseReady for the user', () =>
    since(mark, 'licenseReady').some((e) => e.adamId === userApp.adamId && e.clientUserId === clientUserId), trace);
  assert.equal(sim.organization(org.token).user(clientUserId)?.status, 'Associated');
  assert.ok(sim.organization(org.token).hasAssignment({ adamId: userApp.adamId, pricingParam: 'STDQ', clientUserId }));
  assert.equal(posts(sim, CREATE_USERS).length, 1, 'users/create requests');
  assert.deepEqual(since(mark, 'inviteUser'), [], 'a Managed Apple ID needs no invitation');
  const userReady = since(mark, 'licenseReady').find((e) => e.clientUserId === clientUserId);
  assert.equal(userReady.serialNumber, null);

  // 6. Reconcile: everything this instance assigned is still wanted, so nothing is released, and nothing stays pending.
  mark = events.length;
  const manageBefore = [ASSOCIATE, DISASSOCIATE, REVOKE].map((p) => posts(sim, p).length);
  driver.input({ type: 'reconcile' });
  await driver.whenIdle();
  await progress.until('no pending operations after reconcile', () => engine.pendingOperations(ACCOUNT).length === 0, trace);
  await driver.whenIdle();
  await sim.notificationsSettled();
  assert.deepEqual(engine.pendingOperations(ACCOUNT), []);
  assert.deepEqual(since(mark, 'licenseReleased'), [], 'reconcile released a license that is still in scope');
  assert.deepEqual([ASSOCIATE, DISASSOCIATE, REVOKE].map((p) => posts(sim, p).length), manageBefore, 'reconcile changed assignments');
  for (const serialNumber of kept) {
    assert.ok(sim.organization(org.token).hasAssignment({ adamId: deviceApp.adamId, pricingParam: 'STDQ', serialNumber }), serialNumber);
  }

  // Notifications: every ASSET_MANAGEMENT / USER_MANAGEMENT delivery reached our endpoint and was answered 200.
  const log = sim.notificationLog;
  const assetManagement = log.filter((n) => n.notificationType === 'ASSET_MANAGEMENT');
  assert.ok(assetManagement.length >= 3, `ASSET_MANAGEMENT deliveries: ${assetManagement.length}`);
  assert.ok(log.some((n) => n.notificationType === 'USER_MANAGEMENT'), 'no USER_MANAGEMENT notification');
  assert.deepEqual(log.filter((n) => n.status !== 200), [], 'notification deliveries not answered 200');
  assert.deepEqual([...new Set(log.map((n) => n.url))], [`${endpoint.url}/${ACCOUNT}`]);
  assert.equal(answered.length, log.length);

  // Nothing went wrong on the way, and the notification secret appears in no event.
  assert.deepEqual(errors, []);
  assert.deepEqual(events.filter((e) => ['requestFailed', 'assignmentFailed', 'backoff'].includes(e.type)), []);
  assert.deepEqual(sim.requestLog.filter((r) => r.status !== 200), [], 'requests Apple rejected');
  assert.ok(!JSON.stringify(events).includes(authToken), 'notification authToken in an event');
  assert.ok(!JSON.stringify(events).includes(org.token), 'sToken in an event');
  t.diagnostic(`requests: ${sent.length}, notifications: ${log.length}, /status polls: ${sim.requestLog.filter((r) => r.path === STATUS).length}`);
});

test('a notification with a wrong or missing bearer secret, or for an unknown account, is refused and changes nothing', { timeout: 30_000 }, async (t) => {
  const { org, endpoint, authToken, events, engine } = await harness(t, { organization: { apps: 2, books: 0, devices: 5, users: 2 } });
  const forged = JSON.stringify({
    notification: { assignments: [{ adamId: org.assets[0].adamId, pricingParam: 'STDQ', serialNumber: org.serialNumbers[0] }], eventId: 'forged', result: 'SUCCESS', type: 'ASSOCIATE' },
    notificationId: 'forged-1', notificationType: 'ASSET_MANAGEMENT', uId: org.uId,
  });
  const before = events.length;
  const assignmentsBefore = engine.assignments(ACCOUNT, { limit: 10_000 }).total;
  const statuses = {};
  for (const [name, authorization] of [['wrong secret', `Bearer ${'0'.repeat(64)}`], ['no header', undefined], ['no Bearer prefix', authToken]]) {
    const headers = { 'Content-Type': 'application/json' };
    if (authorization !== undefined) headers.Authorization = authorization;
    statuses[name] = (await fetch(`${endpoint.url}/${ACCOUNT}`, { method: 'POST', headers, body: forged })).status;
  }
  assert.ok(Object.values(statuses).every((s) => s === 401 || s === 403), JSON.stringify(statuses));
  const unknown = await fetch(`${endpoint.url}/no-such-account`, { method: 'POST', headers: { Authorization: `Bearer ${authToken}` }, body: forged });
  assert.ok(unknown.status >= 400 && unknown.status < 500, `unknown account: ${unknown.status}`);
  assert.deepEqual(events.slice(before), []);
  assert.equal(engine.assignments(ACCOUNT, { limit: 10_000 }).total, assignmentsBefore);
});

test('duplicated notifications (same notificationId) are applied once: one licenseReady per device', { timeout: 30_000 }, async (t) => {
  const h = await harness(t, {
    organization: { apps: 2, freeApps: 0, books: 0, devices: 20, users: 2, assignedFraction: 0 },
    prepare(sim, org) {
      sim.mutate(org.token, (o) => o.adjustAssetCount(paidApps(o)[0].adamId, 'STDQ', 20));
      sim.injectNotificationFault({ notificationType: 'ASSET_MANAGEMENT', duplicate: true, count: Infinity });
    },
  });
  const { sim, org, driver, progress, events, answered, errors, trace, since } = h;
  const app = paidApps(org)[0];
  const devices = devicesWithout(org, app.adamId, 4);
  const mark = events.length;
  for (const serialNumber of devices) driver.input({ type: 'deviceEnrolled', serialNumber });
  driver.input({
    type: 'setPolicy',
    policy: { policyId: 'p1', name: 'App', accountId: ACCOUNT, adamId: app.adamId, pricingParam: 'STDQ', licenseType: 'device', targets: devices },
  });
  await progress.until('both deliveries of the ASSET_MANAGEMENT notification answered', () =>
    answered.filter((a) => a.type === 'ASSET_MANAGEMENT').length >= 2, trace);
  await sim.notificationsSettled();
  await driver.whenIdle();
  const ready = since(mark, 'licenseReady').map((e) => e.serialNumber).sort();
  assert.deepEqual(ready, [...devices].sort(), 'licenseReady exactly once per device');
  const deliveries = sim.notificationLog.filter((n) => n.notificationType === 'ASSET_MANAGEMENT');
  assert.equal(new Set(deliveries.map((n) => n.notificationId)).size, 1, 'one notification, delivered twice');
  assert.deepEqual(deliveries.map((n) => n.status), [200, 200], 'a duplicate is acknowledged too');
  assert.deepEqual(errors, []);
});

test('an account id that needs URL encoding (space, slash, plus, non-ASCII) gets its notifications', { timeout: 30_000 }, async (t) => {
  const accountId = 'north campus/1+ü';
  const { org, endpoint, answered, events, progress, trace } = await harness(t, {
    accountId,
    waitForSync: false,
    organization: { apps: 1, books: 0, devices: 3, users: 1 },
  });
  await progress.until('claimed or refused', () => org.mdmInfo !== null || events.some((e) => e.type === 'requestFailed'), trace);
  assert.deepEqual(answered.filter((a) => a.type === 'TEST_NOTIFICATION'), [{ accountId, type: 'TEST_NOTIFICATION', status: 200 }],
    `Apple was given ${org.notification?.url ?? 'no URL'}; ${trace()}`);
  assert.ok(org.notification.url.startsWith(`${endpoint.url}/`));
  assert.equal(decodeURIComponent(org.notification.url.slice(endpoint.url.length + 1)), accountId, 'the last path segment decodes to the account id');
});

test('Apple refusing associations with 9709 while its counts show licenses: assignmentFailed and insufficientLicenses at once, the counts read again, then the licenses', { timeout: 60_000 }, async (t) => {
  const h = await harness(t, {
    organization: { orgName: 'ORG-REFUSE', locationName: 'HQ', apps: 2, freeApps: 0, books: 0, devices: 20, users: 0, assignedFraction: 0 },
  });
  const { sim, org, driver, progress, events, trace, since } = h;
  const [app] = paidApps(org);
  const devices = devicesWithout(org, app.adamId, 4);
  sim.refuseAssociations(org.token, { count: 4 });
  const mark = events.length;
  for (const serialNumber of devices) driver.input({ type: 'deviceEnrolled', serialNumber });
  driver.input({ type: 'setPolicy', policy: { policyId: 'p', name: 'P', accountId: ACCOUNT, adamId: app.adamId, pricingParam: 'STDQ', licenseType: 'device', targets: devices } });
  await progress.until('assignmentFailed 9709 for each device', () => since(mark, 'assignmentFailed').filter((e) => e.errorNumber === 9709).length === 4, trace);
  const failed = since(mark, 'assignmentFailed');
  const refusedAt = failed[0].at;
  assert.ok(failed.every((e) => /enough licenses/.test(e.message)), JSON.stringify(failed));
  const short = since(mark, 'insufficientLicenses');
  assert.deepEqual(short.map((e) => [e.adamId, e.shortBy]), [[app.adamId, 4]]);
  assert.ok(short[0].at - refusedAt < 100, 'insufficientLicenses comes with the refusal');
  // The counts are read again at once, and the retry gets the licenses.
  await progress.until('licenseReady for each device', () => new Set(since(mark, 'licenseReady').map((e) => e.serialNumber)).size === 4, trace);
  const refresh = sim.requestLog.find((r) => r.path === '/mdm/v2/assets' && r.at >= refusedAt);
  assert.ok(refresh && refresh.at - refusedAt < 60_000, 'a count refresh within a minute');
  assert.equal(posts(sim, ASSOCIATE).length, 2);
});
