// The LeaseStore contract (host-shim/store.d.ts), one suite for every leasing adapter (MemoryStore, PostgresStore).
// Plain ES module without node: imports, like contract.mjs.
//
// A case gets a fresh `place` from the adapter's test:
//   place.open()        → the LeaseStore (one shared store; holders are just ids)
//   place.ttlMs         a lease duration for the expiry cases
//   place.advance(ms)   lets `ms` pass on the STORE's clock (a fake clock, or real time for a database)
//   place.close(store)  closes it
//   place.cleanup()     removes the place
import { assertSame, failure } from './contract.mjs';

const put = (key, value) => ({ op: 'put', key, value });
const del = (key) => ({ op: 'delete', key });
const sorted = (list) => [...list].sort();
const byKey = (records) => [...records].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
const states = async (store) => [...(await store.leaseStates())].sort((a, b) => (a.accountId < b.accountId ? -1 : 1));

async function withStore(place, body) {
  const store = await place.open();
  try {
    return await body(store);
  } finally {
    await place.close(store);
  }
}

const LONG = 60_000;

/** Throws unless `value` is an integer in [min, max]. */
function inRange(value, min, max, message) {
  if (!Number.isInteger(value) || value < min || value > max) throw new Error(`${message}: ${value} is not an integer in [${min}, ${max}]`);
}

