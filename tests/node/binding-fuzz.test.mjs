// Property-based fuzzing of the JS boundary (fast-check): random JS values, and real inputs with fields of the wrong
// type, missing or extra, thrown at every entry point of the built package. Each call returns normally or throws an
// Error with a string `code` — never a WebAssembly.RuntimeError (a trap leaves the instance unusable) — and after
// every thrown error the same engine still takes a valid call. boundary.test.mjs holds the hand-written cases.
// FC_RUNS=<n> runs more cases per property. Run scripts/build-pkg.sh first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Engine, accountKeyRanges, accountOfRecord, decodeToken } from '../../pkg/vpp_license_engine.node.mjs';

const RUNS = Number(process.env.FC_RUNS ?? 200);
const NOW = Date.parse('2026-11-23T09:00:00Z');
const MDM = { id: 'mdm-1', name: 'Test MDM', metadata: '1.0' };
const CONFIG = { mdmInfo: MDM, notifications: { url: 'https://mdm.test/apple', authToken: 'notification-secret-0123' } };
const base64 = (text) => Buffer.from(text).toString('base64');
const TOKEN = base64(JSON.stringify({ token: 'c2VjcmV0', expDate: '2030-11-08T22:33:22+0000', orgName: 'ORG1' }));
const POLICY = { policyId: 'p1', name: 'P', accountId: 'a1', adamId: '408709785', pricingParam: 'STDQ', licenseType: 'device', targets: ['S1'] };

/** Any JS value fast-check can build, including Maps, Sets, Dates, typed and sparse arrays, BigInts, boxed values
 *  and objects without a prototype, plus values it does not build: symbols, functions, a Proxy, a class instance. */
const junk = fc.oneof(
  { weight: 8, arbitrary: fc.anything({ withBigInt: true, withBoxedValues: true, withDate: true, withMap: true, withSet: true,
    withNullPrototype: true, withObjectString: true, withSparseArray: true, withTypedArray: true, maxDepth: 3 }) },
  fc.constantFrom(Symbol('s'), () => 1, new Proxy({}, {}), new (class Input { type = 'timeout'; })(), new Error('e'),
    Object.create({ type: 'timeout' }), -0, 2 ** 53, 2 ** 53 + 2, Number.MAX_VALUE, Number.EPSILON),
);
/** Strings that are hard to get right: empty, very long, lone surrogates, NUL, right-to-left marks. */
const nastyString = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('', ' ', '\u0000', '\ud800', '\udfff\ud800', '\u202e', 'a'.repeat(70_000), '🙂'.repeat(300), 'a1', 'p1'),
);
/** Numbers around every boundary a `now`, id or status can have. */
const nastyNumber = fc.oneof(
  fc.double(),
  fc.integer(),
  fc.maxSafeNat(),
  fc.constantFrom(0, -1, 0.5, 65_535, 65_536, 2 ** 32, 2 ** 53 - 1, 2 ** 53, 2 ** 64, NaN, Infinity, -Infinity, -0),
);
/** A value for a field: its right type with odd content, or any other value. */
const field = (valid) => fc.oneof({ weight: 3, arbitrary: valid }, { weight: 1, arbitrary: nastyString },
  { weight: 1, arbitrary: nastyNumber }, { weight: 1, arbitrary: junk });
const str = field(nastyString);
const num = field(nastyNumber);
const bool = field(fc.boolean());
const optional = (arb) => fc.option(arb, { nil: undefined });
const strings = field(fc.array(nastyString, { maxLength: 5 }));

/** An object with these fields, each of which may be missing, plus maybe an unknown one. */
function shape(fields, fixed = {}) {
  return fc.tuple(fc.record(fields, { requiredKeys: [] }), optional(fc.tuple(nastyString, junk))).map(([record, extra]) => {
    const value = { ...fixed, ...record };
    if (extra !== undefined && !(extra[0] in value)) value[extra[0]] = extra[1];
    return value;
  });
}

