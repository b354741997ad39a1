// LeaseKeeper and the Driver's lease gate, on a shared MemoryStore with a fake clock and timers: several
// instances (each a fake engine, a real Driver and a keeper) in one process, in simulated time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Driver } from '../../host-shim/driver.js';
import { LeaseKeeper } from '../../host-shim/lease-keeper.js';
import { MemoryStore } from '../../host-shim/memory-store.js';

const TTL = 3000;
const MARGIN = 300;
const RENEW = 1000;
const FAR = 10 ** 12;

/** Time that moves only when a test says so; timers fire in time order, each followed by its promise chains. */
class Clock {
  t = 1_000_000;
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

  /** Lets `ms` pass as an event loop would: every timer due fires at its time, and what it started settles. */
  async advance(ms) {
    const end = this.t + ms;
    for (;;) {
      await settle();
      const due = this.#timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at)[0];
      if (!due) break;
      this.#timers = this.#timers.filter((t) => t !== due);
      this.t = Math.max(this.t, due.at);
      due.callback();
    }
    this.t = end;
    await settle();
  }

  /** Time passes but no timer fires: an event loop stalled by a long task. */
  stall(ms) {
    this.t += ms;
  }
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

/** Drives the accounts it adopted or added; requests and writes are queued by the test. */
class FakeEngine {
  driving = new Set();
  calls = [];
  outputs = [];
  inputs = [];
  #nextId = 1;

  handleInput(input) {
    if (input.type === 'addAccount') {
      if (this.driving.has(input.accountId)) throw Object.assign(new Error('exists'), { code: 'ACCOUNT_EXISTS' });
      if (input.token === 'bad') throw Object.assign(new Error('bad token'), { code: 'TOKEN_EMPTY' });
      this.driving.add(input.accountId);
      this.persist([{ op: 'put', key: `account/${input.accountId}`, value: { name: input.name } }]);
    }
    if (input.type === 'deleteAccount') {
      this.driving.delete(input.accountId);
      this.persist([{ op: 'delete', key: `account/${input.accountId}` }]);
    }
    this.inputs.push(input);
  }

  pollOutputs() {
    return [...this.outputs.splice(0), { type: 'timeout', at: FAR }];
  }

  handleNotification() {
    return 200;
  }

  /** Runs at each adopt (a test makes adopting take time). */
  onAdopt = () => {};

  adopt(accountId, records) {
    this.onAdopt();
    if (this.driving.has(accountId)) throw Object.assign(new Error('exists'), { code: 'ACCOUNT_EXISTS' });
    if (!records.some((r) => r.key === `account/${accountId}`)) throw Object.assign(new Error('unknown'), { code: 'UNKNOWN_ACCOUNT' });
    this.driving.add(accountId);
    this.calls.push({ adopt: accountId, keys: records.map((r) => r.key).sort() });
  }

  release(accountId) {
    if (!this.driving.delete(accountId)) throw Object.assign(new Error('unknown'), { code: 'UNKNOWN_ACCOUNT' });
    this.calls.push({ release: accountId });
    // As the engine does: its queued requests are dropped.
    this.outputs = this.outputs.filter((o) => o.type !== 'request' || o.accountId !== accountId);
  }

