// The lease decisions (host-shim/lease-decisions.js) without the keeper's I/O: the plan of a round, the validity of
// leases and the adoption budget, with times as arguments; then several instances against a simulated lease table in
// simulated time — latencies, clock offsets and drift, crashes, restarts and busy accounts, all from a seed — checking
// after every step that no account is ever driven by two instances at once, and that the accounts end up shared fairly.
// No timers, no store, no engine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LeaseDecisions, planRound } from '../../host-shim/lease-decisions.js';

const TTL = 3000;
const MARGIN = 300;
const RENEW = 1000;
const decisions = (holder, random, marginMs = MARGIN) => new LeaseDecisions({ holder, ttlMs: TTL, marginMs, renewEveryMs: RENEW, random });
const state = (accountId, holder = null) => ({ accountId, holder });
const sorted = (list) => [...list].sort();

/** A seeded PRNG in [0, 1) (mulberry32). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('a round takes free accounts up to the fair share, in random order, and renews what the engine drives', () => {
  const states = ['a', 'b', 'c', 'd', 'e', 'f', 'g'].map((id) => state(id, id === 'g' ? 'B' : null));
  const plan = planRound({ holder: 'A', driven: new Set(), states, live: 2, random: prng(1) });
  assert.equal(plan.share, 4, '⌈7 / 2⌉');
  assert.deepEqual(plan.handOver, []);
  assert.deepEqual(plan.renew, []);
  assert.equal(plan.take.length, 4);
  assert.ok(plan.take.every((id) => id !== 'g'), 'never one another instance holds');
  const other = planRound({ holder: 'A', driven: new Set(), states, live: 2, random: prng(2) });
  assert.notDeepEqual(other.take, plan.take, 'instances starting together try different accounts first');

  const driven = new Set(['a', 'b']);
  const held = states.map((s) => (driven.has(s.accountId) ? state(s.accountId, 'A') : s));
  const next = planRound({ holder: 'A', driven, states: held, live: 2, random: prng(3) });
  assert.deepEqual(next.renew, ['a', 'b']);
  assert.equal(next.take.length, 2, 'up to the share');
});

test('a lease held in the store but not driven (a round cut short, an adopt that failed) is taken again', () => {
  const plan = planRound({ holder: 'A', driven: new Set(['a']), states: [state('a', 'A'), state('b', 'A'), state('c')], live: 1 });
  assert.deepEqual(plan.renew, ['a']);
  assert.deepEqual(sorted(plan.take), ['b', 'c']);
});

test('above the share, leased accounts the engine does not drive are handed over first, then idle driven ones, never busy ones', () => {
  const states = ['a', 'b', 'c', 'd', 'e', 'f'].map((id) => state(id, 'A'));
  const driven = new Set(['a', 'b', 'c', 'd', 'e']); // f: leased, not driven
  const plan = planRound({ holder: 'A', driven, states, live: 3, busy: new Set(['a', 'b', 'c']) });
  assert.equal(plan.share, 2);
  assert.deepEqual(plan.handOver, ['f', 'd', 'e'], 'the not-driven one first, then the idle ones');
  assert.deepEqual(plan.renew, ['a', 'b', 'c'], 'busy ones are kept, above the share for now');
  assert.deepEqual(plan.take, []);
  const allBusy = planRound({ holder: 'A', driven, states, live: 3, busy: new Set(driven) });
  assert.deepEqual(allBusy.handOver, ['f']);
});

test('an account added here and not yet written counts for the share and is never handed over', () => {
  const plan = planRound({ holder: 'A', driven: new Set(['new', 'a']), states: [state('a', 'A'), state('b', 'B')], live: 2 });
  assert.equal(plan.share, 2, '⌈3 / 2⌉: new counts');
  assert.deepEqual(plan.handOver, []);
  assert.deepEqual(sorted(plan.renew), ['a', 'new']);
  const crowded = planRound({ holder: 'A', driven: new Set(['new', 'a']), states: [state('a', 'A')], live: 2 });
  assert.deepEqual(crowded.handOver, ['a'], 'share 1: a goes, new (not stored yet) stays');
  assert.deepEqual(crowded.renew, ['new']);
});

test('the first round only announces the instance; later rounds plan', () => {
  const d = decisions('A');
  assert.equal(d.announced(), false);
  assert.equal(d.announced(), true);
});

test('a lease taken and not adopted yet is renewed with the driven ones, not taken again', () => {
  const d = decisions('A');
  d.acquired(['a', 'b'], ['a', 'b'], 0);
  d.adopted('a');
  const plan = d.plan({ states: [state('a', 'A'), state('b', 'A'), state('c', 'A')], live: 1, now: 1 });
  assert.deepEqual(plan.renew, ['a', 'b'], 'b is valid here');
  assert.deepEqual(plan.take, ['c'], 'c is held in the store but lapsed here');
  const later = d.plan({ states: [state('a', 'A'), state('b', 'A')], live: 1, now: TTL });
  assert.deepEqual(later.take, ['b'], 'once b lapsed here, it is taken again');
});

test('a round leaves hand-overs to free and leases to take to the work after it; the next round\'s wishes replace the last\'s', () => {
  const d = decisions('A');
  assert.equal(d.hasWork(0), false);
  d.leave({ handOver: ['h1'], take: ['t1', 't2'] });
  d.leave({ handOver: ['h2'], take: ['t2', 't3'] });
  assert.equal(d.hasLeftovers(), true);
  assert.deepEqual(d.leasesToFree(), ['h1', 'h2']);
  assert.deepEqual(d.leasesToFree(), [], 'once');
  d.acquired(['t3'], ['t3'], 0);
  assert.deepEqual(d.leasesToTake(1), ['t2'], 't1 no longer wanted, t3 valid here already');
  assert.equal(d.hasLeftovers(), false);
  assert.equal(d.hasWork(1), true, 't3 to adopt');
  d.adopted('t3');
  assert.equal(d.hasWork(1), false);
});

test('a lease is valid here until the acquiring statement was sent + ttl − margin; lost at once when it comes back without it', () => {
  const d = decisions('A');
  assert.deepEqual(d.acquired(['x', 'y'], ['x', 'y'], 1000), []);
  assert.deepEqual(d.toAdopt(1000), ['x', 'y']);
  d.adopted('x');
  d.adopted('y');
  assert.ok(d.holds('x', 1000 + TTL - MARGIN - 1));
  assert.ok(!d.holds('x', 1000 + TTL - MARGIN), 'not at the boundary');
  assert.equal(d.nextExpiry(), 1000 + TTL - MARGIN);
  assert.deepEqual(d.acquired(['x', 'y'], ['x'], 2000), ['y'], 'y came back held by another');
  assert.deepEqual(d.driven(), ['x']);
  assert.equal(d.nextExpiry(), 2000 + TTL - MARGIN);
  assert.deepEqual(d.expire(2000 + TTL - MARGIN - 1), []);
  assert.deepEqual(d.expire(2000 + TTL - MARGIN), ['x'], 'not renewed in time');
  assert.deepEqual(d.driven(), []);
  assert.equal(d.nextExpiry(), null);
  assert.deepEqual(d.acquired(['z'], [], 3000), [], 'a lease not driven is not reported lost');
});

test('lapsed, refused, deleted, released: which accounts stop being driven, and which the engine must release', () => {
  const d = decisions('A');
  d.acquired(['a', 'b', 'c', 'd', 'e', 'f'], ['a', 'b', 'c', 'd', 'e', 'f'], 0);
  for (const id of ['a', 'b', 'c', 'd', 'e']) d.adopted(id);
  assert.equal(d.lapsed('a'), true);
  assert.equal(d.lapsed('a'), false, 'once');
  assert.deepEqual(d.refused(['b', 'f']), ['b'], 'f was leased, not driven');
  assert.equal(d.valid('f', 1), false);
  d.deleted(['c']);
  assert.equal(d.release('d'), true);
  assert.equal(d.release('zz'), false);
  assert.deepEqual(d.driven(), ['e']);
  assert.deepEqual(d.releaseAll(), ['e']);
  assert.deepEqual(d.toAdopt(1), []);
});

test('adopting goes in slices of renewEveryMs / 2, and at most 1 s', () => {
  const d = decisions('A');
  const deadline = d.adoptionDeadline(10_000);
  assert.equal(deadline, 10_000 + RENEW / 2);
  assert.equal(d.mayAdopt(10_000 + RENEW / 2 - 1, deadline), true);
  assert.equal(d.mayAdopt(10_000 + RENEW / 2, deadline), false);
  const defaults = new LeaseDecisions({ holder: 'A', ttlMs: 30_000, marginMs: 3000, renewEveryMs: 10_000 });
  assert.equal(defaults.adoptionDeadline(0), 1000, 'not 5 s at the default ttl');
});

test('the next round comes at the expiry of another holder\'s lease when that is before the renewal interval; the noted expiry is used once', () => {
  const d = decisions('A');
  const held = (accountId, holder, expiresInMs) => ({ accountId, holder, expiresInMs });
  d.plan({ states: [held('a', 'B', TTL - 100), held('b', 'A', 50), state('c')], live: 2, now: 5000 });
  assert.equal(d.nextRoundAt(5010), 5010 + RENEW, 'a live holder\'s lease expires after the interval; this instance\'s own do not count');
  d.plan({ states: [held('a', 'B', 400), held('d', 'C', 700), held('b', 'A', 100)], live: 3, now: 6000 });
  assert.equal(d.nextRoundAt(6010), 6400, 'at the earliest expiry of another holder\'s lease, by the store\'s count from the answer');
  assert.equal(d.nextRoundAt(6500), 6500 + RENEW, 'once: a round failing before its plan falls back to the interval');
  d.plan({ states: [held('a', 'B', 5)], live: 2, now: 7000 });
  assert.equal(d.nextRoundAt(7020), 7005, 'expired while the round ran: due already');
  d.plan({ states: [state('a', 'B'), state('b')], live: 2, now: 8000 });
  assert.equal(d.nextRoundAt(8000), 8000 + RENEW, 'a store that does not say when leases expire: the interval');
});

test('a take that comes back short (another instance took some first) is planned again at once', () => {
  const d = decisions('A');
  assert.equal(d.takeFellShort(['a', 'b'], ['a', 'b']), false);
  assert.equal(d.takeFellShort(['a', 'b', 'b'], ['b', 'a']), false, 'duplicates count once');
  assert.equal(d.takeFellShort(['a', 'b'], ['b']), true);
  assert.equal(d.takeFellShort([], []), false);
});

/**
 * The store's lease tables in simulated time, as PostgresStore keeps them: expiry by the store's clock (the true
 * time here), each call one atomic step.
 */
