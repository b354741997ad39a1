// The Apple relay (vpp-license-engine/node) over real loopback HTTP: against a fake Apple (a recording fetch) for
// its rules, and against the simulator with the built engine and the Driver for the browser console's path.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createAppleRelay } from '../../host-shim/node/index.js';
import { listen } from './server-support.mjs';
import { APPLE_BASE_URL } from '../../host-shim/transport.js';
import { startSimulator } from '../../host-shim/simulator/index.js';
import { Engine } from '../../pkg/vpp_license_engine.node.mjs';
import { Driver, MemoryStore, createFetchTransport } from '../../pkg/host-shim/index.js';

const STOKEN = 'eyJ0b2tlbiI6InNlY3JldC1zdG9rZW4tdmFsdWUiLCJleHBEYXRlIjoiMjAzMC0wMS0wMVQwMDowMDowMCswMDAwIiwib3JnTmFt1IjoiT1JHIn0=';
const ADMIN = 'Session admin-cookie';

/** A fake Apple: records each call; answers `reply(call)` ({ status, headers, body }) or a default JSON 200. */
function fakeApple(reply = () => ({ status: 200, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' })) {
  const calls = [];
  const fetch = async (url, init) => {
    const call = { url, method: init.method, headers: init.headers, body: init.body, signal: init.signal };
    calls.push(call);
    const { status, headers = {}, body = '' } = await reply(call);
    return new Response(body, { status, headers });
  };
  return { calls, fetch };
}

/** The relay on a loopback server (closed after the test); authorized when the x-admin header is ADMIN. */
async function serveRelay(t, options = {}) {
  const errors = [];
  const handler = createAppleRelay({
    authorize: (req) => req.headers['x-admin'] === ADMIN,
    onError: (error) => errors.push(error),
    ...options,
  });
  const server = await listen(handler);
  t.after(server.close);
  return { url: `${server.origin}/apple-relay`, errors };
}

/** A request to the relay as an authorized console would send it. */
async function relayed(url, { method = 'GET', headers = {}, body } = {}) {
  const res = await fetch(url, { method, headers: { 'x-admin': ADMIN, Authorization: `Bearer ${STOKEN}`, ...headers }, body });
  return { status: res.status, headers: res.headers, body: await res.text() };
}

test('an allow-listed request is forwarded with its query, Authorization, Content-Type and body, and nothing else', async (t) => {
  const apple = fakeApple();
  const { url } = await serveRelay(t, { fetch: apple.fetch });
  const get = await relayed(`${url}/assignments?adamId=408709785&sinceVersionId=abc%3D%3D&pageIndex=2`, { headers: { Cookie: 'session=1' } });
  assert.equal(get.status, 200);
  const body = JSON.stringify({ assets: [{ adamId: '1', pricingParam: 'STDQ' }], serialNumbers: ['C02X'] });
  await relayed(`${url}/assets/associate`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body });
  assert.equal(apple.calls.length, 2);
  const [read, write] = apple.calls;
  assert.equal(read.url, `${APPLE_BASE_URL}/assignments?adamId=408709785&sinceVersionId=abc%3D%3D&pageIndex=2`);
  assert.equal(read.method, 'GET');
  assert.deepEqual(read.headers, { authorization: `Bearer ${STOKEN}` }, 'no cookie, no x-admin, no host');
  assert.equal(read.body, undefined);
  assert.equal(write.url, `${APPLE_BASE_URL}/assets/associate`);
  assert.deepEqual(write.headers, { authorization: `Bearer ${STOKEN}`, 'content-type': 'application/json' });
  assert.equal(write.body, body);
});

test("Apple's status, Retry-After, Content-Type and body come back unchanged", async (t) => {
  const answerBody = '{"errorNumber":9646,"errorMessage":"Too many requests"}';
  const apple = fakeApple(() => ({ status: 503, headers: { 'retry-after': '120', 'content-type': 'application/json;charset=UTF-8', 'set-cookie': 'x=1' }, body: answerBody }));
  const { url } = await serveRelay(t, { fetch: apple.fetch });
  const res = await relayed(`${url}/status?eventId=e1`);
  assert.equal(res.status, 503);
  assert.equal(res.headers.get('retry-after'), '120');
  assert.equal(res.headers.get('content-type'), 'application/json;charset=UTF-8');
  assert.equal(res.headers.get('set-cookie'), null, "Apple's other headers stay at the relay");
  assert.equal(res.body, answerBody);
});

test('paths that are not Apple API paths are refused and never forwarded (not an open proxy)', async (t) => {
  const apple = fakeApple();
  const { url } = await serveRelay(t, { fetch: apple.fetch });
  for (const path of ['/assets/../../admin', '/admin', '/assets/associate/extra', '/%2e%2e/assets', '', '/https://evil.example/']) {
    assert.equal((await relayed(`${url}${path}`)).status, 404, path);
  }
  const outside = await fetch(`${url.replace('/apple-relay', '')}/elsewhere`);
  assert.equal(outside.status, 404, 'not under the relay path');
  assert.equal(apple.calls.length, 0);
});

test('a method Apple does not take on a path is refused with Allow', async (t) => {
  const apple = fakeApple();
  const { url } = await serveRelay(t, { fetch: apple.fetch });
  const res = await relayed(`${url}/assets/associate`);
  assert.equal(res.status, 405);
  assert.equal(res.headers.get('allow'), 'POST');
  assert.equal((await relayed(`${url}/assignments`, { method: 'DELETE' })).status, 405);
  assert.equal(apple.calls.length, 0);
});

test('a caller authorize rejects is refused before its body is read, and a throwing authorize is a 500', async (t) => {
  const apple = fakeApple();
  const { url } = await serveRelay(t, { fetch: apple.fetch });
  const res = await relayed(`${url}/assets/associate`, { method: 'POST', headers: { 'x-admin': 'someone else' }, body: '{}' });
  assert.equal(res.status, 403);
  const failing = await serveRelay(t, { fetch: apple.fetch, authorize: () => { throw new Error('session store down'); } });
  assert.equal((await relayed(`${failing.url}/assignments`)).status, 500);
  assert.match(failing.errors[0].message, /session store down/);
  assert.equal(apple.calls.length, 0);
  assert.throws(() => createAppleRelay({}), /authorize/);
});

test('a body over maxBodyBytes is refused with 413 and not forwarded', async (t) => {
  const apple = fakeApple();
  const { url } = await serveRelay(t, { fetch: apple.fetch, maxBodyBytes: 100 });
  const res = await relayed(`${url}/users/create`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: 'x'.repeat(101) });
  assert.equal(res.status, 413);
  assert.equal(apple.calls.length, 0);
});

