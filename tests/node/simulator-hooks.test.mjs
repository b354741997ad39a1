// Simulator hooks for crash and multi-instance tests: the reply hook (answer held after the request took effect),
// logged request headers, answer times, and accepted events with what they asked for.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, simulator, START } from './simulator-support.mjs';

test('the reply hook runs after the request took effect and holds its answer until the hook settles', async (t) => {
  const { sim, clock } = await simulator(t);
  const org = sim.addOrganization({ apps: 2, freeApps: 0, devices: 5, users: 0, assignedFraction: 0 });
  const asset = org.assets.find((a) => a.deviceAssignable);
  let release;
  const seen = [];
  sim.setReplyHook((entry) => {
    if (entry.path !== '/mdm/v2/assets/associate') return undefined;
    seen.push({ status: entry.status, eventId: entry.eventId, answeredAt: entry.answeredAt, event: sim.event(entry.eventId) });
    return new Promise((resolve) => { release = resolve; });
  });
  let answered = false;
  const pending = call(sim, '/assets/associate', {
    token: org.token, method: 'POST',
    body: { assets: [{ adamId: asset.adamId, pricingParam: asset.pricingParam }], serialNumbers: [org.serialNumbers[0]] },
  }).then((answer) => { answered = true; return answer; });
  while (release === undefined) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(answered, false, 'held');
  assert.equal(seen.length, 1);
  const [{ status, eventId, answeredAt, event }] = seen;
  assert.equal(status, 200);
  assert.equal(answeredAt, undefined, 'not answered yet');
  assert.deepEqual(event, {
    eventId, eventType: 'ASSOCIATE', eventStatus: 'PENDING', numRequested: 1, numCompleted: 0, failures: [],
    request: { assets: [{ adamId: asset.adamId, pricingParam: asset.pricingParam }], clientUserIds: [], serialNumbers: [org.serialNumbers[0]] },
  }, 'Apple accepted the request before the answer left');
  clock.t = START + 7;
  release();
  const { body } = await pending;
  assert.equal(body.eventId, eventId);
  assert.deepEqual({ eventId: sim.requestLog.at(-1).eventId, answeredAt: sim.requestLog.at(-1).answeredAt }, { eventId, answeredAt: START + 7 });
  sim.setReplyHook(null);
  await call(sim, '/assets', { token: org.token });
  assert.equal(sim.requestLog.at(-1).status, 200);
  assert.equal(sim.event('no-such-event'), undefined);
  assert.throws(() => sim.setReplyHook('x'), /function or null/);
});

test('logHeaders copies the named request headers into the log; without it entries carry none', async (t) => {
  const { sim } = await simulator(t, { logHeaders: ['X-Instance'] });
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  await call(sim, '/assets', { token: org.token, headers: { 'x-instance': 'backend-2', 'x-other': 'no' } });
  await call(sim, '/assets', { token: org.token });
  assert.deepEqual(sim.requestLog.map((e) => e.headers), [{ 'x-instance': 'backend-2' }, {}]);
  const { sim: plain } = await simulator(t);
  const other = plain.addOrganization({ apps: 1, devices: 1, users: 1 });
  await call(plain, '/assets', { token: other.token, headers: { 'x-instance': 'b' } });
  assert.equal('headers' in plain.requestLog[0], false);
});
