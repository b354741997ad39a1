// The Store contract (host-shim/store.d.ts), one suite for every adapter. Plain ES module without node: imports,
// so that the same cases also run in a browser page (tests/browser/store-indexeddb.test.mjs).
//
// A case gets a fresh `place` (one empty file / database / table) from the adapter's test:
//   place.open(hooks?)      → a Store on that place (hooks: { protect, unprotect })
//   place.close(store)      closes a Store opened by place.open
//   place.durable           reopening sees what was written, and token hooks are supported
//   place.failWritesTo(key) (optional) makes the adapter's write of `key` fail inside its transaction
//   place.cleanup()         removes the place

/** Throws unless `actual` and `expected` are the same JSON (object key order ignored). */
export function assertSame(actual, expected, message) {
  const a = canonical(actual);
  const e = canonical(expected);
  if (a !== e) {
    const cut = (s) => (s.length > 400 ? `${s.slice(0, 400)}… (${s.length} chars)` : s);
    throw new Error(`${message}\n  actual:   ${cut(a)}\n  expected: ${cut(e)}`);
  }
}

function canonical(value) {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]])) : v);
}

/** Resolves to the error `run()` threw or rejected with; throws if it did not. */
export async function failure(run, message) {
  try {
    await run();
  } catch (error) {
    return error;
  }
  throw new Error(`expected a failure: ${message}`);
}

const byKey = (records) => [...records].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
const loaded = async (store) => byKey(await store.load());
const put = (key, value) => ({ op: 'put', key, value });
const del = (key) => ({ op: 'delete', key });
/** store.apply(ops) called now, as a promise (the contract allows a synchronous throw). */
const applying = (store, ops) => new Promise((resolve) => resolve(store.apply(ops)));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Reversible, recognisable token hooks that record what they were given. */
function recordingHooks({ delay = false } = {}) {
  const seen = { protect: [], unprotect: [] };
  return {
    seen,
    protect: async (plain) => {
      seen.protect.push(plain);
      if (delay) await sleep(Math.random() * 3);
      return `P(${[...plain].reverse().join('')})`;
    },
    unprotect: async (stored) => {
      seen.unprotect.push(stored);
      if (!stored.startsWith('P(') || !stored.endsWith(')')) throw new Error('unprotect: not protected');
      return [...stored.slice(2, -1)].reverse().join('');
    },
  };
}

/** Opens a store on `place`, runs `body(store)`, and closes it whatever happens. */
async function withStore(place, hooks, body) {
  const store = await place.open(hooks);
  try {
    return await body(store);
  } finally {
    await place.close(store);
  }
}

