// Driver unit tests against a scripted fake engine, transport, store and timer; and the rate under a slow store with
// the built engine (pkg/, scripts/build-pkg.sh) against the simulator over loopback, in real time (a few seconds).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Driver } from '../../host-shim/driver.js';
import { MemoryStore } from '../../host-shim/memory-store.js';
import { createFetchTransport } from '../../host-shim/transport.js';
import { startSimulator } from '../../host-shim/simulator/index.js';
import { Engine } from '../../pkg/vpp_license_engine.node.mjs';

const NOW = 1_000_000;

/** Hands out the outputs it was given, then `timeout` at `deadline`; `react` may queue more on input. */
class FakeEngine {
  inputs = [];
  outputs = [];
  deadline = NOW + 60_000;
  react = () => {};

  handleInput(input, now) {
    if (input.type === 'bogus') {
      throw Object.assign(new Error('unknown input type "bogus"'), { code: 'invalidInput' });
    }
    this.inputs.push({ input, now });
    this.react(input);
  }

  /** Batches of at most `batchSize` outputs; only the last one ends with the timeout. */
  batchSize = Infinity;
  pollOutputs() {
    const batch = this.outputs.splice(0, this.batchSize);
    return this.outputs.length > 0 ? batch : [...batch, { type: 'timeout', at: this.deadline }];
  }

  notifications = [];
  notificationStatus = 200;

  handleNotification(accountId, authorization, body, now) {
    if (accountId === 'bogus') throw Object.assign(new Error('bad account id'), { code: 'INVALID_INPUT' });
    this.notifications.push({ accountId, authorization, body, now });
    this.react({ type: 'notification', accountId });
    return this.notificationStatus;
  }
}

class FakeTimers {
  armed = [];
  cleared = [];
  #next = 1;
  setTimer = (callback, delay) => {
    const handle = this.#next++;
    this.armed.push({ handle, callback, delay });
    return handle;
  };
  clearTimer = (handle) => this.cleared.push(handle);
  /** Timers armed, neither cleared nor fired. */
  live() {
    return this.armed.filter((t) => !this.cleared.includes(t.handle) && !t.fired);
  }
  /** Fires the one live timer, as the event loop would. */
  fire() {
    const [timer, ...others] = this.live();
    assert.deepEqual(others, [], 'more than one timer armed');
    timer.fired = true;
    timer.callback();
  }
}

function request(id, purpose = 'serviceConfig') {
  return {
    type: 'request',
    id,
    accountId: null,
    purpose,
    method: 'GET',
    url: `https://vpp.itunes.apple.com/mdm/v2/${purpose}`,
    headers: { Authorization: 'Bearer secret' },
    body: null,
  };
}

const okTransport = { send: async () => ({ status: 200, headers: {}, body: '{}' }) };
const nullStore = { apply() {}, load: () => [] };

function setup({ engine = new FakeEngine(), transport = okTransport, store = nullStore, ...rest } = {}) {
  const timers = new FakeTimers();
  const events = [];
  const errors = [];
  const driver = new Driver({
    engine,
    transport,
    store,
    now: () => NOW,
    onEvent: (event) => events.push(event),
    onError: (error) => errors.push(error),
    setTimer: timers.setTimer,
    clearTimer: timers.clearTimer,
    ...rest,
  });
  return { driver, engine, timers, events, errors };
}

