// The store relay (vpp-license-engine/node) and RemoteStore (vpp-license-engine/host) over real loopback HTTP: the
// relay's allow-list and refusals against a MemoryStore; every LeaseStore method (and the LeaseStore contract)
// through RemoteStore and the relay; and two browser consoles — each an Engine, a Driver and a LeaseKeeper over its
// own RemoteStore — on one relay and one store, driving one account of the simulator: never both at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStoreRelay } from '../../host-shim/node/index.js';
import { startSimulator } from '../../host-shim/simulator/index.js';
import { Engine } from '../../pkg/vpp_license_engine.node.mjs';
import { Driver, LeaseKeeper, MemoryStore, RemoteStore, createFetchTransport } from '../../pkg/host-shim/index.js';
import { runLeaseContract } from '../stores/lease-contract.mjs';
import { driverRuns, overlappingRuns, waitFor } from './fixtures/backends.mjs';
import { listen } from './server-support.mjs';

const ADMIN = 'Session admin-cookie';
const SECRET = 'sToken-secret-value-in-a-store-error';
const put = (key, value) => ({ op: 'put', key, value });

/** `store` with every call recorded (method and arguments) in `calls`. */
function recorded(store) {
  const calls = [];
  const proxy = new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof value !== 'function') return value;
      return (...args) => {
        calls.push({ method: prop, args });
        return value.apply(target, args);
      };
    },
  });
  return { store: proxy, calls };
}

/** The relay on a loopback server (closed after the test); authorized when the x-admin header is ADMIN. */
async function serveRelay(t, { store = new MemoryStore(), ...options } = {}) {
  const errors = [];
  const handler = createStoreRelay({
    store,
    authorize: (req) => req.headers['x-admin'] === ADMIN,
    onError: (error) => errors.push(error),
    ...options,
  });
  const server = await listen(handler);
  t.after(server.close);
  return { url: `${server.origin}/store-relay`, errors };
}

/** A request to the relay as an authorized console would send it: `{ status, json }` (json undefined when empty). */
async function call(url, { method = 'POST', headers = {}, body } = {}) {
  const res = await fetch(url, { method, headers: { 'x-admin': ADMIN, 'Content-Type': 'application/json', ...headers }, body });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: text === '' ? undefined : JSON.parse(text) };
}

const remote = (url, options = {}) => new RemoteStore({ baseUrl: url, headers: { 'x-admin': ADMIN }, ...options });

test('every method a LeaseKeeper calls round-trips through RemoteStore and the relay to the backend\'s store', async (t) => {
  const clock = { t: 1_000_000 };
  const backend = new MemoryStore({ now: () => clock.t });
  backend.apply([put('account/a1', { name: 'A1', token: 't1' }), put('account/a2', { name: 'A2' }),
    put('policy/p1', { accountId: 'a1' }), put('device/S1', { enrolled: true })]);
  const { url, errors } = await serveRelay(t, { store: backend });
  const store = remote(url);

  assert.equal(await store.heartbeat('console-1', 60_000), 1);
  assert.equal(await store.heartbeat('console-2', 60_000), 2);
  assert.deepEqual(await store.acquireLeases('console-1', ['a1', 'a2'], 60_000), ['a1', 'a2']);
  assert.deepEqual(await store.acquireLeases('console-2', ['a1'], 60_000), [], 'console-1 holds it');
  clock.t += 1000;
  assert.deepEqual(await store.leaseStates(), backend.leaseStates());
  assert.deepEqual((await store.leaseStates()).map((s) => s.expiresInMs), [59_000, 59_000], 'by the store\'s clock');
  assert.deepEqual(await store.applyFenced('console-2', [put('account/a1', { name: 'by console-2' }), put('device/S2', {})]), { skipped: ['a1'] });
  assert.deepEqual(await store.applyFenced('console-1', [put('account/a2', { name: 'A2 renamed' })]), { skipped: [] });
  assert.deepEqual(await store.load(), backend.load());
  assert.deepEqual(backend.load().find((r) => r.key === 'account/a1').value, { name: 'A1', token: 't1' }, 'console-2 did not write a1');
  assert.deepEqual(await store.loadAccount('a1'), backend.loadAccount('a1'));
  assert.deepEqual(await store.loadAccount('a1', { shared: false }), backend.loadAccount('a1', { shared: false }));
  assert.ok(!(await store.loadAccount('a1', { shared: false })).some((r) => r.key === 'device/S1'), 'the account\'s own records alone');
  // { json: true } goes through: the records come as the backend gives them, values as JSON text.
  assert.deepEqual(await store.load({ json: true }), backend.load({ json: true }));
  assert.deepEqual(await store.loadAccount('a1', { shared: false, json: true }), backend.loadAccount('a1', { shared: false, json: true }));
  assert.ok((await store.load({ json: true })).some((r) => typeof r.json === 'string'), 'JSON text');
  assert.equal(await store.releaseLeases('console-1', ['a1']), undefined);
  assert.deepEqual(await store.acquireLeases('console-2', ['a1'], 60_000), ['a1'], 'released: console-2 takes it');
  assert.equal(await store.leave('console-1'), undefined);
  assert.deepEqual(backend.leaseStates(), [{ accountId: 'a1', holder: 'console-2', expiresInMs: 60_000 }, { accountId: 'a2', holder: null, expiresInMs: null }]);
  assert.deepEqual(errors, []);
});

