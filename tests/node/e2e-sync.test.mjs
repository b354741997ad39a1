// End to end over real HTTP: the BUILT package, the host-shim Driver and fetch transport, and the Apps and Books
// simulator on loopback. Real time, a few seconds. Run scripts/build-pkg.sh first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../pkg/vpp_license_engine.node.mjs';
import { Driver, MemoryStore, createFetchTransport } from '../../pkg/host-shim/index.js';
import { startSimulator } from '../../host-shim/simulator/index.js';

const MDM = { id: 'e2e-mdm-0001', name: 'E2E MDM', metadata: 'test' };
const SYNC_TIMEOUT_MS = 15_000;

const assetKey = (a) => `${a.adamId}|${a.pricingParam}`;
const assignmentKey = (a) => `${a.adamId}|${a.pricingParam}|${a.serialNumber ?? ''}|${a.clientUserId ?? ''}`;

test('adding an account claims the location and a full sync mirrors the simulator data', { timeout: 30_000 }, async (t) => {
  const sim = await startSimulator({ port: 0, seed: 1, pageSize: 50 });
  t.after(() => sim.close());
  const org = sim.addOrganization({
    orgName: 'ORG1',
    locationName: 'PS01',
    apps: 5,
    devices: 200,
    users: 20,
    assignedFraction: 0.5,
  });

  const started = Date.now();
  const sent = [];
  const fetchTransport = createFetchTransport({ timeoutMs: 5000 });
  const transport = {
    send(request) {
      sent.push(structuredClone(request));
      return fetchTransport.send(request);
    },
  };
  const events = [];
  const errors = [];
  let syncCompleted;
  const fullSync = new Promise((resolve, reject) => {
    syncCompleted = resolve;
    setTimeout(() => reject(new Error(`no full syncCompleted within ${SYNC_TIMEOUT_MS} ms; events: ${JSON.stringify(events)}`)), SYNC_TIMEOUT_MS).unref();
  });
  const engine = new Engine({ mdmInfo: MDM, serviceConfigUrl: sim.serviceConfigUrl, seed: 1 }, Date.now());
  t.after(() => engine.free());
  const store = new MemoryStore();
  const driver = new Driver({
    engine,
    transport,
    store,
    onEvent(event) {
      events.push(event);
      if (event.type === 'syncCompleted' && event.kind === 'full') syncCompleted(event);
    },
    onError: (error) => errors.push(error),
  });

  driver.start();
  driver.input({ type: 'addAccount', accountId: 'a1', name: 'Primary school', token: org.token });
  const completed = await fullSync;
  driver.stop();
  await driver.whenIdle();
  assert.deepEqual(errors, []);
  t.diagnostic(`full sync: ${sent.length} requests in ${Date.now() - started} ms`);

  // The completion event and the read models agree with the simulator.
  assert.equal(completed.assets, org.assets.length);
  assert.equal(completed.assignments, org.assignments.length);
  assert.ok(org.assignments.length > 200, `only ${org.assignments.length} assignments: the sync would not page`);

  const counts = engine.appCounts('a1');
  assert.deepEqual(
    counts.map((c) => [assetKey(c), c.totalCount, c.assignedCount, c.availableCount, c.retiredCount]).sort(),
    org.assets.map((a) => [assetKey(a), a.totalCount, a.assignedCount, a.availableCount, a.retiredCount]).sort(),
  );

  const page = engine.assignments('a1', { limit: 10_000 });
  assert.equal(page.total, org.assignments.length);
  assert.deepEqual(page.items.map(assignmentKey).sort(), org.assignments.map(assignmentKey).sort());

  const [account] = engine.accounts();
  assert.equal(account.status, 'active', account.statusReason);
  assert.equal(account.orgName, 'ORG1');
  assert.equal(account.locationName, 'PS01');
  assert.ok(account.lastSyncedAt >= started, 'lastSyncedAt not set by the sync');

  // Paging: several assignment pages were fetched over HTTP.
  const assignmentPages = sent.filter((r) => new URL(r.url).pathname.endsWith('/assignments'));
  assert.ok(assignmentPages.length >= Math.ceil(org.assignments.length / 50), `${assignmentPages.length} assignment pages`);

  // Ownership: the engine wrote its mdmInfo into the simulator's client config.
  assert.deepEqual(org.mdmInfo, MDM);
  assert.ok(events.some((e) => e.type === 'ownershipClaimed' && e.accountId === 'a1'));

  // The sToken travels only in the Authorization header, and never in an event or an engine error.
  for (const request of sent) {
    const { authorization, Authorization, ...otherHeaders } = request.headers;
    if (request.accountId !== null) assert.equal(authorization ?? Authorization, `Bearer ${org.token}`, request.purpose);
    const elsewhere = JSON.stringify({ ...request, headers: otherHeaders });
    assert.ok(!elsewhere.includes(org.token), `sToken outside the Authorization header of ${request.purpose}`);
  }
  assert.ok(!JSON.stringify(events).includes(org.token), 'sToken in an event');

  // The simulator saw the same traffic, all of it accepted (no rate-limit or auth errors), and never a
  // token outside the Authorization header (its log keeps the bearer token apart from path and query).
  assert.equal(sim.requestLog.length, sent.length);
  assert.deepEqual(sim.requestLog.filter((entry) => entry.status !== 200), []);
  for (const { token, ...entry } of sim.requestLog) {
    assert.ok(!JSON.stringify(entry).includes(org.token), `sToken in ${entry.method} ${entry.path}`);
  }
  assert.ok(store.load().length > 0, 'nothing was persisted');
});