  request(accountId) {
    this.outputs.push({ type: 'request', id: this.#nextId++, accountId, purpose: 'test', method: 'GET', url: `https://x/${accountId}`, headers: {}, body: null });
  }

  persist(ops) {
    this.outputs.push({ type: 'persist', ops });
  }
}

/**
 * One instance: fake engine, real Driver (transport recording what leaves) and a LeaseKeeper on the shared store.
 * `timers` (default the clock): where its keeper and Driver arm their timers (see killable).
 */
function instance(store, clock, name, { transport, timers = clock } = {}) {
  const engine = new FakeEngine();
  const sent = [];
  const errors = [];
  const changes = [];
  const keeper = new LeaseKeeper({
    store, holder: name, ttlMs: TTL, marginMs: MARGIN, renewEveryMs: RENEW,
    now: clock.now, setTimer: timers.setTimer, clearTimer: timers.clearTimer,
    onLease: (change) => changes.push({ at: clock.t, ...change }),
    onError: (error) => errors.push(error),
  });
  const driver = new Driver({
    engine,
    store: keeper.store,
    leases: keeper,
    transport: transport ?? { send: async (request) => { sent.push({ at: clock.t, accountId: request.accountId }); return { status: 200, headers: {}, body: '{}' }; } },
    now: clock.now, setTimer: timers.setTimer, clearTimer: timers.clearTimer,
    onError: (error) => errors.push(error),
  });
  return { name, engine, driver, keeper, sent, errors, changes };
}

/** A store holding `ids` (account records) and a device fact. */
function seededStore(clock, ids) {
  const store = new MemoryStore({ now: clock.now });
  store.apply([...ids.map((id) => ({ op: 'put', key: `account/${id}`, value: { id } })), { op: 'put', key: 'device/S1', value: {} }]);
  return store;
}

/** A store holding `ids`, and instance A that took every lease (alone, from its second round on). */
async function aloneWith(ids) {
  const clock = new Clock();
  const store = seededStore(clock, ids);
  const a = instance(store, clock, 'A');
  a.keeper.start(a.driver);
  await clock.advance(RENEW);
  return { clock, store, a };
}

const ACCOUNTS = ['a1', 'a2', 'a3', 'a4', 'a5', 'a6'];

/** `store` with each method call made through `around(method, args, call)`: `call()` makes it on the store. */
function intercepted(store, around) {
  return new Proxy(store, {
    get(target, prop) {
      const value = Reflect.get(target, prop);
      if (typeof value !== 'function') return value;
      return (...args) => around(prop, args, () => value.apply(target, args));
    },
  });
}

/** `call()` made `ms` later on the clock, its result (or throw) as a promise. */
const later = (clock, ms, call) => new Promise((resolve, reject) => clock.setTimer(() => {
  try {
    resolve(call());
  } catch (error) {
    reject(error);
  }
}, ms));

/** `store` whose every call answers `ms` later on the clock, as a database over the network does. */
const withLatency = (store, clock, ms) => intercepted(store, (method, args, call) => later(clock, ms, call));

/**
 * Timers and a store for an instance that can be killed: after `kill()` none of its timers fires and none of its
 * store calls is answered or applied, as after a SIGKILL.
 */
function killable(clock, store) {
  let dead = false;
  return {
    timers: { setTimer: (callback, delay) => clock.setTimer(() => dead || callback(), delay), clearTimer: clock.clearTimer },
    store: intercepted(store, (method, args, call) => (dead ? new Promise(() => {}) : call())),
    kill: () => { dead = true; },
  };
}

/** `store` with its calls counted by method (`counts.heartbeat`, …). */
function counted(store) {
  const counts = {};
  const proxy = intercepted(store, (method, args, call) => {
    counts[method] = (counts[method] ?? 0) + 1;
    return call();
  });
  return { store: proxy, counts };
}

function assertDisjoint(instances) {
  const seen = new Map();
  for (const i of instances) {
    for (const id of i.engine.driving) {
      assert.ok(!seen.has(id), `${id} is driven by ${seen.get(id)} and ${i.name}`);
      seen.set(id, i.name);
    }
  }
}

test('instances started together share the accounts fairly, and no account is ever driven by two', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ACCOUNTS);
  const all = ['A', 'B', 'C'].map((n) => instance(store, clock, n));
  for (const i of all) i.keeper.start(i.driver);
  await clock.advance(0);
  assert.deepEqual(all.map((i) => i.keeper.held()), [[], [], []], 'the first round only announces the instance');
  for (let step = 0; step < 10; step += 1) {
    await clock.advance(RENEW / 2);
    assertDisjoint(all);
  }
  assert.deepEqual(all.map((i) => i.keeper.held().length), [2, 2, 2]);
  assert.deepEqual(all.flatMap((i) => i.keeper.held()).sort(), ACCOUNTS);
  for (const i of all) {
    const [first, ...others] = i.engine.calls.filter((c) => c.adopt);
    assert.deepEqual(first.keys, [`account/${first.adopt}`, 'device/S1'], 'the first adopt gets its account\'s records and those of no account');
    for (const call of others) assert.deepEqual(call.keys, [`account/${call.adopt}`], 'the others in its slice their own');
    assert.deepEqual(i.errors, []);
  }
});

test('adopting gives the engine the account\'s own records, not every account\'s, and the records of no account with the first adopt of a slice', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ['x', 'y']);
  store.apply([
    { op: 'put', key: 'policy/p-x', value: { policyId: 'p-x', accountId: 'x' } },
    { op: 'put', key: 'policy/p-y', value: { policyId: 'p-y', accountId: 'y' } },
    { op: 'put', key: 'asg/x/d/S1', value: { accountId: 'x' } },
    { op: 'put', key: 'asg/y/d/S1', value: { accountId: 'y' } },
    { op: 'put', key: 'op/y/7', value: { accountId: 'y' } },
    { op: 'put', key: 'user/u1', value: {} },
    { op: 'put', key: 'settings', value: {} },
  ]);
  const a = instance(store, clock, 'A');
  a.keeper.start(a.driver);
  await clock.advance(RENEW);
  assert.deepEqual(a.keeper.held(), ['x', 'y']);
  const shared = ['device/S1', 'settings', 'user/u1'];
  const own = { x: ['account/x', 'asg/x/d/S1', 'policy/p-x'], y: ['account/y', 'asg/y/d/S1', 'op/y/7', 'policy/p-y'] };
  const [first, second] = a.engine.calls.filter((c) => c.adopt);
  assert.deepEqual(first.keys, [...own[first.adopt], ...shared].sort(), 'the first: with the records of no account');
  assert.deepEqual(second.keys, own[second.adopt].sort(), 'the second: its own alone (the engine has the others)');
  assert.deepEqual(a.errors, []);
});