const pricingParam = field(fc.constantFrom('STDQ', 'PLUS'));
const policy = field(shape({ policyId: str, name: str, accountId: field(fc.constant('a1')), adamId: str, pricingParam,
  licenseType: field(fc.constantFrom('device', 'user')), targets: strings }));
const headerValue = fc.oneof(nastyString, fc.nat().map(String), fc.constantFrom('0', '120', '99999999999999', '-5', '1e3'),
  fc.date({ noInvalidDate: true }).map((d) => d.toUTCString()));
const headers = field(fc.dictionary(fc.oneof(fc.constantFrom('Retry-After', 'retry-after', 'Content-Type'), nastyString),
  field(headerValue), { maxKeys: 4 }));

/** Every kind of input, with the right `type` and fields of any type (the right one most of the time). */
const typedInput = fc.oneof(
  shape({ accountId: str, name: str, token: field(fc.constant(TOKEN)) }, { type: 'addAccount' }),
  shape({ accountId: str, name: optional(str), token: optional(str) }, { type: 'editAccount' }),
  ...['deleteAccount', 'testAccount', 'refresh', 'reclaimOwnership', 'reclaimAccount', 'cleanUp']
    .map((type) => shape({ accountId: field(fc.constant('a1')) }, { type })),
  shape({ policy }, { type: 'setPolicy' }),
  shape({ policyId: str }, { type: 'removePolicy' }),
  shape({ policyId: str, add: optional(strings), remove: optional(strings) }, { type: 'updatePolicyTargets' }),
  shape({ serialNumber: str, clientUserId: optional(str), sharedIpad: optional(bool) }, { type: 'deviceEnrolled' }),
  shape({ serialNumber: str }, { type: 'deviceRetired' }),
  ...['appInstalled', 'appRemoved', 'appConvertedToManaged', 'updatePush']
    .map((type) => shape({ serialNumber: str, adamId: str }, { type })),
  shape({ serialNumber: str, adamId: str, cancelled: optional(bool) }, { type: 'installFailed' }),
  shape({ clientUserId: str, email: optional(str), managedAppleId: optional(str) }, { type: 'userAdded' }),
  shape({ clientUserId: str }, { type: 'userRemoved' }),
  shape({ accountId: str, adamId: str, pricingParam, serialNumber: optional(str), clientUserId: optional(str) }, { type: 'reclaimLicense' }),
  shape({ accountId: str, adamId: str, pricingParam }, { type: 'reclaimApp' }),
  shape({}, { type: 'reconcile' }),
  shape({ enabled: bool }, { type: 'setLicenseRemovalNotification' }),
  shape({ id: field(fc.nat(20)), status: field(fc.constantFrom(200, 400, 401, 429, 500, 503)), headers, body: str }, { type: 'response' }),
  shape({ id: field(fc.nat(20)), message: str }, { type: 'networkError' }),
  shape({}, { type: 'timeout' }),
  shape({}, { type: nastyString }),
);
const anyInput = fc.oneof({ weight: 4, arbitrary: typedInput }, { weight: 1, arbitrary: junk });
/** 9999-12-31T23:59:59.999Z: the latest `now` the binding accepts. */
const LATEST_DATE = 253_402_300_799_999;
const now = fc.oneof({ weight: 3, arbitrary: fc.integer({ min: NOW, max: NOW + 86_400_000 }) },
  { weight: 1, arbitrary: nastyNumber }, { weight: 1, arbitrary: junk });
const accountId = fc.oneof(fc.constant('a1'), nastyString, junk);

/** Calls `fn`; it must return, or throw an Error with a string code (never trap). Returns what it threw. */
function callSafely(fn, describe) {
  try {
    fn();
    return undefined;
  } catch (error) {
    assert.ok(!(error instanceof WebAssembly.RuntimeError), `${describe()}: wasm trap ${error}`);
    assert.ok(error instanceof Error, `${describe()}: threw a non-Error ${String(error)}`);
    assert.equal(typeof error.code, 'string', `${describe()}: no string .code (${error.message})`);
    assert.notEqual(error.code, '', `${describe()}: empty .code`);
    return error;
  }
}