class LeaseTable {
  leases = new Map();
  holders = new Map();
  constructor(accounts) {
    this.accounts = accounts;
  }

  heartbeat(holder, now) {
    this.holders.set(holder, now + TTL);
    return [...this.holders.values()].filter((at) => at > now).length;
  }

  states(now) {
    return this.accounts.map((accountId) => {
      const lease = this.leases.get(accountId);
      const live = lease !== undefined && lease.expiresAt > now;
      return { accountId, holder: live ? lease.holder : null, expiresInMs: live ? lease.expiresAt - now : null };
    });
  }

  acquire(holder, ids, now) {
    return ids.filter((id) => {
      const lease = this.leases.get(id);
      if (lease && lease.expiresAt > now && lease.holder !== holder) return false;
      this.leases.set(id, { holder, expiresAt: now + TTL });
      return true;
    });
  }

  release(holder, ids) {
    for (const id of ids) if (this.leases.get(id)?.holder === holder) this.leases.delete(id);
  }
}

test('an instance that stops renewing: a survivor\'s next round is planned at its leases\' expiry and takes every one of them then', () => {
  const table = new LeaseTable(['a', 'b', 'c', 'd']);
  const survivor = decisions('A', prng(1));
  const dying = decisions('B', prng(2));
  /** One round of `d` at `t` as the keeper runs it, store calls taking no time; returns when the next is due. */
  const round = (d, name, t) => {
    const live = table.heartbeat(name, t);
    if (d.announced()) {
      const { renew, take, handOver } = d.plan({ states: table.states(t), live, now: t });
      d.acquired(renew, table.acquire(name, renew, t), t);
      d.leave({ handOver, take });
      const taking = d.leasesToTake(t);
      d.acquired(taking, table.acquire(name, taking, t), t);
      for (const id of d.toAdopt(t)) d.adopted(id);
    }
    return d.nextRoundAt(t);
  };
  // A's rounds at 0, 1000, 2000, …; B's half-way between, until its last at 2500 (its leases expire at 5500).
  assert.equal(round(survivor, 'A', 0), RENEW);
  for (const t of [500, 1500, 2500]) assert.equal(round(dying, 'B', t), t + RENEW);
  const rounds = [];
  for (let t = RENEW; t <= 6000; t = round(survivor, 'A', t)) rounds.push(t);
  assert.deepEqual(rounds, [1000, 2000, 3000, 4000, 5000, 5500, 6500].filter((t) => t <= 6000),
    'every interval while B renews; at 5000 B\'s leases expire before the next one: a round at their expiry');
  assert.deepEqual(table.states(5500).map((s) => s.holder), ['A', 'A', 'A', 'A'], 'the round at 5500 took all of them');
  assert.deepEqual(survivor.driven(), ['a', 'b', 'c', 'd']);
});