test('the records of no account go with the first adopt that succeeds in a slice: an account deleted meanwhile does not take them along', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ['x', 'y', 'z']);
  const a = instance(store, clock, 'A');
  const loads = [];
  const loadAccount = store.loadAccount.bind(store);
  store.loadAccount = (id, options) => {
    loads.push([id, options]);
    // The first account read is deleted by another instance right before: its adopt fails.
    if (loads.length === 1) store.apply([{ op: 'delete', key: `account/${id}` }]);
    return loadAccount(id, options);
  };
  a.keeper.start(a.driver);
  await clock.advance(RENEW);
  assert.equal(a.keeper.held().length, 2);
  assert.deepEqual(loads.map(([, options]) => options), [{ shared: true }, { shared: true }, { shared: false }].map((o) => ({ ...o, json: true })),
    'the records of no account until one adoption succeeded; as JSON text, for the engine');
  const [first, second] = a.engine.calls.filter((c) => c.adopt);
  assert.ok(first.keys.includes('device/S1') && !second.keys.includes('device/S1'));
  assert.deepEqual(a.errors, []);
});

test('taking an account over reads that account (store.loadAccount), never the whole store', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ['x', 'y', 'z']);
  const calls = [];
  const counting = intercepted(store, (method, args, call) => {
    if (method === 'load' || method === 'loadAccount') calls.push([method, ...args]);
    return call();
  });
  const a = instance(counting, clock, 'A');
  a.keeper.start(a.driver);
  await clock.advance(RENEW);
  assert.deepEqual(a.keeper.held(), ['x', 'y', 'z']);
  assert.deepEqual(calls.map(([method, id]) => [method, id]).sort(), [['loadAccount', 'x'], ['loadAccount', 'y'], ['loadAccount', 'z']]);
  assert.deepEqual(a.errors, []);
});

test('an account deleted after its lease was taken is not adopted: its lease is freed', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ['x', 'y']);
  const a = instance(store, clock, 'A');
  a.keeper.start(a.driver);
  await clock.advance(0);
  // Between A's lease statement and its reading of the records, another instance deletes y.
  const loadAccount = store.loadAccount.bind(store);
  store.loadAccount = (id) => {
    if (id === 'y') store.apply([{ op: 'delete', key: 'account/y' }]);
    return loadAccount(id);
  };
  await clock.advance(RENEW);
  assert.deepEqual(a.keeper.held(), ['x']);
  assert.deepEqual(a.engine.calls.filter((c) => c.adopt).map((c) => c.adopt), ['x']);
  assert.deepEqual(store.acquireLeases('B', ['y'], TTL), ['y'], 'y\'s lease is free');
  assert.deepEqual(a.errors, [], 'UNKNOWN_ACCOUNT is not an error here');
});

test('a long adoption is spread over back-to-back rounds: the leases are renewed between them and none lapses while a large share is adopted', async () => {
  const clock = new Clock();
  const ids = Array.from({ length: 12 }, (_, i) => `a${String(i).padStart(2, '0')}`);
  const store = seededStore(clock, ids);
  const a = instance(store, clock, 'A');
  // Each adopt blocks the event loop for 300 ms: the 12 in one go would take 3.6 s, past ttl − margin (2.7 s).
  a.engine.onAdopt = () => clock.stall(300);
  a.keeper.start(a.driver);
  for (let round = 0; round < 12 && a.keeper.held().length < ids.length; round += 1) await clock.advance(RENEW);
  assert.deepEqual(a.keeper.held(), ids, 'every account adopted');
  assert.deepEqual(a.changes.filter((c) => c.type !== 'acquired'), [], 'no lease lost or released');
  const rounds = new Set(a.changes.map((c) => c.at)).size;
  assert.ok(rounds >= 3, `adopted over ${rounds} rounds`);
  // A round cut short by its budget is followed at once by the next (no renewal interval between them).
  const took = a.changes.at(-1).at - a.changes[0].at;
  assert.ok(took < 12 * 300 + RENEW, `adopted in ${took} ms of simulated time`);
  // And they stay held: every lease renewed in time.
  await clock.advance(3 * TTL);
  assert.deepEqual(a.keeper.held(), ids);
  assert.deepEqual(a.changes.filter((c) => c.type !== 'acquired'), []);
  assert.deepEqual(a.errors, []);
});

