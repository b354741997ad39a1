// The JS boundary of the built engine: garbage in any entry point must throw an Error with a message and a
// string code — never trap (WebAssembly.RuntimeError: unreachable), never be accepted. Run scripts/build-pkg.sh first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine, accountKeyRanges, accountOfRecord, decodeToken } from '../../pkg/vpp_license_engine.node.mjs';

const NOW = Date.parse('2026-11-23T09:00:00Z');
const MDM = { id: 'mdm-1', name: 'Test MDM', metadata: '1.0' };
const CONFIG = { mdmInfo: MDM };
const base64 = (text) => Buffer.from(text).toString('base64');
const TOKEN = base64(JSON.stringify({ token: 'c2VjcmV0', expDate: '2030-11-08T22:33:22+0000', orgName: 'ORG1' }));
const NESTED_JUNK = { a: [1, { b: [null, { c: 'x', d: [[[]]] }] }], e: { f: { g: NaN } } };

/** Values that are not valid for any parameter of the API. */
const JUNK = [undefined, null, 0, -1, NaN, Infinity, 2 ** 64, 1e300, '', 'junk', true, [], [1, 'two'], {}, NESTED_JUNK];
/** Values that are not a valid `now`. */
const BAD_NOW = [undefined, null, NaN, Infinity, -Infinity, 1e300, 'now', '2026-11-23', {}, []];

function assertRejected(call, label) {
  let thrown;
  try {
    call();
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown !== undefined, `${label}: accepted silently`);
  assert.ok(!(thrown instanceof WebAssembly.RuntimeError), `${label}: wasm trap ${thrown}`);
  assert.ok(thrown instanceof Error, `${label}: threw a non-Error ${String(thrown)}`);
  assert.equal(typeof thrown.message, 'string', `${label}: no message`);
  assert.notEqual(thrown.message, '', `${label}: empty message`);
  assert.equal(typeof thrown.code, 'string', `${label}: no string .code (${thrown.message})`);
  assert.notEqual(thrown.code, '', `${label}: empty .code`);
}

const show = (value) => {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
};

/** Keeps an engine usable after every rejection: a trap or a half-applied input would break these calls. */
function assertStillWorks(engine) {
  assert.equal(typeof engine.pollOutput(NOW).type, 'string');
  assert.equal(typeof engine.stats().requestsIssued, 'number');
  assert.ok(Array.isArray(engine.accounts()));
}

function drain(engine, now = NOW) {
  const outputs = [];
  for (;;) {
    const output = engine.pollOutput(now);
    outputs.push(output);
    if (output.type === 'timeout') return outputs;
  }
}

test('valid calls are accepted (the rejections below are about the input, not the engine)', () => {
  const engine = new Engine(CONFIG, NOW);
  engine.handleInput({ type: 'addAccount', accountId: 'a1', name: 'School', token: TOKEN }, NOW);
  assert.ok(drain(engine).some((o) => o.type === 'request'));
  assert.equal(engine.accounts().length, 1);
  assert.deepEqual(engine.assignments('a1'), { total: 0, offset: 0, items: [] });
  assert.deepEqual(decodeToken(TOKEN), { orgName: 'ORG1', expiresAt: Date.parse('2030-11-08T22:33:22Z') });
  engine.free();
});

test('new Engine rejects a malformed config or now', () => {
  const configs = [
    ...JUNK,
    { mdmInfo: null },
    { mdmInfo: { id: 'x', name: 'y' } },
    { mdmInfo: { id: 1, name: 'y', metadata: 'z' } },
    { mdmInfo: NESTED_JUNK },
    { mdmInfo: Object.values(MDM) },
    { ...CONFIG, serviceConfigUrl: 42 },
    { ...CONFIG, seed: 'seven' },
    { ...CONFIG, seed: NaN },
    { ...CONFIG, deltaSyncIntervalMs: -5 },
    { ...CONFIG, fullRefreshIntervalMs: 'daily' },
    { ...CONFIG, maxPagesInFlight: 1e300 },
    { ...CONFIG, backoffBaseMs: null },
  ];
  for (const config of configs) assertRejected(() => new Engine(config, NOW), `new Engine(${show(config)})`);
  for (const now of BAD_NOW) assertRejected(() => new Engine(CONFIG, now), `new Engine(config, ${show(now)})`);
});