test('a request goes through the transport and its answer comes back as a response input with the same id', async () => {
  const engine = new FakeEngine();
  engine.outputs.push(request(7));
  const sent = [];
  const transport = {
    send: async (req) => {
      sent.push(req);
      return { status: 200, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' };
    },
  };
  const { driver, errors } = setup({ engine, transport });
  driver.start();
  await driver.whenIdle();
  assert.deepEqual(sent, [request(7)]);
  assert.deepEqual(engine.inputs, [
    {
      input: { type: 'response', id: 7, status: 200, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' },
      now: NOW,
    },
  ]);
  assert.deepEqual(errors, []);
});

test('a transport failure comes back as a networkError input carrying the error message', async () => {
  const engine = new FakeEngine();
  engine.outputs.push(request(3));
  const transport = { send: async () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:1')) };
  const { driver } = setup({ engine, transport });
  driver.start();
  await driver.whenIdle();
  assert.deepEqual(engine.inputs.map((i) => i.input), [
    { type: 'networkError', id: 3, message: 'connect ECONNREFUSED 127.0.0.1:1' },
  ]);
});

test('requests produced by a response are sent too, and whenIdle waits for all of them', async () => {
  const engine = new FakeEngine();
  engine.outputs.push(request(1));
  engine.react = (input) => {
    if (input.type === 'response' && input.id < 3) engine.outputs.push(request(input.id + 1));
  };
  const { driver } = setup({ engine });
  driver.start();
  await driver.whenIdle();
  assert.deepEqual(engine.inputs.map((i) => i.input.id), [1, 2, 3]);
});

test('persist outputs are applied one at a time, in output order, even when an earlier write is slower', async () => {
  const engine = new FakeEngine();
  engine.outputs.push(
    { type: 'persist', ops: [{ op: 'put', key: 'a', value: 1 }] },
    { type: 'persist', ops: [{ op: 'delete', key: 'a' }, { op: 'put', key: 'b', value: 2 }] },
    { type: 'persist', ops: [{ op: 'put', key: 'c', value: 3 }] },
  );
  const log = [];
  let writing = 0;
  const store = {
    async apply(ops) {
      writing += 1;
      assert.equal(writing, 1, 'two writes overlapped');
      log.push(ops.map((op) => `${op.op}:${op.key}`).join(','));
      await new Promise((resolve) => setTimeout(resolve, log.length === 1 ? 30 : 1));
      writing -= 1;
    },
  };
  const { driver, errors } = setup({ engine, store });
  driver.start();
  await driver.whenIdle();
  assert.deepEqual(log, ['put:a', 'delete:a,put:b', 'put:c']);
  assert.deepEqual(errors, []);
});

test('a batch that ends without the timeout is followed by the next one: every write in order, one timer', async () => {
  const engine = new FakeEngine();
  engine.batchSize = 2;
  engine.deadline = NOW + 7000;
  engine.outputs.push(...['a', 'b', 'c', 'd', 'e'].map((key) => ({ type: 'persist', ops: [{ op: 'put', key, value: 1 }] })));
  const log = [];
  const store = { apply: (ops) => log.push(ops[0].key), load: () => [] };
  const { driver, timers, errors } = setup({ engine, store });
  driver.start();
  await driver.whenIdle();
  assert.deepEqual(log, ['a', 'b', 'c', 'd', 'e']);
  assert.equal(timers.armed.length, 1, 'the timer is armed once, after the batch with the timeout');
  assert.deepEqual(timers.live().map((t) => t.delay), [7000]);
  assert.deepEqual(errors, []);
});

test('a request is sent only after the persist outputs before it are written', async () => {
  const engine = new FakeEngine();
  engine.outputs.push({ type: 'persist', ops: [{ op: 'put', key: 'intent', value: 1 }] }, request(9, 'associate'));
  const written = [];
  const store = {
    async apply(ops) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      written.push(...ops.map((op) => op.key));
    },
  };
  let writtenWhenSent;
  const transport = {
    send: async () => {
      writtenWhenSent = [...written];
      return { status: 200, headers: {}, body: '{}' };
    },
  };
  const { driver } = setup({ engine, store, transport });
  driver.start();
  await driver.whenIdle();
  assert.deepEqual(writtenWhenSent, ['intent']);
});

test('events go to onEvent; a throwing handler goes to onError and the drain goes on', async () => {
  const engine = new FakeEngine();
  const first = { type: 'ownershipClaimed', accountId: 'a1' };
  const second = { type: 'syncStarted', accountId: 'a1', kind: 'full' };
  engine.outputs.push({ type: 'event', event: first }, { type: 'event', event: second }, request(1));
  const seen = [];
  const sent = [];
  const boom = new Error('handler bug');
  const { driver, errors } = setup({
    engine,
    transport: { send: async (req) => (sent.push(req.id), { status: 200, headers: {}, body: '' }) },
    onEvent: (event) => {
      seen.push(event);
      if (event === first) throw boom;
    },
  });
  driver.start();
  await driver.whenIdle();
  assert.deepEqual(seen, [first, second]);
  assert.deepEqual(errors, [boom]);
  assert.deepEqual(sent, [1]);
});

test('one timer is armed at the engine deadline and re-armed only when the deadline moves', () => {
  const engine = new FakeEngine();
  engine.deadline = NOW + 5000;
  const { driver, timers } = setup({ engine });
  driver.start();
  assert.deepEqual(timers.live().map((t) => t.delay), [5000]);

  driver.input({ type: 'refresh', accountId: 'a1' }); // same deadline: the armed timer stays
  assert.equal(timers.armed.length, 1);
  assert.deepEqual(timers.cleared, []);

  engine.deadline = NOW + 2000;
  driver.input({ type: 'refresh', accountId: 'a1' });
  assert.deepEqual(timers.live().map((t) => t.delay), [2000]);
  assert.deepEqual(timers.cleared, [timers.armed[0].handle]);
});

test('the timer feeds a timeout input and re-arms at the next deadline', () => {
  const engine = new FakeEngine();
  engine.deadline = NOW + 1000;
  engine.react = (input) => {
    if (input.type === 'timeout') engine.deadline = NOW + 30_000;
  };
  const { driver, timers } = setup({ engine });
  driver.start();
  timers.fire();
  assert.deepEqual(engine.inputs.map((i) => i.input), [{ type: 'timeout' }]);
  assert.deepEqual(timers.live().map((t) => t.delay), [30_000]);
});

test('a past deadline fires at once and a far one is capped at the setTimeout maximum', () => {
  const engine = new FakeEngine();
  engine.deadline = NOW - 5000;
  const { driver, timers } = setup({ engine });
  driver.start();
  engine.deadline = Number.MAX_SAFE_INTEGER;
  driver.input({ type: 'refresh', accountId: 'a1' });
  assert.deepEqual(timers.armed.map((t) => t.delay), [0, 2 ** 31 - 1]);
});

test('input() throws the engine error to the caller and sends nothing', () => {
  const engine = new FakeEngine();
  const { driver, timers } = setup({ engine });
  assert.throws(() => driver.input({ type: 'bogus' }), { message: 'unknown input type "bogus"', code: 'invalidInput' });
  assert.equal(timers.armed.length, 0);
});

test('an engine error while feeding a response goes to onError', async () => {
  const engine = new FakeEngine();
  engine.outputs.push(request(4));
  const failure = new Error('engine bug');
  engine.react = () => {
    throw failure;
  };
  const { driver, errors } = setup({ engine });
  driver.start();
  await driver.whenIdle();
  assert.deepEqual(errors, [failure]);
});

/** A store whose apply fails while `failures` (key → attempts left to fail) says so; logs every attempt. */
function flakyStore(failures) {
  const attempts = [];
  const stored = [];
  return {
    attempts,
    stored,
    failures,
    async apply(ops) {
      const key = ops[0].key;
      attempts.push(key);
      await new Promise((resolve) => setImmediate(resolve));
      if ((failures.get(key) ?? 0) > 0) {
        failures.set(key, failures.get(key) - 1);
        throw Object.assign(new Error(`connection terminated while writing ${key}`), { code: '57P01' });
      }
      stored.push(key);
    },
    load: () => [],
  };
}

/** Live timers of a failed write's retry (the engine's deadline is a minute away). */
const retryTimers = (timers) => timers.live().filter((t) => t.delay < 60_000);

/** Lets the promise chains run until a write retry is armed (or `predicate` holds); fails after 200 turns. */
async function until(predicate) {
  for (let i = 0; i < 200; i += 1) {
    if (predicate()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  assert.fail('condition not reached');
}

/** Fires the one armed retry timer and returns its delay. */
async function fireRetry(timers) {
  await until(() => retryTimers(timers).length > 0);
  const [timer, ...others] = retryTimers(timers);
  assert.deepEqual(others, [], 'one retry at a time');
  timer.fired = true;
  timer.callback();
  return timer.delay;
}

test('a failed store write is retried with capped exponential backoff until stored; no later write or request goes first', async () => {
  const engine = new FakeEngine();
  engine.outputs.push(
    { type: 'persist', ops: [{ op: 'put', key: 'a', value: 1 }] },
    request(1, 'associate'),
    { type: 'persist', ops: [{ op: 'put', key: 'b', value: 2 }] },
    request(2, 'associate'),
  );
  const store = flakyStore(new Map([['a', 4]]));
  const sent = [];
  const transport = { send: async (req) => (sent.push({ id: req.id, stored: [...store.stored] }), { status: 200, headers: {}, body: '' }) };
  const { driver, timers, errors } = setup({ engine, store, transport, writeRetry: { initialDelayMs: 100, maxDelayMs: 300 } });
  driver.start();
  const delays = [];
  for (let i = 0; i < 4; i += 1) {
    delays.push(await fireRetry(timers));
    assert.deepEqual(sent, [], 'no request leaves while the write before it fails');
    assert.deepEqual(store.stored, [], 'no later write goes before the failing one');
  }
  await driver.whenIdle();
  assert.deepEqual(delays, [100, 200, 300, 300], 'doubling from initialDelayMs, capped at maxDelayMs');
  assert.deepEqual(store.attempts, ['a', 'a', 'a', 'a', 'a', 'b']);
  assert.deepEqual(store.stored, ['a', 'b']);
  assert.deepEqual(sent, [{ id: 1, stored: ['a'] }, { id: 2, stored: ['a', 'b'] }], 'each request left once the writes before it were stored');
  assert.deepEqual(errors.map((e) => e.message), Array(4).fill('connection terminated while writing a'), 'each failed attempt is reported');
  assert.deepEqual(engine.inputs.map((i) => i.input.id), [1, 2], 'the driver carries on');
  assert.equal(timers.live().length, 1, 'only the engine deadline is armed');
  await driver.writesSettled();
});

test('writesSettled() rejects with the store\'s error when a write queued before it fails, and at once while it is failing; resolves once the retry lands', async () => {
  const engine = new FakeEngine();
  const store = flakyStore(new Map([['b', 2]]));
  const { driver, timers } = setup({ engine, store });
  driver.start();
  engine.outputs.push({ type: 'persist', ops: [{ op: 'put', key: 'a', value: 1 }] });
  driver.input({ type: 'timeout' });
  const first = driver.writesSettled(); // a only
  engine.outputs.push({ type: 'persist', ops: [{ op: 'put', key: 'b', value: 2 }] });
  driver.input({ type: 'timeout' });
  const second = driver.writesSettled(); // a and b
  await first;
  await assert.rejects(second, { code: '57P01', message: 'connection terminated while writing b' });
  await assert.rejects(driver.writesSettled(), { code: '57P01' }, 'at once while b is waiting for its retry');
  await fireRetry(timers);
  await assert.rejects(driver.writesSettled(), { code: '57P01' }, 'still failing');
  await until(() => retryTimers(timers).length > 0);
  const third = driver.writesSettled();
  const outcome = third.then(() => 'stored', () => 'rejected');
  await fireRetry(timers);
  // Rejected at once: it was called while b was failing. A call made after the retry landed resolves.
  assert.equal(await outcome, 'rejected');
  await driver.whenIdle();
  await driver.writesSettled();
  assert.deepEqual(store.stored, ['a', 'b']);
  engine.outputs.push({ type: 'persist', ops: [{ op: 'put', key: 'c', value: 3 }] });
  driver.input({ type: 'timeout' });
  await driver.writesSettled();
  assert.deepEqual(store.stored, ['a', 'b', 'c']);
});

test('stop() gives up a failing write and every write after it: writesSettled() rejects for good, no request leaves, whenIdle resolves', async () => {
  const engine = new FakeEngine();
  engine.outputs.push(
    { type: 'persist', ops: [{ op: 'put', key: 'a', value: 1 }] },
    request(1),
    { type: 'persist', ops: [{ op: 'put', key: 'b', value: 2 }] },
  );
  const store = flakyStore(new Map([['a', Infinity]]));
  const sent = [];
  const transport = { send: async (req) => (sent.push(req.id), { status: 200, headers: {}, body: '' }) };
  const { driver, timers, errors } = setup({ engine, store, transport });
  driver.start();
  const pending = driver.writesSettled();
  await assert.rejects(pending, /writing a/);
  await until(() => retryTimers(timers).length > 0);
  driver.stop();
  await driver.whenIdle();
  assert.deepEqual(timers.live(), [], 'the retry timer is cleared with the engine timer');
  assert.deepEqual(store.attempts, ['a'], 'no retry after stop(), and b is not written over the lost a');
  assert.deepEqual(sent, []);
  await assert.rejects(driver.writesSettled(), /writing a/);
  assert.equal(errors.length, 1);
});

test('a write that fails after stop() is not retried', async () => {
  const engine = new FakeEngine();
  engine.outputs.push({ type: 'persist', ops: [{ op: 'put', key: 'a', value: 1 }] }, { type: 'persist', ops: [{ op: 'put', key: 'b', value: 2 }] });
  const store = flakyStore(new Map([['a', 1]]));
  const { driver, timers } = setup({ engine, store });
  driver.start();
  driver.stop();
  await driver.whenIdle();
  assert.deepEqual([store.attempts, store.stored], [['a'], []]);
  assert.deepEqual(timers.live(), []);
  await assert.rejects(driver.writesSettled(), /writing a/);
});

test('writeRetry is checked', () => {
  for (const writeRetry of [{ initialDelayMs: 0 }, { maxDelayMs: -1 }, { initialDelayMs: 1.5 }, { initialDelayMs: 500, maxDelayMs: 100 }]) {
    assert.throws(() => setup({ writeRetry }), RangeError, JSON.stringify(writeRetry));
  }
});

test('after stop() late responses are dropped, queued writes complete and whenIdle resolves', async () => {
  const engine = new FakeEngine();
  engine.outputs.push(request(1), { type: 'persist', ops: [{ op: 'put', key: 'k', value: 1 }] });
  let answer;
  const transport = { send: () => new Promise((resolve) => (answer = resolve)) };
  const applied = [];
  const store = {
    async apply(ops) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      applied.push(ops[0].key);
    },
  };
  const { driver, timers } = setup({ engine, transport, store });
  driver.start();
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(typeof answer, 'function', 'the request was not sent');
  driver.stop();
  assert.deepEqual(timers.live(), []);
  answer({ status: 200, headers: {}, body: '' });
  await driver.whenIdle();
  assert.deepEqual(engine.inputs, []);
  assert.deepEqual(applied, ['k']);
});

test('input() called from an event handler is drained by the running loop', async () => {
  const engine = new FakeEngine();
  engine.outputs.push({ type: 'event', event: { type: 'ownershipClaimed', accountId: 'a1' } });
  engine.react = (input) => {
    if (input.type === 'refresh') engine.outputs.push(request(5));
  };
  const sent = [];
  const transport = { send: async (req) => (sent.push(req.id), { status: 200, headers: {}, body: '' }) };
  let driver;
  ({ driver } = setup({
    engine,
    transport,
    onEvent: () => driver.input({ type: 'refresh', accountId: 'a1' }),
  }));
  driver.start();
  await driver.whenIdle();
  assert.deepEqual(sent, [5]);
});

test('the timer follows the deadline an event handler\'s input moved, not the one drained before it', () => {
  const engine = new FakeEngine();
  engine.deadline = NOW + 60_000;
  engine.outputs.push({ type: 'event', event: { type: 'ownershipClaimed', accountId: 'a1' } });
  engine.react = (input) => {
    if (input.type === 'refresh') engine.deadline = NOW + 3000;
  };
  let driver;
  let timers;
  ({ driver, timers } = setup({ engine, onEvent: () => driver.input({ type: 'refresh', accountId: 'a1' }) }));
  driver.start();
  assert.deepEqual(timers.live().map((t) => t.delay), [3000]);
});

test('a request drained with an event whose handler releases its account is not sent', async () => {
  const engine = new FakeEngine();
  engine.outputs.push({ type: 'event', event: { type: 'ownershipLost', accountId: 'a1', ownerName: 'x', ownerId: 'y' } });
  engine.outputs.push({ ...request(1), accountId: 'a1' }, { ...request(2), accountId: 'a2' });
  // As the engine does: the released account's queued requests are dropped.
  engine.release = (accountId) => {
    engine.outputs = engine.outputs.filter((o) => o.type !== 'request' || o.accountId !== accountId);
  };
  const sent = [];
  const transport = { send: async (req) => (sent.push(req.id), { status: 200, headers: {}, body: '' }) };
  let driver;
  ({ driver } = setup({ engine, transport, onEvent: (event) => driver.release(event.accountId) }));
  driver.start();
  await driver.whenIdle();
  assert.deepEqual(sent, [2]);
});

test('clock and timer functions are called unbound, as browsers require of setTimeout and performance.now', () => {
  const engine = new FakeEngine();
  const receivers = [];
  function record() {
    receivers.push(this);
    return NOW;
  }
  const driver = new Driver({ engine, transport: okTransport, store: nullStore, now: record, setTimer: record, clearTimer: record });
  driver.start();
  engine.deadline += 1;
  driver.input({ type: 'timeout' });
  assert.ok(receivers.length >= 4, `only ${receivers.length} calls`);
  assert.deepEqual(new Set(receivers), new Set([undefined]));
});

test('notification() hands account, Authorization, body and the clock to the engine and returns its status', () => {
  const engine = new FakeEngine();
  engine.notificationStatus = 401;
  const { driver } = setup({ engine });
  const body = '{"notificationType":"TEST_NOTIFICATION","notification":{}}';
  assert.equal(driver.notification('hq', 'Bearer n0t1f', body), 401);
  assert.equal(driver.notification('hq', undefined, body), 401);
  assert.deepEqual(engine.notifications, [
    { accountId: 'hq', authorization: 'Bearer n0t1f', body, now: NOW },
    { accountId: 'hq', authorization: null, body, now: NOW },
  ]);
  assert.deepEqual(engine.inputs, [], 'a notification is not an input');
});

test('notification() drains: what the notification unblocked is sent and the timer follows the new deadline', async () => {
  const engine = new FakeEngine();
  engine.deadline = NOW + 30_000;
  engine.react = (input) => {
    if (input.type === 'notification') {
      engine.outputs.push({ type: 'event', event: { type: 'licenseReady', accountId: 'hq', adamId: '1', pricingParam: 'STDQ', serialNumber: 'S1', clientUserId: null } });
      engine.outputs.push({ type: 'persist', ops: [{ op: 'put', key: 'account/hq', value: 1 }] }, request(8, 'associate'));
      engine.deadline = NOW + 1000;
    }
  };
  const applied = [];
  const sent = [];
  const { driver, events, timers } = setup({
    engine,
    store: { apply: (ops) => applied.push(...ops.map((op) => op.key)) },
    transport: { send: async (req) => (sent.push(req.id), { status: 200, headers: {}, body: '{}' }) },
  });
  driver.start();
  assert.equal(driver.notification('hq', 'Bearer x', '{}'), 200);
  assert.deepEqual(events.map((e) => e.type), ['licenseReady']);
  assert.deepEqual(timers.live().map((t) => t.delay), [1000]);
  await driver.whenIdle();
  assert.deepEqual(applied, ['account/hq']);
  assert.deepEqual(sent, [8]);
});

test('notification() throws the engine error, and a stopped driver refuses notifications', () => {
  const engine = new FakeEngine();
  const { driver } = setup({ engine });
  assert.throws(() => driver.notification('bogus', null, '{}'), { code: 'INVALID_INPUT' });
  driver.stop();
  assert.throws(() => driver.notification('hq', 'Bearer x', '{}'), /stopped/);
  assert.deepEqual(engine.notifications, []);
});

/** Time that moves only when a test says so; timers fire in time order, each followed by its promise chains. */
class Clock {
  t = NOW;
  #timers = [];
  now = () => this.t;
  setTimer = (callback, delay) => {
    const timer = { at: this.t + delay, callback };
    this.#timers.push(timer);
    return timer;
  };
  clearTimer = (timer) => {
    this.#timers = this.#timers.filter((t) => t !== timer);
  };

  /** Lets `ms` pass: every timer due fires at its time, and what it started settles. */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await turns();
      const due = this.#timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.t = Math.max(this.t, due.at);
      due.callback();
    }
    this.t = end;
    await turns();
  }
}

/** Lets every promise chain that can run, run. */
async function turns() {
  for (let i = 0; i < 20; i += 1) await new Promise((resolve) => setImmediate(resolve));
}

/** A store whose writes land only when the test says so: `pending` holds { key, land() } per write started. */
function manualStore() {
  const pending = [];
  const stored = [];
  return {
    pending,
    stored,
    apply(ops) {
      return new Promise((resolve) => pending.push({ key: ops[0].key, land: () => (stored.push(ops[0].key), resolve()) }));
    },
    /** Lands the oldest write in flight. */
    land() {
      pending.shift().land();
    },
    load: () => [],
  };
}

/** A FakeEngine that logs the time of every pollOutputs call. */
class PollLoggingEngine extends FakeEngine {
  polls = [];
  pollOutputs(now) {
    this.polls.push(now);
    return super.pollOutputs(now);
  }
}

const persist = (key) => ({ type: 'persist', ops: [{ op: 'put', key, value: 1 }] });
const accountRequest = (id, accountId = 'a1') => ({ ...request(id, 'associate'), accountId });

test('back-pressure: while a write is in flight inputs and timeouts go into the engine at once, but its outputs are drained only once the write is stored, at that time', async () => {
  const clock = new Clock();
  const engine = new PollLoggingEngine();
  engine.deadline = NOW + 500;
  engine.outputs.push(persist('a'));
  engine.react = (input) => {
    if (input.type === 'refresh') engine.outputs.push({ type: 'event', event: { type: 'syncStarted', accountId: 'a1', kind: 'delta' } }, accountRequest(1));
  };
  const store = manualStore();
  const sent = [];
  const transport = { send: async (req) => (sent.push({ id: req.id, at: clock.t, stored: [...store.stored] }), { status: 200, headers: {}, body: '' }) };
  const { driver, events, errors } = setup({ engine, store, transport, now: clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer });
  driver.start();
  await turns();
  assert.deepEqual(store.pending.map((w) => w.key), ['a']);

  await clock.advance(300);
  driver.input({ type: 'refresh', accountId: 'a1' });
  await clock.advance(700); // the timer fires at NOW + 500: a timeout input, nothing drained
  assert.deepEqual(engine.inputs.map((i) => [i.input.type, i.now - NOW]), [['refresh', 300], ['timeout', 500]], 'fed at once');
  assert.deepEqual(engine.polls, [NOW], 'nothing drained while the write is in flight');
  assert.deepEqual([events, sent], [[], []]);

  store.land();
  await turns();
  assert.deepEqual(engine.polls.slice(0, 2).map((t) => t - NOW), [0, 1000], 'drained when the write was stored, with that time');
  assert.deepEqual(events.map((e) => e.type), ['syncStarted']);
  assert.deepEqual(sent, [{ id: 1, at: NOW + 1000, stored: ['a'] }]);
  await driver.whenIdle();
  assert.deepEqual(errors, []);
});

test('writesSettled() after an input handled while a write was in flight waits for that input\'s records, drained later', async () => {
  const engine = new FakeEngine();
  engine.outputs.push(persist('a'));
  engine.react = (input) => {
    if (input.type === 'refresh') engine.outputs.push(persist('b'));
  };
  const store = manualStore();
  const { driver } = setup({ engine, store });
  driver.start();
  const before = driver.writesSettled(); // a only
  driver.input({ type: 'refresh', accountId: 'a1' });
  const after = driver.writesSettled(); // a, and b still in the engine
  const settled = [];
  before.then(() => settled.push('before'));
  after.then(() => settled.push('after'));
  await turns();
  store.land();
  await turns();
  assert.deepEqual([store.stored, store.pending.map((w) => w.key), settled], [['a'], ['b'], ['before']]);
  store.land();
  await turns();
  assert.deepEqual([store.stored, settled], [['a', 'b'], ['before', 'after']]);
});

test('back-pressure through a failing write: the drain waits for its retries and runs once it is stored (no deadlock)', async () => {
  const engine = new FakeEngine();
  engine.outputs.push(persist('a'));
  engine.react = (input) => {
    if (input.type === 'refresh') engine.outputs.push(persist('b'), accountRequest(1));
  };
  const store = flakyStore(new Map([['a', 2]]));
  const sent = [];
  const transport = { send: async (req) => (sent.push({ id: req.id, stored: [...store.stored] }), { status: 200, headers: {}, body: '' }) };
  const { driver, timers } = setup({ engine, store, transport });
  driver.start();
  driver.input({ type: 'refresh', accountId: 'a1' });
  await fireRetry(timers);
  await assert.rejects(driver.writesSettled(), /writing a/, 'a write queued before it is failing');
  await fireRetry(timers);
  await driver.whenIdle();
  assert.deepEqual(store.attempts, ['a', 'a', 'a', 'b']);
  assert.deepEqual(sent, [{ id: 1, stored: ['a', 'b'] }]);
  await driver.writesSettled();
});

test('stop() while outputs wait for a write: their records are still written once it lands, no request leaves, whenIdle and writesSettled resolve', async () => {
  const engine = new FakeEngine();
  engine.outputs.push(persist('a'));
  engine.react = (input) => {
    if (input.type === 'refresh') engine.outputs.push(persist('b'), accountRequest(1));
  };
  const store = manualStore();
  const sent = [];
  const transport = { send: async (req) => (sent.push(req.id), { status: 200, headers: {}, body: '' }) };
  const { driver, timers } = setup({ engine, store, transport });
  driver.start();
  driver.input({ type: 'refresh', accountId: 'a1' });
  const settled = driver.writesSettled();
  driver.stop();
  const idle = driver.whenIdle();
  await turns();
  store.land();
  await turns();
  store.land();
  await Promise.all([idle, settled]);
  assert.deepEqual([store.stored, sent, timers.live()], [['a', 'b'], [], []]);
});

test('a request held behind a write leaves later than the engine counted it: one emitted a second or more after it waits as long after it leaves (up to 1 s + the margin)', async () => {
  const clock = new Clock();
  const engine = new PollLoggingEngine();
  engine.deadline = NOW + 1250;
  // Emitted at NOW after a write (they leave when it lands, at NOW + 2000), with one of another account and one without.
  engine.outputs.push(persist('a'), accountRequest(1), accountRequest(2), accountRequest(3, 'a2'), request(4));
  engine.react = (input) => {
    if (input.type !== 'timeout') return;
    engine.deadline = NOW + 60_000;
    // Emitted at NOW + 2000 (drained once the write landed): a1 caught up with its first requests, a2 did not.
    engine.outputs.push(accountRequest(5), accountRequest(6), accountRequest(7, 'a2'));
  };
  const store = manualStore();
  const sent = [];
  const transport = { send: async (req) => (sent.push(`${req.id}@${clock.t - NOW}`), { status: 200, headers: {}, body: '' }) };
  const { driver, errors } = setup({ engine, store, transport, now: clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer });
  driver.start();
  await clock.advance(2000);
  store.land();
  await turns();
  assert.deepEqual(engine.polls.slice(0, 2).map((t) => t - NOW), [0, 2000]);
  // 7 (a2) was emitted 2000 ms after 3, which left at 2000: it waits until 3250 too.
  assert.deepEqual(sent, ['1@2000', '2@2000', '3@2000', '4@2000']);
  await clock.advance(1249);
  assert.equal(sent.length, 4, 'held for 1250 ms after the earlier requests left');
  await clock.advance(1);
  assert.deepEqual(sent.slice(4), ['5@3250', '6@3250', '7@3250']);
  await driver.whenIdle();
  assert.deepEqual(errors, []);
});

test('requests that did not wait are not held: emitted less than a second apart, or as far apart as they leave', async () => {
  const clock = new Clock();
  const engine = new FakeEngine();
  engine.deadline = NOW + 1000;
  engine.outputs.push(accountRequest(1), accountRequest(2));
  let round = 0;
  engine.react = (input) => {
    if (input.type !== 'timeout') return;
    round += 1;
    engine.deadline = round < 3 ? clock.t + 600 : NOW + 60_000;
    engine.outputs.push(accountRequest(10 + round));
  };
  const sent = [];
  const transport = { send: async (req) => (sent.push(`${req.id}@${clock.t - NOW}`), { status: 200, headers: {}, body: '' }) };
  const { driver } = setup({ engine, transport, now: clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer });
  driver.start();
  await clock.advance(3000);
  assert.deepEqual(sent, ['1@0', '2@0', '11@1000', '12@1600', '13@2200']);
  await driver.whenIdle();
});

test('group commit: a write waits one turn of the event loop, so inputs fed before it starts are handled first and their records drained after it, together', async () => {
  const engine = new PollLoggingEngine();
  engine.outputs.push(persist('first'));
  engine.react = (input) => engine.outputs.push(persist(`after ${input.type}`));
  const applied = [];
  // A synchronous store, as better-sqlite3 is: without the turn, each input's records would be a transaction of its own.
  const store = { apply: (ops) => applied.push({ keys: ops.map((op) => op.key), inputsSeen: engine.inputs.length }), load: () => [] };
  const { driver, errors } = setup({ engine, store });
  driver.start();
  // Three inputs already waiting in the event loop (as I/O callbacks would be) when the write is queued.
  const fed = ['a', 'b', 'c'].map((type) => new Promise((resolve) => setImmediate(() => resolve(driver.input({ type })))));
  await Promise.all(fed);
  assert.equal(engine.polls.length, 1, 'the inputs went into the engine; their outputs wait for the write');
  await driver.whenIdle();
  assert.deepEqual(applied[0], { keys: ['first'], inputsSeen: 3 }, 'the first write started after the three inputs were handled');
  assert.equal(engine.polls.length, 2, 'one drain took the records of all three inputs');
  assert.deepEqual(applied.slice(1).map((a) => a.keys[0]), ['after a', 'after b', 'after c']);
  assert.deepEqual(errors, []);
});

test('Retry-After: a request held behind a write does not leave inside the Retry-After window its account got after the engine emitted it', async () => {
  const clock = new Clock();
  const engine = new FakeEngine();
  // 1 leaves at once and is answered 503 + Retry-After: 2; 2 and 3 (another account) wait behind the write.
  engine.outputs.push(accountRequest(1), persist('a'), accountRequest(2), accountRequest(3, 'a2'));
  const store = manualStore();
  const sent = [];
  const transport = {
    send: async (req) => {
      sent.push(`${req.id}@${clock.t - NOW}`);
      return req.id === 1 ? { status: 503, headers: { 'retry-after': '2' }, body: '' } : { status: 200, headers: {}, body: '' };
    },
  };
  const { driver, errors } = setup({ engine, store, transport, now: clock.now, setTimer: clock.setTimer, clearTimer: clock.clearTimer });
  driver.start();
  await clock.advance(500);
  store.land();
  await clock.advance(1499);
  assert.deepEqual(sent, ['1@0', '3@500'], 'the other account is not held');
  await clock.advance(1);
  assert.deepEqual(sent, ['1@0', '3@500', '2@2000'], 'a1 waited until the end of the window Apple gave');
  assert.deepEqual(engine.inputs.map((i) => [i.input.id, i.input.status]), [[1, 503], [3, 200], [2, 200]]);
  await driver.whenIdle();
  assert.deepEqual(errors, []);
});

test('rateLimitMarginMs is checked', () => {
  for (const rateLimitMarginMs of [-1, 1001, 2.5, '250']) {
    assert.throws(() => setup({ rateLimitMarginMs }), RangeError, JSON.stringify(rateLimitMarginMs));
  }
  setup({ rateLimitMarginMs: 0 });
  setup({ rateLimitMarginMs: 1000 });
});

/** The most requests of one account in any `windowMs` (a sliding window over `times`, sorted). */
function peak(times, windowMs) {
  let most = 0;
  for (let i = 0, j = 0; j < times.length; j += 1) {
    while (times[j] - times[i] >= windowMs) i += 1;
    most = Math.max(most, j - i + 1);
  }
  return most;
}

test('with a slow store (1 s a write) the requests the engine paced leave at its rate: never more than maxRequestPerSecond of an account in 1 s + its 250 ms margin', { timeout: 30_000 }, async (t) => {
  const RATE = 5;
  const WRITE_MS = 1000;
  // A full sync of small pages, several in flight: the engine sends them as fast as the rate allows.
  const sim = await startSimulator({ port: 0, seed: 3, pageSize: 2, eventDelayMs: 50, rateLimit: false, limits: { maxRequestPerSecond: RATE } });
  t.after(() => sim.close());
  const org = sim.addOrganization({ apps: 10, books: 0, devices: 30, users: 10, assignedFraction: 0.5 });
  const memory = new MemoryStore();
  const store = {
    load: () => memory.load(),
    async apply(ops) {
      await new Promise((resolve) => setTimeout(resolve, WRITE_MS));
      return memory.apply(ops);
    },
  };
  const fetchTransport = createFetchTransport({ timeoutMs: 5000 });
  const sent = [];
  const transport = {
    send(req) {
      if (req.accountId !== null) sent.push(Date.now());
      return fetchTransport.send(req);
    },
  };
  const engine = new Engine({ mdmInfo: { id: 'driver-rate', name: 'Driver test', metadata: '1' }, serviceConfigUrl: sim.serviceConfigUrl, seed: 1 }, Date.now());
  const errors = [];
  const driver = new Driver({ engine, transport, store, onError: (error) => errors.push(error) });
  t.after(async () => {
    driver.stop();
    await driver.whenIdle();
    engine.free();
  });
  driver.start();
  driver.input({ type: 'addAccount', accountId: 'a1', name: 'A', token: org.token });
  const WANTED = 13;
  const started = Date.now();
  while (sent.length < WANTED && Date.now() - started < 15_000) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(sent.length >= WANTED, `only ${sent.length} requests in 15 s`);
  const gaps = sent.map((at) => at - sent[0]).join(' ');
  assert.ok(peak(sent, 1250) <= RATE, `${peak(sent, 1250)} requests within 1250 ms (limit ${RATE}); sent at ${gaps} ms`);
  // As Apple counts them (arrivals in any 1000 ms; the load test's check).
  const arrivals = sim.requestLog.filter((r) => r.token !== null).map((r) => r.at);
  assert.ok(peak(arrivals, 1000) <= RATE, `Apple saw ${peak(arrivals, 1000)} requests within a second (limit ${RATE})`);
  assert.deepEqual(errors, []);
});