const show = (args) => {
  try {
    return fc.stringify(args).slice(0, 500);
  } catch {
    return '<unprintable>';
  }
};

/** A valid call succeeds on `engine`: what "still works" means after a rejected call. */
function assertStillWorks(engine, label) {
  engine.handleInput({ type: 'timeout' }, NOW);
  assert.equal(typeof engine.pollOutput(NOW).type, 'string', `${label}: pollOutput after the error`);
  assert.ok(Array.isArray(engine.accounts()), `${label}: accounts after the error`);
}

function drain(engine) {
  const outputs = [];
  for (let i = 0; i < 10_000; i++) {
    const output = engine.pollOutput(NOW);
    outputs.push(output);
    if (output.type === 'timeout') return outputs;
  }
  throw new Error('pollOutput never returned a timeout');
}

/** An engine with account a1, a policy and a device, drained: real state behind the entry points. */
function engineWithAccount() {
  const engine = new Engine(CONFIG, NOW);
  engine.handleInput({ type: 'addAccount', accountId: 'a1', name: 'School', token: TOKEN }, NOW);
  engine.handleInput({ type: 'setPolicy', policy: POLICY }, NOW);
  engine.handleInput({ type: 'deviceEnrolled', serialNumber: 'S1' }, NOW);
  return engine;
}

/** The records an engine with an account, a policy and a device persists (what a store holds). */
function realRecords() {
  const engine = engineWithAccount();
  const records = new Map();
  for (const output of drain(engine)) {
    if (output.type !== 'persist') continue;
    for (const op of output.ops) {
      if (op.op === 'put') records.set(op.key, { key: op.key, value: op.value });
      else records.delete(op.key);
    }
  }
  engine.free();
  return [...records.values()];
}
const RECORDS = realRecords();

/** Record lists: the real ones with some replaced by typed-but-wrong or junk records, or any value. */
const recordList = fc.oneof(
  { weight: 3, arbitrary: fc.array(fc.nat(RECORDS.length + 1), { maxLength: 4 }).chain((picks) =>
    fc.tuple(...picks.map(() => fc.oneof(
      shape({ key: field(fc.constantFrom(...RECORDS.map((r) => r.key))), value: field(fc.constantFrom(...RECORDS.map((r) => r.value))) }),
      fc.constantFrom(...RECORDS).chain((r) => shape({ key: fc.constant(r.key), value: field(fc.constant(r.value)) })),
      fc.constantFrom(...RECORDS).chain((r) => fc.record({ key: fc.constant(r.key), value: mutated(r.value) })),
      junk,
    ))).map((bad) => [...RECORDS.slice(0, RECORDS.length - bad.length), ...bad])) },
  { weight: 1, arbitrary: junk },
);

/** A JSON value with one of its fields (at any depth) replaced by another value. */
function mutated(value) {
  const paths = [];
  const walk = (v, path) => {
    if (v === null || typeof v !== 'object') return;
    for (const key of Object.keys(v)) {
      paths.push([...path, key]);
      walk(v[key], [...path, key]);
    }
  };
  walk(value, []);
  if (paths.length === 0) return junk;
  return fc.tuple(fc.constantFrom(...paths), fc.oneof(nastyString, nastyNumber, junk, fc.constant(undefined))).map(([path, replacement]) => {
    const copy = structuredClone(value);
    let target = copy;
    for (const key of path.slice(0, -1)) target = target[key];
    target[path[path.length - 1]] = replacement;
    return copy;
  });
}