export const contractCases = [
  {
    name: 'put, delete and overwrite apply, and load returns every surviving record',
    run: (place) => withStore(place, undefined, async (store) => {
      assertSame(await loaded(store), [], 'a new store is empty');
      await store.apply([put('account/a1', { name: 'A' }), put('account/a2', { name: 'B' }), put('policy/p', { n: 1 })]);
      await store.apply([del('account/a1'), put('account/a2', { name: 'B2' }), del('never/stored')]);
      await store.apply([]);
      assertSame(await loaded(store), [
        { key: 'account/a2', value: { name: 'B2' } },
        { key: 'policy/p', value: { n: 1 } },
      ], 'after put, delete and overwrite');
    }),
  },
  {
    name: 'ops within one apply take effect in order (same key several times)',
    run: (place) => withStore(place, undefined, async (store) => {
      await store.apply([put('gone', 1), put('kept', 1)]);
      await store.apply([
        put('x', 1), del('x'), put('x', 2),          // put after delete: present
        put('y', 1), put('y', 2), del('y'),          // delete last: absent
        del('gone'), put('gone', 'back'), del('gone'),
        del('kept'), put('kept', 'again'),
        put('z', 'first'), put('z', 'second'),
      ]);
      assertSame(await loaded(store), [
        { key: 'kept', value: 'again' },
        { key: 'x', value: 2 },
        { key: 'z', value: 'second' },
      ], 'the last op on each key wins');
    }),
  },
  {
    name: 'a batch with an invalid op is rejected as a whole and changes nothing',
    run: (place) => withStore(place, undefined, async (store) => {
      const before = [put('keep', { v: 1 }), put('other', [1, 2])];
      await store.apply(before);
      const bad = [
        { op: 'upsert', key: 'x', value: 1 },
        { op: 'put', value: 1 },
        { op: 'put', key: 42, value: 1 },
        { op: 'put', key: 'no-value' },
        { op: 'put', key: 'bigint', value: { n: 10n } },
        null,
      ];
      for (const op of bad) {
        const error = await failure(() => store.apply([del('keep'), put('new', 1), put('other', 'changed'), op]), `op ${String(JSON.stringify(op, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)))}`);
        if (!(error instanceof TypeError)) throw new Error(`expected a TypeError, got ${error}`);
      }
      await failure(() => store.apply('put keep'), 'ops not an array');
      assertSame(await loaded(store), byKey(before.map(({ key, value }) => ({ key, value }))), 'nothing changed');
      await store.apply([put('after', true)]);
      assertSame((await loaded(store)).map((r) => r.key), ['after', 'keep', 'other'], 'the store still works');
    }),
  },
  {
    name: 'a write that fails inside the transaction rolls the whole batch back',
    needs: 'failWritesTo',
    run: (place) => withStore(place, undefined, async (store) => {
      await store.apply([put('a', 'old'), put('b', 'old')]);
      await place.failWritesTo('boom');
      await failure(() => store.apply([put('a', 'new'), del('b'), put('c', 'new'), put('boom', 1), put('d', 'new')]),
        'the write of "boom" fails');
      assertSame(await loaded(store), [{ key: 'a', value: 'old' }, { key: 'b', value: 'old' }], 'nothing of the batch is kept');
      await store.apply([put('a', 'newer'), del('b')]);
      assertSame(await loaded(store), [{ key: 'a', value: 'newer' }], 'later batches apply');
    }),
  },
  {
    name: 'values round-trip: nested JSON, unicode, every JSON type, odd keys',
    run: (place) => withStore(place, undefined, async (store) => {
      const records = [
        { key: 'nested', value: { a: { b: { c: [1, [2, [3, { d: null }]]] } }, empty: {}, list: [] } },
        { key: 'unicode', value: { s: 'Zürich — 東京 — 🚀 — \u0000 nul — "quotes" \\ back\nslash\t' } },
        { key: 'numbers', value: [0, -1, 1.5, 1e21, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 1e-7] },
        { key: 'null', value: null },
        { key: 'string', value: 'plain' },
        { key: 'bools', value: [true, false] },
        { key: 'prov/acc%2F1/123/STDQ/d/SERIAL%20%C3%A9', value: { percent: true } },
        { key: 'user/🚀 ü', value: { unicodeKey: true } },
        { key: '', value: 'empty key' },
      ];
      await store.apply(records.map(({ key, value }) => put(key, value)));
      assertSame(await loaded(store), byKey(records), 'what load returns');
    }),
  },
  {
    name: 'large batches: 10,000 puts in one apply, then 10,000 mixed ops',
    run: (place) => withStore(place, undefined, async (store) => {
      const n = 10_000;
      const key = (i) => `prov/acc/${String(i).padStart(5, '0')}/STDQ/d/S${i}`;
      await store.apply(Array.from({ length: n }, (_, i) => put(key(i), { i, serial: `S${i}` })));
      assertSame((await store.load()).length, n, 'record count after 10k puts');
      await store.apply(Array.from({ length: n }, (_, i) => (i % 2 === 0 ? del(key(i)) : put(key(i), { i, v: 2 }))));
      const records = await loaded(store);
      assertSame(records.length, n / 2, 'record count after deleting half');
      assertSame(records[0], { key: key(1), value: { i: 1, v: 2 } }, 'first record');
      assertSame(records.at(-1), { key: key(n - 1), value: { i: n - 1, v: 2 } }, 'last record');
    }),
  },
  {
    name: 'concurrent applies commit in call order, and a load issued after them sees them all',
    run: async (place) => {
      const hooks = place.durable ? recordingHooks({ delay: true }) : undefined;
      await withStore(place, hooks, async (store) => {
        const calls = [];
        for (let i = 0; i < 40; i += 1) {
          calls.push(applying(store, [
            put('counter', i),
            put('account/x', { accountId: 'x', token: `token-${i}` }),
            put(`log/${i}`, i),
            ...(i > 0 ? [del(`log/${i - 1}`)] : []),
          ]));
        }
        calls.push(applying(store, [put('bad', 1), { op: 'nope', key: 'k' }]).then(
          () => { throw new Error('the invalid batch was applied'); }, () => 'rejected'));
        calls.push(applying(store, [put('counter', 'last')]));
        const seen = Promise.resolve(store.load());
        await Promise.all(calls);
        const expected = [
          { key: 'account/x', value: { accountId: 'x', token: 'token-39' } },
          { key: 'counter', value: 'last' },
          { key: 'log/39', value: 39 },
        ];
        assertSame(byKey(await seen), expected, 'a load called after the applies');
        assertSame(await loaded(store), expected, 'a later load');
      });
    },
  },
  {
    name: 'reopening the same place sees the data',
    needs: 'durable',
    run: async (place) => {
      await withStore(place, undefined, (store) => store.apply([put('account/a', { name: 'A', token: 'plain' }), put('settings', { x: 1 })]));
      await withStore(place, undefined, (store) => store.apply([del('settings'), put('device/S1', { serialNumber: 'S1' })]));
      await withStore(place, undefined, async (store) => {
        assertSame(await loaded(store), [
          { key: 'account/a', value: { name: 'A', token: 'plain' } },
          { key: 'device/S1', value: { serialNumber: 'S1' } },
        ], 'after two reopenings');
      });
    },
  },
  {
    name: 'protect and unprotect apply to the token of account records only, and round-trip',
    needs: 'durable',
    run: async (place) => {
      const hooks = recordingHooks();
      const records = [
        { key: 'account/a', value: { accountId: 'a', name: 'A', token: 'sToken-A ü 🚀', durable: { token: 'nested' } } },
        { key: 'account/b', value: { accountId: 'b', name: 'no token here' } },
        { key: 'accounts/c', value: { token: 'not an account key' } },
        { key: 'policy/p', value: { token: 'not an account record' } },
        { key: 'op/a/1', value: { accountId: 'a', reason: 'token' } },
      ];
      await withStore(place, hooks, (store) => store.apply(records.map(({ key, value }) => put(key, value))));
      assertSame(hooks.seen.protect, ['sToken-A ü 🚀'], 'protect saw the account token only');

      // At rest (opened without hooks: identity): only account/a's token is transformed.
      await withStore(place, undefined, async (store) => {
        const raw = await loaded(store);
        assertSame(raw[0], { key: 'account/a', value: { ...records[0].value, token: 'P(🚀 ü A-nekoTs)' } }, 'the stored account');
        assertSame(raw.slice(1), byKey(records.slice(1)), 'other records are stored as given');
      });

      await withStore(place, hooks, async (store) => {
        assertSame(await loaded(store), byKey(records), 'load with the hooks gives the plaintext back');
      });
      assertSame(hooks.seen.unprotect, ['P(🚀 ü A-nekoTs)'], 'unprotect saw the stored token only');
    },
  },
  {
    name: 'a failing protect hook rejects the batch and changes nothing',
    needs: 'durable',
    run: async (place) => {
      let fail = false;
      const hooks = {
        protect: (plain) => { if (fail) throw new Error('hook failed'); return `p:${plain}`; },
        unprotect: (stored) => stored.slice(2),
      };
      await withStore(place, hooks, async (store) => {
        await store.apply([put('account/a', { token: 't1' }), put('settings', 1)]);
        fail = true;
        const error = await failure(() => store.apply([put('settings', 2), put('account/a', { token: 't2' })]), 'protect throws');
        if (!/hook failed/.test(error.message) || /t2/.test(error.message)) throw new Error(`unexpected error: ${error.message}`);
        fail = false;
        assertSame(await loaded(store), [{ key: 'account/a', value: { token: 't1' } }, { key: 'settings', value: 1 }], 'unchanged');
      });
    },
  },
  {
    name: 'loadAccount returns the account\'s records and the records of no account, nothing of other accounts',
    run: (place) => withStore(place, undefined, async (store) => {
      await store.apply(ACCOUNT_FIXTURE.map(({ key, value }) => put(key, value)));
      for (const [accountId, expected] of Object.entries(ACCOUNT_EXPECTED)) {
        const keys = (await store.loadAccount(accountId)).map((r) => r.key).sort();
        assertSame(keys, [...expected, ...GLOBAL_KEYS].sort(), `loadAccount(${JSON.stringify(accountId)})`);
      }
      assertSame((await store.loadAccount('nobody')).map((r) => r.key).sort(), [...GLOBAL_KEYS].sort(),
        'an unknown account: the records of no account alone');
      const values = byKey(await store.loadAccount('a'));
      assertSame(values, byKey(ACCOUNT_FIXTURE.filter((r) => ACCOUNT_EXPECTED.a.includes(r.key) || GLOBAL_KEYS.includes(r.key))),
        'the records, values included');
    }),
  },
  {
    name: 'loadAccount with { shared: false } returns the account\'s own records alone; { shared: true } is the default; other options are refused',
    run: (place) => withStore(place, undefined, async (store) => {
      await store.apply(ACCOUNT_FIXTURE.map(({ key, value }) => put(key, value)));
      for (const [accountId, expected] of Object.entries(ACCOUNT_EXPECTED)) {
        const keys = async (options) => (await store.loadAccount(accountId, options)).map((r) => r.key).sort();
        assertSame(await keys({ shared: false }), [...expected].sort(), `loadAccount(${JSON.stringify(accountId)}, { shared: false })`);
        assertSame(await keys({ shared: true }), [...expected, ...GLOBAL_KEYS].sort(), `loadAccount(${JSON.stringify(accountId)}, { shared: true })`);
        assertSame(await keys({}), await keys(undefined), 'no shared option: the default');
      }
      assertSame(await store.loadAccount('nobody', { shared: false }), [], 'an unknown account: nothing');
      assertSame(byKey(await store.loadAccount('a', { shared: false })), byKey(ACCOUNT_FIXTURE.filter((r) => ACCOUNT_EXPECTED.a.includes(r.key))),
        'the records, values included');
      for (const options of [null, false, 'shared', [], { shared: 'no' }, { shared: 0 }, { share: false }]) {
        const error = await failure(() => store.loadAccount('a', options), `options ${JSON.stringify(options)}`);
        if (!(error instanceof TypeError)) throw new Error(`options ${JSON.stringify(options)}: expected a TypeError, got ${error}`);
      }
      const error = await failure(() => store.loadAccount(7, { shared: false }), 'an account id that is not a string');
      if (!(error instanceof TypeError)) throw new Error(`expected a TypeError, got ${error}`);
    }),
  },
  {
    name: 'loadAccount sees every apply issued before it, and only them',
    run: (place) => withStore(place, undefined, async (store) => {
      const calls = [];
      for (let i = 0; i < 20; i += 1) {
        calls.push(applying(store, [put('account/x', { accountId: 'x', n: i }), put(`prov/x/${i}/STDQ/d/S1`, { i }),
          ...(i > 0 ? [del(`prov/x/${i - 1}/STDQ/d/S1`)] : []), put(`policy/p${i}`, { accountId: i % 2 === 0 ? 'x' : 'y' })]));
      }
      const seen = Promise.resolve(store.loadAccount('x'));
      calls.push(applying(store, [put('prov/x/late/STDQ/d/S1', { late: true })]));
      await Promise.all(calls);
      const keys = (await seen).map((r) => r.key).sort();
      assertSame(keys, ['account/x', 'policy/p0', 'policy/p10', 'policy/p12', 'policy/p14', 'policy/p16', 'policy/p18', 'policy/p2',
        'policy/p4', 'policy/p6', 'policy/p8', 'prov/x/19/STDQ/d/S1'], 'what loadAccount saw');
      assertSame((await store.loadAccount('x')).find((r) => r.key === 'account/x').value, { accountId: 'x', n: 19 }, 'the last write');
    }),
  },
  {
    name: 'loadAccount of one account among many: its records and the shared ones, whatever the others hold',
    run: (place) => withStore(place, undefined, async (store) => {
      const accounts = 50;
      const ops = [];
      for (let a = 0; a < accounts; a += 1) {
        ops.push(put(`account/acc${a}`, { accountId: `acc${a}` }), put(`policy/pol${a}`, { accountId: `acc${a}` }));
        for (let i = 0; i < 100; i += 1) ops.push(put(`asg/acc${a}/d/S${i}`, { i }));
      }
      for (let i = 0; i < 200; i += 1) ops.push(put(`device/S${i}`, { serialNumber: `S${i}` }));
      await store.apply(ops);
      const records = await store.loadAccount('acc7');
      assertSame(records.length, 1 + 1 + 100 + 200, 'account, policy, its 100 assignments, 200 devices');
      assertSame(records.filter((r) => r.key.startsWith('asg/')).every((r) => r.key.startsWith('asg/acc7/')), true, 'only acc7\'s');
    }),
  },
  {
    name: 'loadAccount unprotects the account\'s token as load does',
    needs: 'durable',
    run: async (place) => {
      const hooks = recordingHooks();
      await withStore(place, hooks, (store) => store.apply([put('account/a', { accountId: 'a', token: 'sToken-A' }),
        put('account/b', { accountId: 'b', token: 'sToken-B' })]));
      await withStore(place, hooks, async (store) => {
        assertSame(await store.loadAccount('a'), [{ key: 'account/a', value: { accountId: 'a', token: 'sToken-A' } }], 'plaintext back');
      });
      assertSame(hooks.seen.unprotect, ['P(A-nekoTs)'], 'only the loaded account\'s token was unprotected');
    },
  },
  {
    name: 'load and loadAccount with { json: true } give the same records, each value parsed or as its JSON text; other options are refused',
    run: (place) => withStore(place, undefined, async (store) => {
      await store.apply(ACCOUNT_FIXTURE.map(({ key, value }) => put(key, value)));
      const asParsed = (records, what) => byKey(records.map((record) => {
        const fields = Object.keys(record).sort().join();
        if (fields === 'key,value') return record;
        if (fields !== 'json,key' || typeof record.json !== 'string') throw new Error(`${what}: ${JSON.stringify(record)} is neither { key, value } nor { key, json }`);
        return { key: record.key, value: JSON.parse(record.json) };
      }));
      assertSame(asParsed(await store.load({ json: true }), 'load'), await loaded(store), 'load({ json: true })');
      assertSame(await store.load({ json: false }), await store.load(), 'load({ json: false }) is load()');
      for (const accountId of [...Object.keys(ACCOUNT_EXPECTED), 'nobody']) {
        for (const shared of [true, false]) {
          const what = `loadAccount(${JSON.stringify(accountId)}, { shared: ${shared}, json: true })`;
          assertSame(asParsed(await store.loadAccount(accountId, { shared, json: true }), what),
            byKey(await store.loadAccount(accountId, { shared })), what);
        }
      }
      for (const options of [null, false, 'json', [], { json: 'yes' }, { json: 1 }, { shared: true }]) {
        const error = await failure(() => store.load(options), `load options ${JSON.stringify(options)}`);
        if (!(error instanceof TypeError)) throw new Error(`load options ${JSON.stringify(options)}: expected a TypeError, got ${error}`);
      }
      const error = await failure(() => store.loadAccount('a', { json: 'yes' }), 'loadAccount json not a boolean');
      if (!(error instanceof TypeError)) throw new Error(`expected a TypeError, got ${error}`);
    }),
  },
  {
    name: 'with { json: true } an account record\'s token is unprotected as without it',
    needs: 'durable',
    run: async (place) => {
      const hooks = recordingHooks();
      await withStore(place, hooks, (store) => store.apply([put('account/a', { accountId: 'a', token: 'sToken-A' }), put('policy/p', { accountId: 'a' })]));
      await withStore(place, hooks, async (store) => {
        for (const records of [await store.load({ json: true }), await store.loadAccount('a', { json: true })]) {
          const account = records.find((r) => r.key === 'account/a');
          const token = account.value?.token ?? JSON.parse(account.json).token;
          assertSame(token, 'sToken-A', 'plaintext back');
        }
      });
    },
  },
];