// The LeaseStore contract through RemoteStore and the relay: its cases seed records with apply, which the relay
// refuses, so the seeding goes straight to the backend's store (as the backend's own instances write).
runLeaseContract('RemoteStore through the store relay', async () => {
  const clock = { t: 1_000_000 };
  const backend = new MemoryStore({ now: () => clock.t });
  const server = await listen(createStoreRelay({ store: backend, authorize: () => true, onError: (error) => assert.fail(error) }));
  const store = new RemoteStore({ baseUrl: `${server.origin}/store-relay` });
  store.apply = (ops) => backend.apply(ops);
  return {
    ttlMs: 1000,
    open: () => store,
    advance: (ms) => { clock.t += ms; },
    close: () => {},
    cleanup: server.close,
  };
}, { test });

test('a caller authorize rejects is refused 403 before its body is read and the store is never called; a throwing authorize is a 500', async (t) => {
  const { store, calls } = recorded(new MemoryStore());
  const asked = [];
  let verdict = false;
  const { url, errors } = await serveRelay(t, {
    store,
    authorize: (req, method) => {
      asked.push(method);
      if (verdict === 'throw') throw new Error('session backend down');
      return verdict;
    },
  });
  const refused = await call(`${url}/acquireLeases`, { body: JSON.stringify({ args: ['console-1', ['a1'], 1000] }) });
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error.code, 'NOT_AUTHORIZED');
  await assert.rejects(remote(url).heartbeat('console-1', 1000), { code: 'NOT_AUTHORIZED', status: 403 });
  verdict = 'throw';
  const failed = await call(`${url}/leave`, { body: JSON.stringify({ args: ['console-1'] }) });
  assert.equal(failed.status, 500);
  assert.doesNotMatch(failed.text, /session backend down/);
  assert.deepEqual(asked, ['acquireLeases', 'heartbeat', 'leave'], 'authorize is asked with the method');
  assert.deepEqual(calls, [], 'the store was not called');
  assert.deepEqual(errors.map((e) => e.code), ['AUTHORIZE_FAILED']);
});

test('the unfenced apply is refused with 403 (write through a LeaseKeeper) by the relay and by RemoteStore, and writes nothing', async (t) => {
  const { store, calls } = recorded(new MemoryStore());
  const { url } = await serveRelay(t, { store });
  const refused = await call(`${url}/apply`, { body: JSON.stringify({ args: [[put('account/a1', { name: 'A1' })]] }) });
  assert.equal(refused.status, 403);
  assert.equal(refused.json.error.code, 'UNFENCED_APPLY');
  assert.match(refused.json.error.message, /write through a LeaseKeeper/);
  let sent = 0;
  const counting = remote(url, { fetch: (...args) => { sent += 1; return fetch(...args); } });
  await assert.rejects(counting.apply([put('account/a1', { name: 'A1' })]), { code: 'UNFENCED_APPLY', message: /write through a LeaseKeeper/ });
  assert.equal(sent, 0, 'RemoteStore refuses it without a request');
  assert.deepEqual(calls, []);
});