test('handleInput rejects malformed inputs and leaves the engine usable', () => {
  const engine = new Engine(CONFIG, NOW);
  const policy = { policyId: 'p1', name: 'P', accountId: 'a1', adamId: '408709785', pricingParam: 'STDQ', licenseType: 'device' };
  const response = { type: 'response', id: 1, status: 200, headers: {}, body: '{}' };
  const inputs = [
    ...JUNK,
    { type: 'nope' },
    { type: 42 },
    { type: 'addAccount' },
    { type: 'addAccount', accountId: 'a1', name: 'n' },
    { type: 'addAccount', accountId: 1, name: 'n', token: TOKEN },
    { type: 'addAccount', accountId: 'a1', name: NESTED_JUNK, token: TOKEN },
    { type: 'addAccount', accountId: 'a1', name: 'n', token: 'not a token !!' },
    { type: 'addAccount', accountId: 'a1', name: 'n', token: base64('{"token":"t"}') },
    { type: 'addAccount', accountId: 'a1', name: 'n', token: base64('{"token":"t","expDate":"soon","orgName":"O"}') },
    { type: 'editAccount', accountId: null },
    { type: 'deleteAccount' },
    { type: 'refresh', accountId: ['a1'] },
    { type: 'setPolicy' },
    { type: 'setPolicy', policy: null },
    { type: 'setPolicy', policy: { ...policy, licenseType: 'both' } },
    { type: 'setPolicy', policy: { ...policy, pricingParam: 'FREE' } },
    { type: 'setPolicy', policy: { ...policy, adamId: NESTED_JUNK } },
    { type: 'setPolicy', policy: Object.values(policy) },
    // Target lists are read straight into strings (no JSON tree): each element must still be a string.
    { type: 'setPolicy', policy: { ...policy, targets: [1] } },
    { type: 'setPolicy', policy: { ...policy, targets: ['S1', null] } },
    { type: 'setPolicy', policy: { ...policy, targets: ['S1', NESTED_JUNK] } },
    { type: 'setPolicy', policy: { ...policy, targets: 'S1' } },
    { type: 'setPolicy', policy: { ...policy, targets: { 0: 'S1' } } },
    { type: 'setPolicy', policy: { ...policy, targets: ['S\uD800'] } },
    { type: 'updatePolicyTargets', policyId: 'p1', add: [7] },
    { type: 'updatePolicyTargets', policyId: 'p1', remove: ['S1', [1]] },
    { type: 'updatePolicyTargets', policyId: 'p1', add: 'S1' },
    { type: 'updatePolicyTargets', add: ['S1'] },
    { type: 'removePolicy', policyId: 7 },
    { ...response, id: 'one' },
    { ...response, id: NaN },
    { ...response, id: -1 },
    { ...response, id: 2 ** 64 },
    { ...response, id: 1.5 },
    { ...response, status: 'OK' },
    { ...response, status: 1e10 },
    { ...response, headers: null },
    { ...response, headers: [['content-type', 'application/json']] },
    { ...response, headers: { 'retry-after': 120 } },
    { ...response, body: null },
    { ...response, body: { ok: true } },
    { type: 'response', id: 1 },
    { type: 'networkError', id: 1 },
    { type: 'networkError', id: 'x', message: 'down' },
  ];
  for (const input of inputs) assertRejected(() => engine.handleInput(input, NOW), `handleInput(${show(input)})`);
  for (const now of BAD_NOW) assertRejected(() => engine.handleInput({ type: 'timeout' }, now), `handleInput(timeout, ${show(now)})`);
  assertStillWorks(engine);
  assert.deepEqual(engine.accounts(), [], 'a rejected addAccount left an account behind');
  engine.free();
});

test('pollOutput rejects a malformed now', () => {
  const engine = new Engine(CONFIG, NOW);
  for (const now of BAD_NOW) assertRejected(() => engine.pollOutput(now), `pollOutput(${show(now)})`);
  assertStillWorks(engine);
  engine.free();
});

test('assignments rejects a malformed account id or query', () => {
  const engine = new Engine(CONFIG, NOW);
  engine.handleInput({ type: 'addAccount', accountId: 'a1', name: 'School', token: TOKEN }, NOW);
  for (const accountId of [undefined, null, 42, NaN, {}, [], NESTED_JUNK]) {
    assertRejected(() => engine.assignments(accountId), `assignments(${show(accountId)})`);
  }
  const queries = [
    'all',
    42,
    [],
    ['408709785'],
    { limit: 'all' },
    { limit: -1 },
    { limit: NaN },
    { offset: -5 },
    { offset: 'next' },
    { adamId: 408709785 },
    { serialNumber: ['C02'] },
    { clientUserId: NESTED_JUNK },
  ];
  for (const query of queries) assertRejected(() => engine.assignments('a1', query), `assignments('a1', ${show(query)})`);
  assertStillWorks(engine);
  engine.free();
});