export const leaseCases = [
  {
    name: 'a free lease is taken, another holder\'s live lease is not, and the holder\'s own is renewed',
    run: (place) => withStore(place, async (store) => {
      assertSame(sorted(await store.acquireLeases('A', ['x', 'y', 'x'], LONG)), ['x', 'y'], 'A takes two free leases');
      assertSame(await store.acquireLeases('B', ['y', 'z'], LONG), ['z'], 'B gets only the free one');
      assertSame(sorted(await store.acquireLeases('A', ['x', 'y', 'z'], LONG)), ['x', 'y'], 'A renews its own, not B\'s');
      assertSame(await store.acquireLeases('A', [], LONG), [], 'nothing asked, nothing held');
    }),
  },
  {
    name: 'an expired lease (store clock) goes to the next holder that asks; a renewed one does not expire',
    run: (place) => withStore(place, async (store) => {
      const ttl = place.ttlMs;
      await store.acquireLeases('A', ['x', 'y'], ttl);
      await place.advance(ttl / 2);
      assertSame(await store.acquireLeases('A', ['y'], ttl), ['y'], 'A renews y half-way');
      await place.advance(ttl / 2 + ttl / 5);
      assertSame(sorted(await store.acquireLeases('B', ['x', 'y'], ttl)), ['x'], 'x expired, y was renewed');
      assertSame(await store.acquireLeases('A', ['x'], ttl), [], 'A lost x for good');
    }),
  },
  {
    name: 'concurrent acquires of the same accounts: each lease has exactly one winner',
    run: (place) => withStore(place, async (store) => {
      const ids = Array.from({ length: 30 }, (_, i) => `acc-${i}`);
      const holders = ['A', 'B', 'C', 'D', 'E'];
      const results = await Promise.all(holders.map((h, i) =>
        Promise.resolve(store.acquireLeases(h, i % 2 === 0 ? ids : [...ids].reverse(), LONG))));
      const won = results.flat();
      assertSame(sorted(won), sorted(ids), 'every account won once, none twice');
      for (const [i, h] of holders.entries()) {
        assertSame(sorted(await store.acquireLeases(h, ids, LONG)), sorted(results[i]), `${h} holds what it won`);
      }
    }),
  },
  {
    name: 'releaseLeases frees only the caller\'s leases, at once; leave ends all of them and the presence',
    run: (place) => withStore(place, async (store) => {
      await store.acquireLeases('A', ['x', 'y', 'z'], LONG);
      await store.releaseLeases('B', ['x']);
      assertSame(await store.acquireLeases('B', ['x'], LONG), [], 'B cannot release A\'s lease');
      await store.releaseLeases('A', ['x']);
      assertSame(await store.acquireLeases('B', ['x'], LONG), ['x'], 'released: B takes it at once');
      assertSame(await store.heartbeat('A', LONG), 1, 'A alone is live');
      assertSame(await store.heartbeat('B', LONG), 2, 'A and B are live');
      await store.leave('A');
      assertSame(await store.heartbeat('B', LONG), 1, 'A left');
      assertSame(sorted(await store.acquireLeases('B', ['y', 'z'], LONG)), ['y', 'z'], 'A\'s leases ended with it');
    }),
  },
  {
    name: 'heartbeat counts the live holders; one that stopped beating drops out after its ttl',
    run: (place) => withStore(place, async (store) => {
      const ttl = place.ttlMs;
      assertSame(await store.heartbeat('A', ttl), 1, 'first');
      assertSame(await store.heartbeat('B', LONG), 2, 'second');
      assertSame(await store.heartbeat('C', LONG), 3, 'third');
      await place.advance(ttl + ttl / 5);
      assertSame(await store.heartbeat('B', LONG), 2, 'A expired');
    }),
  },
  {
    name: 'leaseStates lists every stored account with its live holder and how long until its lease expires (null when free or expired)',
    run: (place) => withStore(place, async (store) => {
      const ttl = place.ttlMs;
      await store.apply([put('account/a', { name: 'A' }), put('account/b c', { name: 'B' }), put('account/d', {}),
        put('policy/p', { accountId: 'a' }), put('device/S1', {}), put('settings', {})]);
      await store.acquireLeases('H1', ['a', 'no-records'], LONG);
      await store.acquireLeases('H2', ['b c'], ttl);
      const before = await states(store);
      assertSame(before.map(({ accountId, holder }) => ({ accountId, holder })), [
        { accountId: 'a', holder: 'H1' }, { accountId: 'b c', holder: 'H2' }, { accountId: 'd', holder: null },
      ], 'before expiry');
      // By the store's clock, which moved by the statements' time only (nothing for a fake clock).
      const [a, bc, d] = before.map((s) => s.expiresInMs);
      inRange(a, LONG - ttl / 2, LONG, 'H1\'s lease (ttl LONG)');
      inRange(bc, ttl / 2, ttl, 'H2\'s lease (ttl)');
      assertSame(d, null, 'a free lease');
      await place.advance(ttl / 4);
      const later = (await states(store))[1];
      // (A slow database may have let it expire meanwhile: then it says so.)
      if (later.holder === null) assertSame(later.expiresInMs, null, 'expired meanwhile');
      else inRange(later.expiresInMs, 1, bc - ttl / 4, 'a quarter ttl later');
      await place.advance(ttl + ttl / 5);
      const after = await states(store);
      assertSame(after.map((s) => s.holder), ['H1', null, null], 'H2\'s lease expired');
      assertSame(after[1].expiresInMs, null, 'an expired lease');
      await store.acquireLeases('H2', ['b c'], ttl);
      inRange((await states(store))[1].expiresInMs, ttl / 2, ttl, 'taken again');
    }),
  },
  {
    name: 'applyFenced writes the held accounts\' records and those of no account, and skips the others\'',
    run: (place) => withStore(place, async (store) => {
      await store.apply([put('policy/old-b', { accountId: 'b', adamId: '1' }), put('policy/old-a', { accountId: 'a' })]);
      await store.acquireLeases('A', ['a', 'a/b c'], LONG);
      await store.acquireLeases('B', ['b'], LONG);
      const result = await store.applyFenced('A', [
        put('account/a', { name: 'A' }),
        put('prov/a/1/STDQ/d/S1', { accountId: 'a' }),
        put('op/a%2Fb+c/7', { accountId: 'a/b c' }),        // form-encoded id: '/' → %2F, ' ' → '+'
        put('account/b', { name: 'B by A' }),
        put('hold/b/1/STDQ/d/S1', { accountId: 'b' }),
        put('asg/unleased/1', {}),
        put('policy/new-b', { accountId: 'b' }),
        del('policy/old-b'),                                // its stored value names b
        del('policy/old-a'),
        put('device/S1', { enrolled: true }),
        put('user/u1', {}),
        put('settings', { notify: true }),
      ]);
      assertSame(sorted(result.skipped), ['b', 'unleased'], 'skipped accounts');
      assertSame(byKey(await store.load()).map((r) => r.key), [
        'account/a', 'device/S1', 'op/a%2Fb+c/7', 'policy/old-b', 'prov/a/1/STDQ/d/S1', 'settings', 'user/u1',
      ], 'what was written');
    }),
  },
  {
    name: 'applyFenced skips the records of an account whose lease expired or was taken over',
    run: (place) => withStore(place, async (store) => {
      const ttl = place.ttlMs;
      await store.acquireLeases('A', ['x', 'y'], ttl);
      await store.acquireLeases('A', ['z'], LONG);
      await place.advance(ttl + ttl / 5);
      await store.acquireLeases('B', ['y'], LONG);
      const { skipped } = await store.applyFenced('A', [put('account/x', 1), put('account/y', 2), put('account/z', 3)]);
      assertSame(sorted(skipped), ['x', 'y'], 'x expired, y is B\'s');
      assertSame(await store.load(), [{ key: 'account/z', value: 3 }], 'only z was written');
      assertSame(await store.applyFenced('A', []), { skipped: [] }, 'an empty batch');
    }),
  },
  {
    name: 'applyFenced rejects a malformed batch and writes nothing; lease methods check their arguments',
    run: (place) => withStore(place, async (store) => {
      await store.acquireLeases('A', ['a'], LONG);
      const error = await failure(() => store.applyFenced('A', [put('account/a', 1), { op: 'upsert', key: 'k' }]), 'bad op');
      if (!(error instanceof TypeError)) throw new Error(`expected a TypeError, got ${error}`);
      assertSame(await store.load(), [], 'nothing written');
      await failure(() => store.acquireLeases('', ['a'], LONG), 'empty holder');
      await failure(() => store.acquireLeases('A', 'a', LONG), 'ids not an array');
      await failure(() => store.acquireLeases('A', ['a'], 0), 'ttl 0');
      await failure(() => store.heartbeat('A', -1), 'negative ttl');
      await failure(() => store.applyFenced(undefined, []), 'no holder');
    }),
  },
];

/** Registers every case as a node:test test (pass node:test's `test`). */
export function runLeaseContract(name, makePlace, { test, skip = false }) {
  for (const c of leaseCases) {
    test(`${name} lease store contract: ${c.name}`, { skip }, async () => {
      const place = await makePlace();
      try {
        await c.run(place);
      } finally {
        await place.cleanup();
      }
    });
  }
}