test('a body that is not JSON, args that are not an array, or arguments of the wrong count or type are a 400 and never reach the store', async (t) => {
  const { store, calls } = recorded(new MemoryStore());
  const { url, errors } = await serveRelay(t, { store });
  const cases = [
    ['heartbeat', '{"args": ["console-1", 1000'],
    ['heartbeat', '{}'],
    ['heartbeat', '{"args": "console-1"}'],
    ['heartbeat', '[]'],
    ['heartbeat', JSON.stringify({ args: ['console-1'] })],
    ['heartbeat', JSON.stringify({ args: ['', 1000] })],
    ['heartbeat', JSON.stringify({ args: ['console-1', 0] })],
    ['acquireLeases', JSON.stringify({ args: ['console-1', 'a1', 1000] })],
    ['releaseLeases', JSON.stringify({ args: ['console-1', [1]] })],
    ['loadAccount', JSON.stringify({ args: [42] })],
    ['loadAccount', JSON.stringify({ args: ['a1', { shared: 'no' }] })],
    ['load', JSON.stringify({ args: [{ json: 'yes' }] })],
    ['loadAccount', JSON.stringify({ args: ['a1', null] })],
    ['loadAccount', JSON.stringify({ args: ['a1', { shared: false }, 'extra'] })],
    ['leaseStates', JSON.stringify({ args: ['extra'] })],
    ['applyFenced', JSON.stringify({ args: ['console-1', [put('account/a1', 1), { op: 'upsert', key: 'k' }]] })],
    ['applyFenced', JSON.stringify({ args: ['console-1', [{ op: 'put', key: 'account/a1' }]] })],
  ];
  for (const [method, body] of cases) {
    const answer = await call(`${url}/${method}`, { body });
    assert.equal(answer.status, 400, `${method} ${body}`);
    assert.equal(answer.json.error.code, 'BAD_REQUEST');
  }
  const bad = await call(`${url}/applyFenced`, { body: JSON.stringify({ args: ['console-1', [{ op: 'upsert', key: 'k' }]] }) });
  assert.match(bad.json.error.message, /op 0 has unknown op "upsert"/, 'the message says what is wrong');
  // RemoteStore checks the same before it sends anything.
  let sent = 0;
  const counting = remote(url, { fetch: (...args) => { sent += 1; return fetch(...args); } });
  await assert.rejects(counting.acquireLeases('console-1', 'a1', 1000), TypeError);
  await assert.rejects(counting.heartbeat('console-1', -1), RangeError);
  await assert.rejects(counting.applyFenced('console-1', [{ op: 'upsert', key: 'k' }]), TypeError);
  await assert.rejects(counting.loadAccount('a1', { share: false }), TypeError);
  assert.equal(sent, 0);
  assert.deepEqual(calls, []);
  assert.deepEqual(errors, []);
});

test('an unknown method or path is a 404 (or next()), another HTTP method a 405, a body that is not JSON a 415', async (t) => {
  const { store, calls } = recorded(new MemoryStore());
  const { url } = await serveRelay(t, { store });
  for (const method of ['close', 'constructor', '__proto__', 'load/extra', '']) {
    const answer = await call(`${url}/${method}`, { body: '{"args": []}' });
    assert.equal(answer.status, 404, method);
  }
  assert.equal((await call(`${url}/unknown`, { body: '{}' })).json.error.code, 'UNKNOWN_METHOD');
  assert.equal((await call(url.replace('/store-relay', '/elsewhere/load'), { body: '{"args": []}' })).status, 404);
  const get = await call(`${url}/load`, { method: 'GET' });
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST');
  const form = await call(`${url}/load`, { headers: { 'Content-Type': 'text/plain' }, body: '{"args": []}' });
  assert.equal(form.status, 415, 'a cross-site form cannot post to it without a CORS preflight');
  assert.deepEqual(calls, []);

  const handler = createStoreRelay({ store, authorize: () => true });
  let passed = 0;
  handler({ url: '/other/path', method: 'POST', headers: {} }, {}, () => { passed += 1; });
  assert.equal(passed, 1, 'a router gets next() for paths outside the relay');
});

test('a body over maxBodyBytes is refused with 413 and the store is not called', async (t) => {
  const { store, calls } = recorded(new MemoryStore());
  const { url } = await serveRelay(t, { store, maxBodyBytes: 1024 });
  const ops = Array.from({ length: 50 }, (_, i) => put(`device/S${i}`, { enrolled: true }));
  const answer = await call(`${url}/applyFenced`, { body: JSON.stringify({ args: ['console-1', ops] }) });
  assert.equal(answer.status, 413);
  await assert.rejects(remote(url).applyFenced('console-1', ops), { status: 413 });
  assert.deepEqual(calls, []);
  assert.deepEqual(store.load(), []);
});