const config = fc.oneof(
  { weight: 2, arbitrary: shape({ mdmInfo: field(shape({ id: str, name: str, metadata: str })), serviceConfigUrl: optional(str),
    seed: optional(num), serviceConfigIntervalMs: optional(num), deltaSyncIntervalMs: optional(num),
    fullRefreshIntervalMs: optional(num), maxPagesInFlight: optional(num), backoffBaseMs: optional(num), backoffMaxMs: optional(num),
    rateLimitMarginMs: optional(num), unconfirmedSettleMs: optional(num), lowLicenseThreshold: optional(num),
    licenseRemovalNotification: optional(bool), notifications: optional(field(shape({ url: str, authToken: str }))) }) },
  { weight: 1, arbitrary: fc.constant(CONFIG) },
  { weight: 1, arbitrary: junk },
);

/** Runs `property` over `arbitrary` against one long-lived engine with an account. */
function againstOneEngine(arbitrary, call) {
  const engine = engineWithAccount();
  drain(engine);
  fc.assert(fc.property(arbitrary, (args) => {
    const describe = () => show(args);
    const error = callSafely(() => call(engine, args), describe);
    if (error !== undefined) assertStillWorks(engine, describe());
  }), { numRuns: RUNS });
  engine.free();
}

test('new Engine and Engine.restore take any config, records and now: an engine or an Error with a code', () => {
  fc.assert(fc.property(config, now, (cfg, at) => {
    let engine;
    callSafely(() => { engine = new Engine(cfg, at); }, () => show([cfg, at]));
    engine?.free();
  }), { numRuns: RUNS });
  fc.assert(fc.property(fc.oneof({ weight: 3, arbitrary: fc.constant(CONFIG) }, config), recordList, now, (cfg, records, at) => {
    let engine;
    callSafely(() => { engine = Engine.restore(cfg, records, at); }, () => show([cfg, records, at]));
    if (engine) {
      assertStillWorks(engine, 'a restored engine');
      engine.free();
    }
  }), { numRuns: RUNS });
});

test('handleInput takes any input and now, and a refusal leaves the engine working', () => {
  againstOneEngine(fc.tuple(anyInput, now), (engine, [input, at]) => engine.handleInput(input, at));
});

test('a stream of typed inputs with pollOutput drains in between never traps', () => {
  fc.assert(fc.property(fc.array(fc.tuple(typedInput, fc.nat(600_000)), { maxLength: 25 }), (steps) => {
    const engine = engineWithAccount();
    let at = NOW;
    for (const [input, advance] of steps) {
      at += advance;
      const error = callSafely(() => engine.handleInput(input, at), () => show(input));
      if (error !== undefined) assertStillWorks(engine, show(input));
      // A valid now: every output must reach JavaScript (no ENCODE_FAILED, no number beyond 2^53).
      for (let i = 0; i < 10_000; i++) {
        const output = engine.pollOutput(at);
        if (output.type === 'timeout') break;
      }
    }
    engine.free();
  }), { numRuns: Math.ceil(RUNS / 4) });
});

test('pollOutput, accounts, nextWakeup and stats take any argument', () => {
  againstOneEngine(fc.tuple(fc.constantFrom('pollOutput', 'accounts', 'nextWakeup', 'stats'), now, junk),
    (engine, [method, at, extra]) => engine[method](at, extra));
});

test('appCounts, pendingOperations, assignments and explain take any account id and query', () => {
  const query = fc.oneof(
    shape({ adamId: optional(str), serialNumber: optional(str), clientUserId: optional(str), offset: optional(num), limit: optional(num) }),
    shape({ adamId: str, pricingParam, serialNumber: optional(str), clientUserId: optional(str) }),
    junk,
  );
  againstOneEngine(fc.tuple(fc.constantFrom('appCounts', 'pendingOperations', 'assignments', 'explain'), accountId, optional(query)),
    (engine, [method, id, q]) => engine[method](id, q));
});

test('appReport and assignmentReport take any account id (or null) and page query', () => {
  const cursor = fc.oneof(str, fc.constantFrom('d0.0.0.a1', 'u4294967295.1.1.a1', 'd1.2.0.', 'x.y.z.w'));
  const query = fc.oneof(
    shape({ after: optional(fc.oneof(cursor, fc.constant(null))), limit: optional(num), adamId: optional(str), pricingParam: optional(pricingParam) }),
    junk,
  );
  const id = fc.oneof(accountId, fc.constant(null));
  againstOneEngine(fc.tuple(fc.constantFrom('appReport', 'assignmentReport'), id, optional(query)),
    (engine, [method, account, q]) => engine[method](account, q));
});