test('an instance that stops renewing: the others plan a round at its leases\' expiry, not a renewal interval later, and take all its accounts then', async () => {
  const clock = new Clock();
  const ids = Array.from({ length: 12 }, (_, i) => `a${String(i).padStart(2, '0')}`);
  const seeded = seededStore(clock, ids);
  const store = withLatency(seeded, clock, 5);
  const c = killable(clock, store);
  const counting = counted(store);
  const a = instance(counting.store, clock, 'A');
  const b = instance(store, clock, 'B');
  a.keeper.start(a.driver);
  b.keeper.start(b.driver);
  // C starts half a renewal interval later: its renewals, and so its leases' expiry, fall between the others' rounds.
  await clock.advance(RENEW / 2);
  const cc = instance(c.store, clock, 'C', { timers: c.timers });
  cc.keeper.start(cc.driver);
  const all = [a, b, cc];
  for (let round = 0; round < 20 && !all.every((i) => i.keeper.held().length === 4); round += 1) await clock.advance(RENEW);
  assert.deepEqual(all.map((i) => i.keeper.held().length), [4, 4, 4]);

  // Healthy holders renew every interval: no round comes early.
  await clock.advance(RENEW / 4);
  const heartbeats = counting.counts.heartbeat;
  await clock.advance(5 * RENEW);
  assert.ok(counting.counts.heartbeat - heartbeats <= 5, `${counting.counts.heartbeat - heartbeats} rounds in 5 renewal intervals`);

  c.kill();
  const killedAt = clock.t;
  const expiry = killedAt + Math.min(...seeded.leaseStates().filter((l) => l.holder === 'C').map((l) => l.expiresInMs));
  const orphans = cc.keeper.held();
  await clock.advance(TTL + RENEW);
  const adoptedAt = orphans.map((id) => [a, b].flatMap((i) => i.changes)
    .find((change) => change.type === 'acquired' && change.accountId === id && change.at >= killedAt)?.at);
  assert.ok(adoptedAt.every((at) => at !== undefined), `every account of C adopted: ${adoptedAt}`);
  const late = Math.max(...adoptedAt) - expiry;
  // A few store calls of 5 ms each after the expiry: the survivors' regular rounds came ~RENEW / 2 later.
  assert.ok(late >= 0 && late < RENEW / 5, `adopted ${adoptedAt.map((at) => at - expiry)} ms after C's leases expired`);
  assert.deepEqual([a.keeper.held().length, b.keeper.held().length], [6, 6], 'each takes its share at once');
  assertDisjoint([a, b]);
  assert.deepEqual([...a.errors, ...b.errors], []);
});

test('a take that comes back short (another instance took some first) is planned again at once: the share is taken without waiting a round', async () => {
  const clock = new Clock();
  const ids = ['x1', 'x2', 'x3', 'x4', 'x5', 'x6'];
  const store = seededStore(clock, ids);
  store.heartbeat('B', 10 * TTL); // B is live (share 3 each) and grabs two of the leases A wants as A asks for them
  let grabbed = null;
  const racing = intercepted(store, (method, args, call) => {
    if (method === 'acquireLeases' && args[0] === 'A' && grabbed === null) grabbed = store.acquireLeases('B', args[1].slice(0, 2), 10 * TTL);
    return call();
  });
  const a = instance(racing, clock, 'A');
  a.keeper.start(a.driver);
  await clock.advance(0);
  assert.deepEqual(a.keeper.held(), [], 'the first round announces');
  await clock.advance(RENEW);
  const secondRound = clock.t;
  assert.equal(grabbed.length, 2);
  assert.equal(a.keeper.held().length, 3, 'its share, in the same round');
  assert.ok(a.keeper.held().every((id) => !grabbed.includes(id)));
  assert.ok(a.changes.every((change) => change.type === 'acquired' && change.at === secondRound), 'no round waited for');
  assert.deepEqual(a.errors, []);
});

test('an instance that joins later gets its share: the others hand idle accounts over, never one with a request in flight', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ACCOUNTS);
  let answer;
  const a = instance(store, clock, 'A', {
    transport: { send: (request) => new Promise((resolve) => { answer = () => resolve({ status: 200, headers: {}, body: request.accountId }); }) },
  });
  a.keeper.start(a.driver);
  await clock.advance(RENEW);
  assert.deepEqual(a.keeper.held(), ACCOUNTS, 'alone, it takes everything');
  a.engine.request('a1');
  a.driver.input({ type: 'tick' });
  await clock.advance(0);
  assert.equal(a.driver.requestsInFlight('a1'), 1);

  const b = instance(store, clock, 'B');
  b.keeper.start(b.driver);
  await clock.advance(RENEW);
  await clock.advance(RENEW);
  assert.equal(a.keeper.held().length, 3);
  assert.ok(a.keeper.held().includes('a1'), 'a1 (request in flight) stays');
  assert.deepEqual([...a.keeper.held(), ...b.keeper.held()].sort(), ACCOUNTS);
  const handedOver = a.changes.filter((c) => c.type === 'released').map((c) => c.accountId).sort();
  assert.deepEqual(handedOver, b.keeper.held());
  answer();
  assert.deepEqual([...a.errors, ...b.errors], []);
});