test('Apple not answering within timeoutMs is a 504, unreachable or an oversized answer a 502; the sToken is never reported', async (t) => {
  const stuck = fakeApple((call) => new Promise((_, reject) => call.signal.addEventListener('abort', () => reject(new Error('aborted')))));
  const slow = await serveRelay(t, { fetch: stuck.fetch, timeoutMs: 50 });
  assert.equal((await relayed(`${slow.url}/assets`)).status, 504);
  assert.equal(slow.errors[0].code, 'UPSTREAM_TIMEOUT');

  const down = await serveRelay(t, { fetch: async () => { throw new Error('connect ECONNREFUSED 17.0.0.1:443'); } });
  assert.equal((await relayed(`${down.url}/assets`)).status, 502);

  const big = fakeApple(() => ({ status: 200, body: 'y'.repeat(1000) }));
  const large = await serveRelay(t, { fetch: big.fetch, maxResponseBytes: 999 });
  assert.equal((await relayed(`${large.url}/assets`)).status, 502);
  assert.equal(large.errors[0].code, 'UPSTREAM_TOO_LARGE');

  for (const error of [...slow.errors, ...down.errors, ...large.errors]) {
    assert.ok(!`${error.message} ${error.code}`.includes(STOKEN.slice(10, 40)), `reported: ${error.message}`);
  }
});

test("a console's engine syncs and assigns through the relay: the Driver's transport reaches the simulator only via it", { timeout: 30_000 }, async (t) => {
  // The simulator advertises Apple's URLs in its service config, as Apple does; the console's transport sends every
  // one of them to the relay (`baseUrl`), which forwards them to the simulator.
  const sim = await startSimulator({ port: 0, seed: 1, pageSize: 50, eventDelayMs: 50, advertisedBaseUrl: 'https://vpp.itunes.apple.com' });
  t.after(() => sim.close());
  const org = sim.addOrganization({ orgName: 'ORG1', locationName: 'PS01', apps: 2, devices: 30, users: 0, assignedFraction: 0 });
  const relay = await serveRelay(t, { appleBaseUrl: `${sim.url}/mdm/v2` });
  const direct = [];
  const viaRelay = createFetchTransport({ baseUrl: relay.url, timeoutMs: 5_000 });
  const transport = {
    send(request) {
      if (!request.url.startsWith(APPLE_BASE_URL)) direct.push(request.url);
      return viaRelay.send({ ...request, headers: { ...request.headers, 'x-admin': ADMIN } });
    },
  };
  const engine = new Engine({ mdmInfo: { id: 'relay-mdm', name: 'Relay MDM', metadata: 'test' }, seed: 1, coalesceMs: 0 }, Date.now());
  t.after(() => engine.free());
  const events = [];
  const driver = new Driver({ engine, transport, store: new MemoryStore(), onEvent: (event) => events.push(event), onError: (error) => assert.fail(error) });
  driver.start();
  t.after(async () => {
    driver.stop();
    await driver.whenIdle();
  });
  const serials = org.serialNumbers.slice(0, 5);
  const [asset] = org.assets;
  driver.input({ type: 'addAccount', accountId: 'a1', name: 'PS01', token: org.token });
  driver.input({ type: 'setPolicy', policy: { policyId: 'p1', name: 'Maths app', accountId: 'a1', adamId: asset.adamId, pricingParam: asset.pricingParam, licenseType: 'device', targets: serials } });
  // Apple holds the licenses once the association the engine sent through the relay completed.
  const held = () => org.assignments.filter((a) => a.adamId === asset.adamId && serials.includes(a.serialNumber)).length;
  while (held() < serials.length) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(events.some((e) => e.type === 'syncCompleted' && e.kind === 'full'), 'the first full sync completed through the relay');
  assert.deepEqual(direct, [], 'every request went through the relay');
  const paths = new Set(sim.requestLog.map((e) => e.path));
  for (const path of ['/mdm/v2/service/config', '/mdm/v2/assignments', '/mdm/v2/assets/associate']) assert.ok(paths.has(path), path);
  assert.deepEqual(relay.errors, []);
});