test('handleNotification takes any account, authorization, body and now', () => {
  const notification = fc.oneof(
    nastyString,
    fc.json(),
    fc.record({ notificationId: str, notificationType: field(fc.constantFrom('TEST_NOTIFICATION', 'ASSET_MANAGEMENT', 'ASSET_COUNT',
      'USER_MANAGEMENT', 'USER_ASSOCIATED')), notification: junk, uId: optional(str) }).map((n) => { try { return JSON.stringify(n); } catch { return '{}'; } }),
  );
  const authorization = fc.oneof(fc.constant(`Bearer ${CONFIG.notifications.authToken}`), fc.constant(null), fc.constant(undefined), nastyString, junk);
  againstOneEngine(fc.tuple(accountId, authorization, fc.oneof({ weight: 3, arbitrary: notification }, { weight: 1, arbitrary: junk }), now),
    (engine, [id, auth, body, at]) => {
      const status = engine.handleNotification(id, auth, body, at);
      assert.ok([200, 400, 401, 404].includes(status), `status ${status}`);
    });
});

test('decodeToken takes any value: token info or an Error with a code', () => {
  const tokenText = fc.oneof(
    nastyString,
    junk,
    fc.json().map(base64),
    shape({ token: str, expDate: field(fc.date({ noInvalidDate: true }).map((d) => d.toISOString())), orgName: str })
      .map((t) => { try { return base64(JSON.stringify(t)); } catch { return ''; } }),
  );
  fc.assert(fc.property(tokenText, (text) => {
    callSafely(() => {
      const info = decodeToken(text);
      assert.equal(typeof info.orgName, 'string');
      assert.ok(Number.isSafeInteger(info.expiresAt), `expiresAt ${info.expiresAt}`);
    }, () => show(text));
  }), { numRuns: RUNS });
});

test('accountOfRecord and accountKeyRanges take any value: an answer or an Error with a code', () => {
  const key = fc.oneof(nastyString, junk, fc.constantFrom('account/a1', 'policy/p1', 'prov/a%2F1/1/STDQ/d/S1', 'device/S1', 'settings'));
  const value = fc.oneof(fc.constant(undefined), junk, shape({ accountId: str }));
  fc.assert(fc.property(key, value, (k, v) => {
    callSafely(() => {
      const account = accountOfRecord(k, v);
      assert.ok(account === null || account === undefined || typeof account === 'string', `account ${show([account])}`);
    }, () => show([k, v]));
  }), { numRuns: RUNS });
  fc.assert(fc.property(accountId, (id) => {
    callSafely(() => {
      const ranges = accountKeyRanges(id);
      assert.ok(ranges.keys.length > 0 && ranges.prefixes.every((p) => p.endsWith('/')), show([ranges]));
    }, () => show([id]));
  }), { numRuns: RUNS });
});

test('adopt and release take any account id, records and now', { skip: typeof Engine.prototype.adopt !== 'function' && 'not in this build' }, () => {
  againstOneEngine(fc.tuple(fc.constantFrom('adopt', 'release'), accountId, recordList, now),
    (engine, [method, id, records, at]) => (method === 'adopt' ? engine.adopt(id, records, at) : engine.release(id, at)));
});

test('a now beyond the year 9999 is refused and the engine still answers pollOutput', () => {
  const engine = new Engine(CONFIG, NOW);
  for (const late of [LATEST_DATE + 1, Number.MAX_SAFE_INTEGER]) {
    assert.throws(() => engine.handleInput({ type: 'timeout' }, late), (error) => error.code === 'INVALID_INPUT');
  }
  engine.handleInput({ type: 'timeout' }, LATEST_DATE);
  assertStillWorks(engine, 'after now = 9999-12-31');
  engine.free();
});