/**
 * Instances as LeaseKeeper runs them, but every store call and its answer take a random latency, each instance's
 * clock has its own offset and drift (within what the margin covers), instances crash, new ones join, and an instance
 * may be cut off from the store for a while (its calls fail, its rounds fail, it keeps running: the case the local
 * expiry is for). Events run in true-time order. After every event: no account driven by two live instances whose
 * leases are valid by their own clocks.
 */
function simulate(seed, { accounts = 12, steps = 60_000, maxLatency = 120, marginMs = MARGIN } = {}) {
  const random = prng(seed);
  const table = new LeaseTable(Array.from({ length: accounts }, (_, i) => `acc${i}`));
  const events = [];
  let now = 0;
  let seq = 0;
  const at = (time, run) => {
    const event = { time, seq: seq++, run, cancelled: false };
    events.push(event);
    return event;
  };
  const latency = () => Math.floor(random() * maxLatency);
  const instances = [];
  let names = 0;

  function join(time) {
    const name = `I${names++}`;
    // Offset up to ±10 s, drift up to ±0.2 %: over one ttl, 6 ms, well inside the margin of 300 ms.
    const offset = Math.floor((random() - 0.5) * 20_000);
    const drift = (random() - 0.5) * 0.004;
    const instance = {
      name, alive: true, working: false, cutOffUntil: 0, offset, drift, d: decisions(name, random, marginMs),
      // The keeper's round timer, whether a round runs, and what waits for it to end.
      roundEvent: null, roundRunning: false, afterRound: [],
    };
    instance.local = (t) => Math.floor(t * (1 + drift)) + offset;
    instance.toTrue = (local) => Math.ceil((local - offset) / (1 + drift));
    instances.push(instance);
    at(time, () => round(instance));
  }

  /**
   * One store call of instance `i`: sent now, applied by the store after a latency, answered after another; `then`
   * gets the result. Cut off from the store, the call fails and so does the round (`failed`).
   */
  function call(i, apply, then, failed) {
    at(now + latency(), () => {
      if (!i.alive) return;
      if (now < i.cutOffUntil) {
        at(now + latency(), () => i.alive && failed());
        return;
      }
      const result = apply();
      at(now + latency(), () => i.alive && then(result));
    });
  }

  /**
   * One round, each store call awaited as the keeper awaits it; a failed call ends the round. It renews, hands over,
   * and leaves freeing, taking and adopting to the instance's work, started unless it runs already. As the keeper, it
   * replaces the pending round timer, is not run twice at once (`then` runs when the running one ends), and arms the
   * next at `nextRoundAt`.
   */
  function round(i, then = () => {}) {
    if (!i.alive) return;
    if (i.roundRunning) {
      i.afterRound.push(then);
      return;
    }
    if (i.roundEvent !== null) i.roundEvent.cancelled = true;
    i.roundRunning = true;
    const finish = () => {
      i.roundRunning = false;
      i.roundEvent = at(Math.max(now, i.toTrue(i.d.nextRoundAt(i.local(now)))), () => round(i));
      for (const waiting of [then, ...i.afterRound.splice(0)]) waiting();
    };
    call(i, () => table.heartbeat(i.name, now), (live) => {
      if (!i.d.announced()) return finish();
      call(i, () => table.states(now), (states) => {
        const busy = new Set(i.d.driven().filter(() => random() < 0.3));
        const { handOver, renew, take } = i.d.plan({ states, live, busy, now: i.local(now) });
        acquire(i, renew, () => {
          for (const id of handOver) i.d.release(id);
          i.d.leave({ handOver, take });
          if (!i.working && i.d.hasWork(i.local(now))) work(i);
          finish();
        }, finish);
      }, finish);
    }, finish);
  }

  /** The work after rounds: free handed-over leases, take wanted ones, adopt a slice; again while any is left. */
  function work(i) {
    i.working = true;
    const done = () => { i.working = false; };
    const step = () => {
      if (!i.alive) return done();
      const handOver = i.d.leasesToFree();
      const afterFree = () => {
        const taking = i.d.leasesToTake(i.local(now));
        acquire(i, taking, (held) => {
          // Others took some first: a round now, then this work goes on.
          if (i.d.takeFellShort(taking, held)) return round(i, () => at(now + 1, step));
          adoptSlice(i, (more) => {
            if (!more && !i.d.hasLeftovers()) return done();
            at(now + 1, step);
          });
        }, done);
      };
      if (handOver.length === 0) return afterFree();
      call(i, () => table.release(i.name, handOver), afterFree, done);
    };
    step();
  }

  function acquire(i, ids, then, failed) {
    if (ids.length === 0) return then([]);
    const sentAt = i.local(now);
    call(i, () => table.acquire(i.name, ids, now), (held) => {
      i.d.acquired(ids, held, sentAt);
      armExpiry(i);
      then(held);
    }, failed);
  }

  /** Adopts for one slice; `then(more)`. Reading an account and adopting it take time; its lease may lapse meanwhile. */
  function adoptSlice(i, then) {
    const deadline = i.d.adoptionDeadline(i.local(now));
    const next = () => {
      if (!i.alive) return;
      const waiting = i.d.toAdopt(i.local(now));
      if (waiting.length === 0) return then(false);
      if (!i.d.mayAdopt(i.local(now), deadline)) return then(true);
      at(now + latency() + Math.floor(random() * 300), () => {
        if (!i.alive) return;
        if (i.d.valid(waiting[0], i.local(now))) i.d.adopted(waiting[0]);
        armExpiry(i);
        next();
      });
    };
    next();
  }

  function armExpiry(i) {
    const local = i.d.nextExpiry();
    if (local !== null) at(Math.max(now, i.toTrue(local)), () => i.alive && (i.d.expire(i.local(now)), armExpiry(i)));
  }

  for (let k = 0; k < 3; k += 1) join(Math.floor(random() * 500));
  const violations = [];
  while (events.length > 0) {
    events.sort((a, b) => a.time - b.time || a.seq - b.seq);
    const event = events.shift();
    if (event.time > steps) break;
    if (event.cancelled) continue;
    now = event.time;
    event.run();
    // Crashes, joins and cut-offs until two thirds of the run; then it settles.
    if (now < (steps * 2) / 3 && random() < 0.002) {
      const live = instances.filter((x) => x.alive);
      const pick = live[Math.floor(random() * live.length)];
      const dice = random();
      if (dice < 0.3 && live.length > 1) pick.alive = false;
      else if (dice < 0.6) join(now);
      else pick.cutOffUntil = now + 1000 + Math.floor(random() * 6000);
    }
    const drivers = new Map();
    for (const i of instances.filter((x) => x.alive)) {
      for (const id of i.d.driven()) {
        if (!i.d.holds(id, i.local(now))) continue;
        if (drivers.has(id)) violations.push(`t=${now}: ${id} driven by ${drivers.get(id)} and ${i.name}`);
        drivers.set(id, i.name);
      }
    }
  }
  const live = instances.filter((x) => x.alive);
  const counts = live.map((i) => i.d.driven().filter((id) => i.d.holds(id, i.local(now))).length);
  const cutOffs = instances.filter((x) => x.cutOffUntil > 0).length;
  return { violations, live: live.length, counts, total: counts.reduce((a, b) => a + b, 0), instances: instances.length, cutOffs };
}