test('a failing store is a 500 and one that cannot be reached a 503, never with the store\'s error text; onError gets it in one line', async (t) => {
  const failing = new MemoryStore();
  failing.leaseStates = () => {
    throw new Error(`value {"token":"${SECRET}"} could not be decoded`);
  };
  failing.heartbeat = async () => {
    throw Object.assign(new Error(`connect ECONNREFUSED 10.0.0.5:5432 (${SECRET})`), { code: 'ECONNREFUSED' });
  };
  const { url, errors } = await serveRelay(t, { store: failing });
  const failed = await call(`${url}/leaseStates`, { body: '{"args": []}' });
  assert.equal(failed.status, 500);
  assert.equal(failed.json.error.code, 'STORE_FAILED');
  const down = await call(`${url}/heartbeat`, { body: JSON.stringify({ args: ['console-1', 1000] }) });
  assert.equal(down.status, 503);
  assert.equal(down.json.error.code, 'STORE_UNAVAILABLE');
  for (const answer of [failed, down]) assert.ok(!answer.text.includes(SECRET), answer.text);
  await assert.rejects(remote(url).leaseStates(), (error) => error.status === 500 && error.code === 'STORE_FAILED' && !error.message.includes(SECRET));
  assert.deepEqual(errors.map((e) => e.code), ['STORE_FAILED', 'STORE_UNAVAILABLE', 'STORE_FAILED']);
  assert.match(errors[0].message, /^leaseStates: value .* could not be decoded$/);
});