test('decodeToken rejects anything but a well-formed sToken', () => {
  const tokens = [
    ...JUNK,
    'not base64 !!',
    base64('not json'),
    base64('[]'),
    base64('{"token":"t","orgName":"O"}'),
    base64('{"token":"t","expDate":"next year","orgName":"O"}'),
    base64('{"token":"t","expDate":"2030-11-08T22:33:22+0000","orgName":7}'),
  ];
  for (const token of tokens) assertRejected(() => decodeToken(token), `decodeToken(${show(token)})`);
});

test('Engine.restore rejects malformed records, config or now', () => {
  // Real records, written by an engine that added an account, so the keys are ones restore knows.
  const source = new Engine(CONFIG, NOW);
  source.handleInput({ type: 'addAccount', accountId: 'a1', name: 'School', token: TOKEN }, NOW);
  const records = [];
  for (const output of drain(source)) {
    if (output.type === 'persist') {
      for (const op of output.ops) if (op.op === 'put') records.push({ key: op.key, value: op.value });
    }
  }
  source.free();
  assert.ok(records.length > 0, 'adding an account persisted nothing');
  Engine.restore(CONFIG, records, NOW).free();

  const recordLists = [
    ...JUNK.filter((v) => !(Array.isArray(v) && v.length === 0)),
    [null],
    [42],
    [{ key: 1, value: {} }],
    [{ value: {} }],
    records.map((r) => [r.key, r.value]),
    // Values as JSON text ({ key, json }): text that is not JSON, not a string, or beside a value.
    ...records.map((_, i) => records.map((r, j) => (i === j ? { key: r.key, json: '{"accountId":' } : r))),
    ...records.map((_, i) => records.map((r, j) => (i === j ? { key: r.key, json: JSON.stringify(NESTED_JUNK) } : r))),
    ...records.map((_, i) => records.map((r, j) => (i === j ? { key: r.key, json: r.value } : r))),
    ...records.map((_, i) => records.map((r, j) => (i === j ? { key: r.key, json: JSON.stringify(r.value), value: r.value } : r))),
    [{ key: 7, json: '{}' }],
    // Each real record in turn with a value no record kind can hold.
    ...records.map((_, i) => records.map((r, j) => (i === j ? { key: r.key, value: NESTED_JUNK } : r))),
    ...records.map((_, i) => records.map((r, j) => (i === j ? { key: r.key, value: [1, 'two'] } : r))),
  ];
  for (const list of recordLists) assertRejected(() => Engine.restore(CONFIG, list, NOW), `Engine.restore(config, ${show(list)})`);
  for (const config of [null, {}, { mdmInfo: null }]) {
    assertRejected(() => Engine.restore(config, records, NOW), `Engine.restore(${show(config)}, records)`);
  }
  for (const now of BAD_NOW) assertRejected(() => Engine.restore(CONFIG, records, now), `Engine.restore(config, records, ${show(now)})`);
});

test('records given as JSON text ({ key, json }) restore the same engine as the parsed ones, and may be mixed with them', () => {
  const source = new Engine(CONFIG, NOW);
  source.handleInput({ type: 'addAccount', accountId: 'a1', name: 'School', token: TOKEN }, NOW);
  const policy = { policyId: 'p1', name: 'P', accountId: 'a1', adamId: '408709785', pricingParam: 'STDQ', licenseType: 'device' };
  const targets = Array.from({ length: 5_000 }, (_, i) => `S${i}`);
  source.handleInput({ type: 'setPolicy', policy: { ...policy, targets } }, NOW);
  source.handleInput({ type: 'updatePolicyTargets', policyId: 'p1', add: ['T1', 'T2'], remove: ['S0'] }, NOW);
  const store = new Map();
  for (const output of drain(source)) {
    if (output.type === 'persist') {
      for (const op of output.ops) if (op.op === 'put') store.set(op.key, op.value); else store.delete(op.key);
    }
  }
  source.free();
  const records = [...store].map(([key, value]) => ({ key, value }));
  const stored = (engine) => {
    const written = new Map();
    for (const output of drain(engine)) {
      if (output.type === 'persist') for (const op of output.ops) written.set(op.key, op.value);
    }
    return [engine.accounts(), [...written].sort()];
  };
  const scopeTargets = records.filter((r) => r.key.startsWith('targets/')).flatMap((r) => r.value.targets).sort();
  assert.deepEqual(scopeTargets, [...targets.slice(1), 'T1', 'T2'].sort(), 'the target lists were read whole');
  const parsed = Engine.restore(CONFIG, records, NOW);
  const text = Engine.restore(CONFIG, records.map(({ key, value }) => ({ key, json: JSON.stringify(value) })), NOW);
  const mixed = Engine.restore(CONFIG, records.map(({ key, value }, i) => (i % 2 ? { key, json: JSON.stringify(value) } : { key, value })), NOW);
  const expected = stored(parsed);
  assert.deepEqual(stored(text), expected);
  assert.deepEqual(stored(mixed), expected);
  for (const engine of [parsed, text, mixed]) engine.free();
});