test('an instance that cannot renew releases its accounts at its local expiry, before the store lets another take them', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ['x', 'y']);
  let down = false;
  const flaky = intercepted(store, (method, args, call) => {
    if (down && method !== 'load') throw new Error('store unreachable');
    return call();
  });
  const a = instance(flaky, clock, 'A');
  a.keeper.start(a.driver);
  await clock.advance(RENEW);
  const acquiredAt = clock.t;
  assert.deepEqual(a.keeper.held(), ['x', 'y']);
  down = true;
  await clock.advance(TTL - MARGIN - 1);
  assert.deepEqual(a.keeper.held(), ['x', 'y'], 'valid until acquired + ttl − margin');
  assert.ok(a.errors.length >= 2 && a.errors.every((e) => /unreachable/.test(e.message)), 'failed rounds were reported');
  await clock.advance(1);
  assert.deepEqual(a.keeper.held(), []);
  assert.deepEqual(a.engine.calls.filter((c) => c.release).map((c) => c.release).sort(), ['x', 'y']);
  assert.deepEqual(a.changes.filter((c) => c.type === 'lost').map((c) => [c.accountId, c.at - acquiredAt, c.reason]).sort(),
    [['x', TTL - MARGIN, 'lease not renewed in time'], ['y', TTL - MARGIN, 'lease not renewed in time']]);

  // The store still counts the lease until acquired + ttl: only then may another instance take it.
  const b = instance(store, clock, 'B');
  assert.deepEqual(store.acquireLeases('B', ['x', 'y'], TTL), []);
  await clock.advance(MARGIN);
  assert.deepEqual(store.acquireLeases('B', ['x', 'y'], TTL).sort(), ['x', 'y']);
  assert.deepEqual(b.errors, []);
});

test('the Driver sends no request of an account whose lease is no longer valid, and has it released instead', async () => {
  const { clock, a } = await aloneWith(['x', 'y']);
  assert.deepEqual(a.keeper.held(), ['x', 'y']);
  // The event loop stalls past the local expiry: the expiry timer has not fired when the engine asks to send.
  clock.stall(TTL);
  a.engine.request('x');
  a.driver.input({ type: 'tick' });
  await settle();
  assert.deepEqual(a.sent, [], 'nothing left');
  assert.deepEqual(a.engine.calls.filter((c) => c.release), [{ release: 'x' }]);
  assert.deepEqual(a.changes.at(-1), { at: clock.t, type: 'lost', accountId: 'x', reason: 'lease not valid by the local clock' });
  assert.equal(a.driver.requestsInFlight('x'), 0);
  assert.throws(() => a.driver.notification('x', null, '{}'), (error) => error.code === undefined && /lease/.test(error.message),
    'a notification for an account not held is refused without a code (the endpoint answers 503)');
});

test('a lease taken by another instance is released at the next round; its records are then written by the new holder only', async () => {
  const { clock, store, a } = await aloneWith(['x', 'y']);
  // Another instance takes x behind A's back (as after a store-side expiry A did not notice).
  store.releaseLeases('A', ['x']);
  assert.deepEqual(store.acquireLeases('B', ['x'], TTL), ['x']);

  // A's engine writes x and y, and sends for y: x's ops are left out and x released; y carries on.
  a.engine.persist([
    { op: 'put', key: 'account/x', value: { by: 'A' } },
    { op: 'put', key: 'prov/y/1/STDQ/d/S1', value: { accountId: 'y' } },
    { op: 'put', key: 'device/S2', value: {} },
  ]);
  a.engine.request('x');
  a.engine.request('y');
  a.driver.input({ type: 'tick' });
  await a.driver.whenIdle();
  assert.deepEqual(a.sent.map((s) => s.accountId), ['y']);
  assert.deepEqual(a.keeper.held(), ['y']);
  assert.equal(a.changes.at(-1).reason, 'write refused: lease not held');
  const records = Object.fromEntries(store.load().map((r) => [r.key, r.value]));
  assert.deepEqual(records['account/x'], { id: 'x' }, 'x unchanged');
  assert.ok(records['prov/y/1/STDQ/d/S1'] && records['device/S2'], 'y\'s record and the global one were written');
  assert.deepEqual(a.errors, [], 'the driver did not halt');

  // The same through a round: B keeps x, so A's renewal leaves it out.
  a.engine.request('y');
  a.driver.input({ type: 'tick' });
  await clock.advance(RENEW);
  assert.deepEqual(a.keeper.held(), ['y']);
  assert.deepEqual(a.sent.map((s) => s.accountId), ['y', 'y']);
});