/**
 * Records of accounts whose ids encode alike, contain each other or hold the characters keys are built with, as
 * the engine writes them (`account/<id>`, `<prefix><form-urlencoded id>/…`, policies naming their account in the
 * value), and records of no account.
 */
const ACCOUNT_FIXTURE = [
  ...['a', 'A', 'ab', 'a b', 'a/1', 'a%2F1'].map((id) => ({ key: `account/${id}`, value: { accountId: id, name: id } })),
  { key: 'policy/p-a', value: { policyId: 'p-a', accountId: 'a' } },
  { key: 'policy/p-a2', value: { policyId: 'p-a2', accountId: 'a', targets: ['S1'] } },
  { key: 'policy/p-A', value: { policyId: 'p-A', accountId: 'A' } },
  { key: 'policy/p-a b', value: { policyId: 'p-a b', accountId: 'a b' } },
  { key: 'policy/p-a/1', value: { policyId: 'p-a/1', accountId: 'a/1' } },
  { key: 'scope/a/p-a/S1', value: {} },
  { key: 'scope/A/p-A/S1', value: {} },
  { key: 'prov/a/408/STDQ/d/S1', value: {} },
  { key: 'prov/ab/408/STDQ/d/S1', value: {} },
  { key: 'prov/a+b/408/STDQ/d/S1', value: {} },
  { key: 'prov/a%2F1/408/STDQ/d/S1', value: {} },
  { key: 'prov/a%252F1/408/STDQ/d/S1', value: {} },
  { key: 'hold/a/408/STDQ/u/u1', value: {} },
  { key: 'await/a/408/PLUS/d/S2', value: {} },
  { key: 'op/a/7', value: {} },
  { key: 'op/A/7', value: {} },
  { key: 'asg/a/d/S1', value: {} },
  { key: 'asg/a+b/d/S1', value: {} },
  { key: 'asset/a/408/STDQ', value: {} },
  { key: 'vppuser/a/u1', value: {} },
  { key: 'userhold/a/u%2F1', value: {} },
  { key: 'userhold/a0/u1', value: {} },
  { key: 'device/S1', value: { serialNumber: 'S1' } },
  { key: 'device/S%2F2', value: { serialNumber: 'S/2' } },
  { key: 'user/u1', value: { clientUserId: 'u1' } },
  { key: 'settings', value: { licenseRemovalNotification: true } },
  // Near misses: no account's, nothing shared.
  { key: 'accounts/a', value: {} },
  { key: 'devices/S1', value: {} },
  { key: 'settings/x', value: {} },
  { key: 'users', value: {} },
];
const GLOBAL_KEYS = ['device/S1', 'device/S%2F2', 'user/u1', 'settings'];
const ACCOUNT_EXPECTED = {
  a: ['account/a', 'policy/p-a', 'policy/p-a2', 'scope/a/p-a/S1', 'prov/a/408/STDQ/d/S1', 'hold/a/408/STDQ/u/u1',
    'await/a/408/PLUS/d/S2', 'op/a/7', 'asg/a/d/S1', 'asset/a/408/STDQ', 'vppuser/a/u1', 'userhold/a/u%2F1'],
  A: ['account/A', 'policy/p-A', 'scope/A/p-A/S1', 'op/A/7'],
  ab: ['account/ab', 'prov/ab/408/STDQ/d/S1'],
  'a b': ['account/a b', 'policy/p-a b', 'prov/a+b/408/STDQ/d/S1', 'asg/a+b/d/S1'],
  'a/1': ['account/a/1', 'policy/p-a/1', 'prov/a%2F1/408/STDQ/d/S1'],
  'a%2F1': ['account/a%2F1', 'prov/a%252F1/408/STDQ/d/S1'],
};

/** Whether `place` can run case `c`. */
export function supports(place, c) {
  if (c.needs === 'durable') return place.durable === true;
  if (c.needs === 'failWritesTo') return Boolean(place.failWritesTo);
  return true;
}

/** Runs one case on a fresh place; `makePlace()` → place. */
export async function runCase(c, makePlace) {
  const place = await makePlace();
  try {
    await c.run(place);
  } finally {
    await place.cleanup();
  }
}

/**
 * Registers every case as a node:test test (pass node:test's `test`; `capabilities`: `{ durable, failWritesTo }` as
 * the adapter's places have them). A case the adapter cannot run (`needs`) is reported as skipped, with why.
 */
export function runStoreContract(name, makePlace, { test, capabilities, skip = false }) {
  for (const c of contractCases) {
    const unsupported = !supports(capabilities, c) && `${name} has no ${c.needs === 'durable' ? 'durable storage (nothing is at rest)' : 'failure injection'}`;
    test(`${name} store contract: ${c.name}`, { skip: skip || unsupported }, () => runCase(c, makePlace));
  }
}