test('an id holding a lone surrogate is refused (as U+FFFD two distinct ids would collide), and a NUL too', () => {
  const engine = new Engine(CONFIG, NOW);
  for (const accountId of ['a\uD800', 'a\uDC00b', 'a\u0000b']) {
    assertRejected(() => engine.handleInput({ type: 'addAccount', accountId, name: 'A', token: TOKEN }, NOW), show(accountId));
    try {
      engine.handleInput({ type: 'addAccount', accountId, name: 'A', token: TOKEN }, NOW);
    } catch (error) {
      assert.equal(error.code, 'INVALID_INPUT', error.message);
    }
  }
  assert.deepEqual(engine.accounts(), []);
  // A valid pair of surrogates (an emoji) is fine.
  engine.handleInput({ type: 'addAccount', accountId: 'a\uD83D\uDE00', name: 'A', token: TOKEN }, NOW);
  assert.equal(engine.accounts()[0].accountId, 'a😀');
  engine.free();
});

test('accountOfRecord names the account of every kind of record; accountKeyRanges says where an account\'s records are', () => {
  assert.equal(accountOfRecord('account/a/1'), 'a/1', 'account ids are kept as they are');
  assert.equal(accountOfRecord('prov/a%2F1/d/S1'), 'a/1', 'and encoded under the other prefixes');
  assert.equal(accountOfRecord('prov/a%2F1/408/STDQ/d/S1'), 'a/1', 'a provenance record per pair, as earlier builds wrote them');
  assert.equal(accountOfRecord('targets/a+b/p/0'), 'a b');
  assert.equal(accountOfRecord('scope/a+b/p/S1'), 'a b', 'and the per-target scope records of earlier engines');
  assert.equal(accountOfRecord('device/S1'), null);
  assert.equal(accountOfRecord('settings', {}), null);
  assert.equal(accountOfRecord('policy/p1'), undefined, 'a policy names its account in its value');
  assert.equal(accountOfRecord('policy/p1', { accountId: 'a1', name: 'P' }), 'a1');
  assert.equal(accountOfRecord('policy/p1', null), null, 'nothing stored');
  assert.deepEqual(accountKeyRanges('a b'), {
    keys: ['account/a b', 'settings'],
    prefixes: ['targets/a+b/', 'scope/a+b/', 'prov/a+b/', 'hold/a+b/', 'await/a+b/', 'op/a+b/', 'asg/a+b/', 'asset/a+b/', 'vppuser/a+b/', 'userhold/a+b/',
      'device/', 'user/'],
    byValue: [{ prefix: 'policy/', field: 'accountId' }],
  });
  assert.deepEqual(accountKeyRanges('a b', true), accountKeyRanges('a b'));
  assert.deepEqual(accountKeyRanges('a b', false), {
    keys: ['account/a b'],
    prefixes: ['targets/a+b/', 'scope/a+b/', 'prov/a+b/', 'hold/a+b/', 'await/a+b/', 'op/a+b/', 'asg/a+b/', 'asset/a+b/', 'vppuser/a+b/', 'userhold/a+b/'],
    byValue: [{ prefix: 'policy/', field: 'accountId' }],
  }, 'without the records of no account');
  for (const bad of [undefined, null, 7, {}, []]) {
    assertRejected(() => accountOfRecord(bad), `accountOfRecord(${show(bad)})`);
    assertRejected(() => accountKeyRanges(bad), `accountKeyRanges(${show(bad)})`);
  }
  for (const bad of [null, 0, 'false', {}]) assertRejected(() => accountKeyRanges('a', bad), `accountKeyRanges('a', ${show(bad)})`);
});