test('several instances on one lease table in simulated time: never two drivers of one account; after crashes and joins every account is driven, none above the fair share', () => {
  const seeds = Number(process.env.LEASE_SIM_SEEDS ?? 40);
  let joined = 0;
  let cut = 0;
  for (let seed = 1; seed <= seeds; seed += 1) {
    const { violations, live, counts, total, instances, cutOffs } = simulate(seed);
    assert.deepEqual(violations.slice(0, 3), [], `seed ${seed}`);
    joined += instances;
    cut += cutOffs;
    assert.equal(total, 12, `seed ${seed}: every account driven at the end (${counts})`);
    assert.ok(counts.every((c) => c <= Math.ceil(12 / live)), `seed ${seed}: shares ${counts} of ${live} live instances`);
  }
  assert.ok(joined > seeds * 3 && cut > seeds / 2, `instances joined (${joined}) and were cut off from the store (${cut})`);
});

test('the simulation catches a broken rule: a lease counted valid here past the store\'s expiry gives accounts two drivers', () => {
  // marginMs −1000: valid until sent + ttl + 1 s, while the store frees the lease at its now + ttl.
  const broken = Array.from({ length: 10 }, (_, k) => simulate(k + 1, { marginMs: -1000 }).violations.length);
  assert.ok(broken.some((n) => n > 0), `violations per seed: ${broken}`);
});
