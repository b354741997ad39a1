// CORS: a console running the engine in a browser calls the simulator from another origin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, simulator } from './simulator-support.mjs';

test('a CORS preflight is answered 204 with the methods and headers the engine sends, and is not logged', async (t) => {
  const { sim } = await simulator(t);
  const res = await fetch(`${sim.url}/mdm/v2/assets`, {
    method: 'OPTIONS',
    headers: { Origin: 'http://127.0.0.1:1', 'Access-Control-Request-Method': 'GET', 'Access-Control-Request-Headers': 'authorization' },
  });
  assert.equal(res.status, 204);
  assert.equal(res.headers.get('access-control-allow-origin'), '*');
  assert.match(res.headers.get('access-control-allow-methods'), /\bGET\b.*\bPOST\b/);
  assert.match(res.headers.get('access-control-allow-headers'), /\bAuthorization\b/);
  assert.match(res.headers.get('access-control-allow-headers'), /\bContent-Type\b/);
  assert.deepEqual(sim.requestLog, []);
});

test('every answer allows any origin and exposes Retry-After, errors and faults included', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization();
  const ok = await call(sim, '/assets', { token: org.token });
  assert.equal(ok.status, 200);
  assert.equal(ok.headers.get('access-control-allow-origin'), '*');
  const unauthorized = await call(sim, '/assets', { token: 'nope' });
  assert.equal(unauthorized.status, 401);
  assert.equal(unauthorized.headers.get('access-control-allow-origin'), '*');
  sim.injectFault({ status: 503, retryAfter: '120' });
  const fault = await call(sim, '/assets', { token: org.token });
  assert.equal(fault.status, 503);
  assert.equal(fault.headers.get('retry-after'), '120');
  assert.equal(fault.headers.get('access-control-allow-origin'), '*');
  assert.match(fault.headers.get('access-control-expose-headers'), /\bRetry-After\b/i);
});

test('OPTIONS without a preflight header is an API call: 405 / 9726, logged', async (t) => {
  const { sim } = await simulator(t);
  const res = await call(sim, '/assets', { method: 'OPTIONS' });
  assert.equal(res.status, 405);
  assert.equal(res.body.errorNumber, 9726);
  assert.equal(sim.requestLog.length, 1);
});