test('RemoteStore rejects with a clear error when the relay cannot be reached or does not answer in time', async () => {
  const unreachable = new RemoteStore({ baseUrl: 'http://127.0.0.1:9/store-relay', fetch: async () => { throw new TypeError('fetch failed'); } });
  await assert.rejects(unreachable.leaseStates(), { code: 'STORE_RELAY_UNREACHABLE', status: null, message: /not reached \(fetch failed\)/ });
  const silent = new RemoteStore({
    baseUrl: 'http://127.0.0.1:9/store-relay',
    timeoutMs: 20,
    fetch: (url, { signal }) => new Promise((resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
  });
  await assert.rejects(silent.leaseStates(), { code: 'STORE_RELAY_TIMEOUT', message: /within 20 ms/ });
  assert.throws(() => new RemoteStore({}), TypeError);
  assert.throws(() => new RemoteStore({ baseUrl: 'http://x', headers: { 'x-csrf': 1 } }), TypeError);
  assert.throws(() => createStoreRelay({ store: { load() {} }, authorize: () => true }), /LeaseStore \(missing heartbeat/);
  assert.throws(() => createStoreRelay({ store: new MemoryStore() }), /authorize/);
});

// Two browser consoles against one backend: the lease decides which drives the account.
const TTL_MS = 3000;
const LEASE = { ttlMs: TTL_MS, marginMs: Math.round(TTL_MS / 6), renewEveryMs: Math.floor(TTL_MS / 3) };
const MDM = { id: 'store-relay-mdm', name: 'Store relay MDM', metadata: 'test' };

test('two consoles on one relay and one store: exactly one drives the account, the other\'s writes of it are fenced, and it takes over when the first stops', { timeout: 60_000 }, async (t) => {
  const sim = await startSimulator({ port: 0, seed: 4, pageSize: 50, eventDelayMs: 40, logHeaders: ['x-instance'] });
  t.after(() => sim.close());
  const org = sim.addOrganization({ orgName: 'ORG1', locationName: 'PS01', apps: 3, freeApps: 0, books: 0, devices: 20, users: 0, assignedFraction: 0 });
  const app = org.assets.find((a) => a.deviceAssignable);
  sim.mutate(org.token, (o) => o.adjustAssetCount(app.adamId, app.pricingParam, 20));
  const serials = org.serialNumbers;
  const policy = (targets) => ({ type: 'setPolicy', policy: {
    policyId: 'p1', name: 'Maths app', accountId: 'a1', adamId: app.adamId, pricingParam: app.pricingParam, licenseType: 'device', targets,
  } });
  const assigned = (targets) => targets.every((serialNumber) => org.hasAssignment({ adamId: app.adamId, pricingParam: app.pricingParam, serialNumber }));

  // The backend's store holds the account, the devices and a policy, as an administrator's earlier session wrote them.
  const backend = new MemoryStore();
  const relay = await serveRelay(t, { store: backend });
  const engineConfig = { mdmInfo: MDM, serviceConfigUrl: sim.serviceConfigUrl, seed: 3, coalesceMs: 0 };
  const seeder = new Engine(engineConfig, Date.now());
  seeder.handleInput({ type: 'addAccount', accountId: 'a1', name: 'PS01', token: org.token }, Date.now());
  for (const serialNumber of serials) seeder.handleInput({ type: 'deviceEnrolled', serialNumber }, Date.now());
  seeder.handleInput(policy(serials.slice(0, 5)), Date.now());
  for (let out = seeder.pollOutput(Date.now()); out.type !== 'timeout'; out = seeder.pollOutput(Date.now())) {
    if (out.type === 'persist') backend.apply(out.ops);
  }
  seeder.free();

  /** A console as a browser runs it: its engine, its Driver and its LeaseKeeper over its own RemoteStore. */
  const consoles = ['console-1', 'console-2'].map((name) => {
    const engine = new Engine(engineConfig, Date.now());
    const store = remote(relay.url);
    const errors = [];
    const changes = [];
    const keeper = new LeaseKeeper({ store, holder: name, ...LEASE, onLease: (change) => changes.push(change), onError: (error) => errors.push(error) });
    const fetchTransport = createFetchTransport({ timeoutMs: 5_000 });
    // Every request says which console sent it, so that the simulator's log shows who drove the account when.
    const transport = { send: (request) => fetchTransport.send({ ...request, headers: { ...request.headers, 'x-instance': name } }) };
    const driver = new Driver({ engine, transport, store: keeper.store, leases: keeper, onError: (error) => errors.push(error) });
    let stopped = null;
    /** The page closing: the keeper hands its leases back, then the Driver stops (once). */
    const stop = () => (stopped ??= (async () => {
      await keeper.stop();
      driver.stop();
      await driver.whenIdle();
    })());
    return { name, engine, store, keeper, driver, errors, changes, stop };
  });
  // After a failure: the relay may be closed already (hooks run in the order they were added).
  t.after(async () => {
    await Promise.allSettled(consoles.map((c) => c.stop()));
    for (const c of consoles) c.engine.free();
  });
  for (const c of consoles) {
    c.driver.start();
    c.keeper.start(c.driver);
  }

  const first = await waitFor('one console drives a1', () => consoles.find((c) => c.keeper.held().includes('a1')), { timeoutMs: 10 * TTL_MS });
  const second = consoles.find((c) => c !== first);
  await waitFor('the policy applied by the console that drives a1', () => assigned(serials.slice(0, 5)), { timeoutMs: 30_000 });
  const byToken = () => sim.requestLog.filter((entry) => entry.token === org.token);
  assert.ok(byToken().length > 0);
  assert.deepEqual(new Set(byToken().map((entry) => entry.headers['x-instance'])), new Set([first.name]), 'only the lease holder sent for a1');
  assert.deepEqual(second.keeper.held(), []);
  assert.deepEqual(second.changes.filter((c) => c.type === 'acquired'), [], 'the other console never took a1');

  // The other console's writes of a1 are left out by the store.
  const account = () => backend.load().find((r) => r.key === 'account/a1').value;
  const before = account();
  await second.keeper.store.apply([put('account/a1', { ...before, name: 'written by the other console' })]);
  assert.deepEqual(account(), before, 'a1 unchanged');
  assert.deepEqual(await second.store.applyFenced(second.name, [put('account/a1', { name: 'again' })]), { skipped: ['a1'] });
  await assert.rejects(second.store.apply([put('account/a1', { name: 'unfenced' })]), { code: 'UNFENCED_APPLY' });
  assert.deepEqual(account(), before);

  // The first console stops (its page closes): the second takes a1 over and drives it.
  await first.stop();
  assert.deepEqual(backend.leaseStates().find((s) => s.accountId === 'a1').holder, null, 'stopping freed the lease at once');
  await waitFor('the other console drives a1', () => second.keeper.held().includes('a1'), { timeoutMs: 10 * TTL_MS,
    describe: () => `leases: ${JSON.stringify(backend.leaseStates())}; changes: ${JSON.stringify(second.changes)}; errors: ${[...first.errors, ...second.errors].map(String)}` });
  second.driver.input(policy(serials.slice(0, 10)));
  await waitFor('the new targets assigned by the second console', () => assigned(serials.slice(0, 10)), { timeoutMs: 30_000 });

  const runs = driverRuns(sim.requestLog).get(org.token);
  t.diagnostic(`a1 driven by ${runs.map((run) => `${run.instance} (${run.requests} requests)`).join(', then ')}`);
  assert.deepEqual(runs.map((run) => run.instance), [first.name, second.name], 'a1 was driven by the first console, then by the second');
  assert.deepEqual(overlappingRuns(new Map([[org.token, runs]])), [], 'never by both at once');
  await second.stop();
  assert.deepEqual(backend.leaseStates(), [{ accountId: 'a1', holder: null, expiresInMs: null }]);
  assert.deepEqual([...first.errors, ...second.errors], []);
  assert.deepEqual(relay.errors, []);
});