test('a renewal that comes back without an account releases it at once', async () => {
  const { clock, store, a } = await aloneWith(['x', 'y']);
  store.releaseLeases('A', ['y']);
  store.acquireLeases('B', ['y'], TTL);
  await clock.advance(RENEW);
  assert.deepEqual(a.keeper.held(), ['x']);
  assert.deepEqual(a.changes.filter((c) => c.type === 'lost').map((c) => [c.accountId, c.reason]), [['y', 'lease held by another instance']]);
});

test('addAccount takes the lease before the engine writes; an existing account or a refused input leaves no lease behind', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ['x']);
  const a = instance(store, clock, 'A');
  const b = instance(store, clock, 'B');
  for (const i of [a, b]) i.keeper.start(i.driver);
  await clock.advance(RENEW);
  const holderOfX = a.keeper.held().length === 1 ? a : b;
  const other = holderOfX === a ? b : a;

  await other.keeper.addAccount({ type: 'addAccount', accountId: 'new', name: 'New', token: 't' });
  await other.driver.whenIdle();
  assert.ok(other.keeper.held().includes('new'));
  assert.deepEqual(store.leaseStates().find((s) => s.accountId === 'new'), { accountId: 'new', holder: other.name, expiresInMs: TTL });
  await assert.rejects(holderOfX.keeper.addAccount({ type: 'addAccount', accountId: 'new', name: 'Again', token: 't' }), { code: 'ACCOUNT_EXISTS' });
  await assert.rejects(other.keeper.addAccount({ type: 'addAccount', accountId: 'bad', name: 'Bad', token: 'bad' }), { code: 'TOKEN_EMPTY' });
  assert.deepEqual(store.acquireLeases('C', ['bad'], TTL), ['bad'], 'the refused account\'s lease was given back');
  assert.deepEqual([...a.errors, ...b.errors], []);
});

test('deleting an account gives up its lease; stop() releases every account, lets queued writes land and frees the leases at once', async () => {
  const { store, a } = await aloneWith(['x', 'y', 'z']);
  a.driver.input({ type: 'deleteAccount', accountId: 'z' });
  await a.driver.whenIdle();
  await settle();
  assert.deepEqual(a.keeper.held(), ['x', 'y']);
  assert.deepEqual(store.acquireLeases('B', ['z'], TTL), ['z'], 'z\'s lease is free');

  a.engine.persist([{ op: 'put', key: 'prov/x/1/STDQ/d/S1', value: { accountId: 'x' } }]);
  a.driver.input({ type: 'tick' });
  await a.keeper.stop();
  assert.ok(store.load().some((r) => r.key === 'prov/x/1/STDQ/d/S1'), 'the queued write landed before the lease ended');
  assert.deepEqual(a.keeper.held(), []);
  assert.deepEqual(a.engine.driving, new Set());
  assert.deepEqual(store.acquireLeases('B', ['x', 'y'], TTL).sort(), ['x', 'y']);
  assert.equal(store.heartbeat('B', TTL), 1, 'A left');
  assert.deepEqual(a.errors, []);
});

/**
 * `store` with switches: `writesDown` fails applyFenced, `down` fails every call, as an unreachable database would;
 * `writesHeld` (a promise) holds each applyFenced until it resolves, as a slow one would.
 */
function switchable(store) {
  const state = { down: false, writesDown: false, writesHeld: null, fencedWrites: [] };
  state.store = intercepted(store, (method, args, call) => {
    if (state.down || (state.writesDown && method === 'applyFenced')) return Promise.reject(new Error('store unreachable'));
    if (state.writesHeld !== null && method === 'applyFenced') {
      return state.writesHeld.then(() => {
        state.fencedWrites.push(args[1].map((op) => op.key));
        return call();
      });
    }
    if (method === 'applyFenced') state.fencedWrites.push(args[1].map((op) => op.key));
    return call();
  });
  return state;
}

test('a failing write is retried by the Driver while the keeper keeps renewing: no request leaves before it lands, no account is lost', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ['x', 'y']);
  const flaky = switchable(store);
  const a = instance(flaky.store, clock, 'A');
  a.keeper.start(a.driver);
  await clock.advance(RENEW);
  flaky.writesDown = true;
  a.engine.persist([{ op: 'put', key: 'prov/x/1/STDQ/d/S1', value: { accountId: 'x' } }]);
  a.engine.request('x');
  a.driver.input({ type: 'tick' });
  await clock.advance(2 * TTL);
  assert.deepEqual(a.keeper.held(), ['x', 'y'], 'renewed all along');
  assert.deepEqual(a.sent, [], 'the request waits for the write before it');
  assert.ok(a.errors.length >= 4 && a.errors.every((e) => e.message === 'store unreachable'), 'each failed attempt reported');
  flaky.writesDown = false;
  await clock.advance(5000);
  assert.deepEqual(a.sent.map((s) => s.accountId), ['x']);
  assert.ok(store.load().some((r) => r.key === 'prov/x/1/STDQ/d/S1'));
  assert.deepEqual(a.changes.filter((c) => c.type !== 'acquired'), []);
  await a.driver.writesSettled();
});

test('a round due while an instance adopts runs to its end before the next slice of adoptions: no slice delays its renewal', async () => {
  const clock = new Clock();
  const ids = Array.from({ length: 12 }, (_, i) => `a${String(i).padStart(2, '0')}`);
  const seeded = seededStore(clock, ids);
  // Every store call answers 5 ms later, as a database over the network does (the event loop runs meanwhile).
  const renewals = [];
  let roundStart = null;
  let last = null;
  const store = intercepted(seeded, (method, args, call) => {
    // A round: heartbeat, leaseStates, then its renewal (acquireLeases of what it holds, once it holds some).
    if (method === 'heartbeat') roundStart = clock.t;
    if (method === 'acquireLeases' && last === 'leaseStates' && args[1].some((id) => a.engine.driving.has(id))) renewals.push(clock.t - roundStart);
    last = method;
    return later(clock, 5, call);
  });
  const a = instance(store, clock, 'A');
  a.engine.onAdopt = () => clock.stall(300);
  a.keeper.start(a.driver);
  for (let round = 0; round < 12 && a.keeper.held().length < ids.length; round += 1) await clock.advance(RENEW);
  assert.deepEqual(a.keeper.held(), ids);
  assert.ok(renewals.length >= 2, `renewed ${renewals.length} times while adopting`);
  // Two statements of 5 ms before the renewal, and no slice of adoptions (300 ms each) between them.
  assert.ok(renewals.every((ms) => ms <= 10), `from a round's start to its renewal: ${renewals} ms`);
  assert.deepEqual(a.changes.filter((c) => c.type !== 'acquired'), []);
  assert.deepEqual(a.errors, []);
});

test('free leases are taken while an instance adopts a large share: later rounds leave them to the work going on', async () => {
  const clock = new Clock();
  const ids = Array.from({ length: 12 }, (_, i) => `a${String(i).padStart(2, '0')}`);
  const store = seededStore(clock, ids);
  const a = instance(store, clock, 'A');
  a.engine.onAdopt = () => clock.stall(300);
  a.keeper.start(a.driver);
  await clock.advance(RENEW + 1);
  assert.ok(a.keeper.held().length < ids.length, 'still adopting');
  // Two accounts appear: the next rounds want them, and the work going on takes and adopts them.
  store.apply([{ op: 'put', key: 'account/n1', value: { id: 'n1' } }, { op: 'put', key: 'account/n2', value: { id: 'n2' } }]);
  let takenWhileAdopting = false;
  for (let step = 0; step < 40 && a.keeper.held().length < ids.length + 2; step += 1) {
    await clock.advance(RENEW / 4);
    const leased = store.leaseStates().filter((l) => l.holder === 'A').map((l) => l.accountId);
    if (leased.includes('n1') && leased.includes('n2') && a.keeper.held().filter((id) => ids.includes(id)).length < ids.length) takenWhileAdopting = true;
  }
  assert.ok(takenWhileAdopting, 'n1 and n2 leased before the first share was all adopted');
  assert.deepEqual(a.keeper.held(), [...ids, 'n1', 'n2']);
  assert.deepEqual(a.changes.filter((c) => c.type !== 'acquired'), []);
  assert.deepEqual(a.errors, []);
});

test('rounds keep renewing while the work of an earlier one waits for slow writes: taking a lease behind them delays no renewal', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ['x', 'y']);
  const slow = switchable(store);
  const a = instance(slow.store, clock, 'A');
  a.keeper.start(a.driver);
  await clock.advance(RENEW);
  assert.deepEqual(a.keeper.held(), ['x', 'y']);
  // A write that takes 2 ttl, and meanwhile a new account to take: its lease waits for the write, the renewals do not.
  let land;
  slow.writesHeld = new Promise((resolve) => { land = resolve; });
  a.engine.persist([{ op: 'put', key: 'prov/x/1/STDQ/d/S1', value: { accountId: 'x' } }]);
  a.driver.input({ type: 'tick' });
  store.apply([{ op: 'put', key: 'account/z', value: { id: 'z' } }]);
  await clock.advance(2 * TTL);
  assert.deepEqual(a.keeper.held(), ['x', 'y'], 'x and y renewed all along; z not taken while the write is pending');
  assert.deepEqual(store.leaseStates().find((l) => l.accountId === 'z'), { accountId: 'z', holder: null, expiresInMs: null });
  slow.writesHeld = null;
  land();
  await clock.advance(2 * RENEW);
  assert.deepEqual(a.keeper.held(), ['x', 'y', 'z'], 'z taken once the write landed');
  assert.deepEqual(a.changes.filter((c) => c.type !== 'acquired'), []);
  assert.deepEqual(a.errors, []);
});

test('an unreachable store: the accounts lapse at their local expiry, and the keeper takes and adopts them again once the store answers and its queued writes are settled', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ['x', 'y']);
  const flaky = switchable(store);
  const a = instance(flaky.store, clock, 'A');
  a.keeper.start(a.driver);
  await clock.advance(RENEW);
  flaky.down = true;
  a.engine.persist([{ op: 'put', key: 'prov/x/1/STDQ/d/S1', value: { accountId: 'x' } }]);
  a.engine.request('x');
  a.driver.input({ type: 'tick' });
  await clock.advance(TTL);
  assert.deepEqual(a.keeper.held(), []);
  assert.deepEqual(a.changes.filter((c) => c.type === 'lost').map((c) => [c.accountId, c.reason]).sort(),
    [['x', 'lease not renewed in time'], ['y', 'lease not renewed in time']]);
  assert.deepEqual(a.sent, []);
  await clock.advance(TTL);
  flaky.down = false;
  await clock.advance(2 * 5000);
  assert.deepEqual(a.keeper.held(), ['x', 'y'], 'taken again');
  const adoptions = a.engine.calls.filter((c) => c.adopt).map((c) => c.adopt).sort();
  assert.deepEqual(adoptions, ['x', 'x', 'y', 'y']);
  // The write queued before the outage was tried again once the store answered, and refused for x (its lease had
  // lapsed in the store too), before x was adopted again: as after a crash, the new tenure starts from the store.
  assert.ok(!store.load().some((r) => r.key === 'prov/x/1/STDQ/d/S1'));
  assert.deepEqual(a.sent, [], 'the request of the lapsed tenure never left');
  await a.driver.writesSettled();
});

test('a lease the engine does not drive is not taken while a write is failing: a late write of an earlier tenure never lands over another holder\'s records', async () => {
  const clock = new Clock();
  const store = seededStore(clock, ['x', 'y']);
  const flaky = switchable(store);
  const a = instance(flaky.store, clock, 'A');
  a.keeper.start(a.driver);
  await clock.advance(RENEW);
  flaky.writesDown = true;
  a.engine.persist([{ op: 'put', key: 'account/x', value: { by: 'A' } }]);
  a.driver.input({ type: 'tick' });
  await settle();
  // Meanwhile x changes hands in the store: B takes it, writes it and lets it go.
  store.releaseLeases('A', ['x']);
  assert.deepEqual(store.acquireLeases('B', ['x'], TTL), ['x']);
  await clock.advance(RENEW);
  assert.deepEqual(a.keeper.held(), ['y'], 'A lost x at its renewal');
  store.applyFenced('B', [{ op: 'put', key: 'account/x', value: { by: 'B' } }]);
  store.releaseLeases('B', ['x']);
  await clock.advance(3 * RENEW);
  assert.deepEqual(a.keeper.held(), ['y'], 'x is free, but A does not take it while its write is failing');
  flaky.writesDown = false;
  await clock.advance(5000 + RENEW);
  assert.deepEqual(a.keeper.held(), ['x', 'y'], 'taken once the write settled');
  const records = Object.fromEntries(store.load().map((r) => [r.key, r.value]));
  assert.deepEqual(records['account/x'], { by: 'B' }, 'A\'s late write was refused, not written over B\'s');
  assert.deepEqual(a.engine.calls.filter((c) => c.adopt).map((c) => c.adopt).sort(), ['x', 'x', 'y']);
});

test('the keeper checks its options', () => {
  const store = new MemoryStore();
  assert.throws(() => new LeaseKeeper({ store: { apply() {}, load() {} } }), /LeaseStore \(missing heartbeat/);
  assert.throws(() => new LeaseKeeper({ store, ttlMs: 3000, marginMs: 1000, renewEveryMs: 2000 }), /renewEveryMs \+ marginMs below ttlMs/);
  assert.throws(() => new LeaseKeeper({ store, holder: '' }), /holder/);
  assert.throws(() => new Driver({ engine: {}, transport: {}, store, leases: {} }), /holds\(accountId\) and lapsed/);
  assert.match(new LeaseKeeper({ store }).holder, /^[0-9a-f-]{36}$/);
});
