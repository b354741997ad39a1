// The load test (tests/load/, scripts/loadtest.sh) at CI size, as a child process: it must exit 0 and print its
// summary line. Also the arithmetic it judges by (tests/load/lib.mjs) on cases small enough to check by hand.
// Needs pkg/ built (scripts/build-pkg.sh) and better-sqlite3; about a minute.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkRequestLog, coverBatches, lowerBounds, percentiles } from '../load/lib.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LIMITS = { maxAssets: 25, maxSerialNumbers: 1000, maxClientUserIds: 1000, maxRevokeSerialNumbers: 100, maxRevokeClientUserIds: 100, maxUsers: 100, maxRequestPerSecond: 15 };

test('greedy interval cover: a window opens at the first uncovered time and takes everything up to +W', () => {
  assert.deepEqual(coverBatches([], 5000), []);
  assert.deepEqual(coverBatches([0, 1000, 5000, 5001, 9000, 20000], 5000), [[0, 3], [3, 5], [5, 6]]);
});

test('lower bounds: at once and within the window, per group of asset set, asset and location', () => {
  const dev = (target, assets, at, loc = 0) => ({ kind: 'associate', loc, targetKind: 'device', target, assets, at });
  const changes = [
    // 1,500 devices join one group (apps A, B) over 20 s: at once ⌈1500/1000⌉ = 2; within 5 s: 4 windows of ≤ 1000.
    ...Array.from({ length: 1500 }, (_, i) => dev(`s${i}`, ['A', 'B'], i * (20_000 / 1500))),
    // 30 apps for one device (⌈30/25⌉ = 2 per request) in another location.
    dev('x1', Array.from({ length: 30 }, (_, i) => `app${i}`), 0, 1),
    // 250 retirements at one instant: ⌈250/100⌉ = 3 either way.
    ...Array.from({ length: 250 }, (_, i) => ({ kind: 'revoke', loc: 0, targetKind: 'device', target: `r${i}`, assets: [], at: 100 })),
    // Two app removals of different apps, 10 s apart: one request per (location, asset) either way.
    { kind: 'disassociate', loc: 0, targetKind: 'device', target: 'd1', assets: ['A'], at: 0 },
    { kind: 'disassociate', loc: 0, targetKind: 'device', target: 'd2', assets: ['B'], at: 10_000 },
    // Three users, the third 6 s after the first: at once 1; within 5 s 2.
    ...[0, 1000, 6000].map((at, i) => ({ kind: 'createUsers', loc: 0, targetKind: 'user', target: `u${i}`, assets: [], at })),
  ];
  const b = lowerBounds(changes, LIMITS, 5000);
  assert.deepEqual(b.associate, { atOnce: 2 + 2, withinWindow: 4 + 2 });
  assert.deepEqual(b.revoke, { atOnce: 3, withinWindow: 3 });
  assert.deepEqual(b.disassociate, { atOnce: 2, withinWindow: 2 });
  assert.deepEqual(b.createUsers, { atOnce: 1, withinWindow: 2 });
  assert.deepEqual(b.total, { atOnce: 10, withinWindow: 13 });
  // At once, a device that gains a second set later is grouped by the union of what it gains.
  const later = lowerBounds([dev('a', ['A'], 0), dev('b', ['A'], 0), dev('a', ['Z'], 60_000)], LIMITS, 5000);
  assert.deepEqual(later.associate, { atOnce: 2, withinWindow: 2 });
});

test('percentiles are nearest-rank', () => {
  const p = percentiles(Array.from({ length: 100 }, (_, i) => i + 1));
  assert.deepEqual(p, { n: 100, p50: 50, p95: 95, p99: 99, max: 100 });
  assert.equal(percentiles([]).p99, null);
});

test('request log checks: rate, Retry-After (requests already on their way excepted), limits, double association', () => {
  const T = 'token-a';
  const post = (at, path, request, extra = {}) => ({
    at, answeredAt: at + 5, method: 'POST', path: `/mdm/v2/${path}`, token: T, status: 200, errorNumber: null, dropped: false,
    id: String(at), eventId: `e${at}`, event: { eventType: 'X', eventStatus: 'COMPLETE', failures: [], request }, ...extra,
  });
  const get = (at, extra = {}) => ({ at, answeredAt: at + 1, method: 'GET', path: '/mdm/v2/status', token: T, status: 200, errorNumber: null, dropped: false, id: String(at), eventId: null, event: undefined, ...extra });
  const assoc = (assets, serialNumbers) => ({ assets: assets.map((adamId) => ({ adamId, pricingParam: 'STDQ' })), serialNumbers, clientUserIds: [] });
  const log = [
    ...Array.from({ length: 16 }, (_, i) => get(i * 10)), // 16 within 150 ms: over 15/s
    get(5000, { status: 503, errorNumber: 9729, answeredAt: 5001 }),
    get(5002), // sent before the 503 was read: not a violation
    get(5500), // sent after: a violation (deadline 7001)
    get(7100),
    post(8000, 'assets/associate', assoc(['A'], ['s1', 's2'])),
    post(9000, 'assets/associate', assoc(['A'], ['s2'])), // s2 again while held
    post(10000, 'assets/disassociate', assoc(['A'], ['s1'])),
    post(11000, 'assets/associate', assoc(['A'], ['s1'])), // fine: released in between
    post(12000, 'assets/revoke', { serialNumbers: ['s2'], clientUserIds: [] }),
    post(13000, 'assets/associate', assoc(['A'], ['s2'])), // fine: revoked in between
    post(14000, 'assets/associate', assoc(Array.from({ length: 26 }, (_, i) => `b${i}`), ['s9'])), // 26 assets
    post(15000, 'assets/associate', undefined, { status: 400, errorNumber: 9700, eventId: null, event: undefined }),
  ];
  const client = new Map([['5000', { sentAt: 4999, receivedAt: 5003 }], ['5002', { sentAt: 5001, receivedAt: 5004 }], ['5500', { sentAt: 5499, receivedAt: 5501 }]]);
  const r = checkRequestLog(log, { limits: LIMITS, retryAfterS: 2, client });
  assert.equal(r.rate.violations, 1);
  assert.equal(r.retryAfter.violations, 1, r.retryAfter.examples.join('\n'));
  assert.equal(r.limits.violations, 2, r.limits.examples.join('\n'));
  assert.equal(r.doubleAssociation.violations, 1, r.doubleAssociation.examples.join('\n'));
});

test('scripts/loadtest.sh --small: a district morning end to end passes its checks and prints its summary', { timeout: 240_000 }, async () => {
  const child = spawn('bash', ['scripts/loadtest.sh', '--small'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (chunk) => { out += chunk; });
  child.stderr.on('data', (chunk) => { out += chunk; });
  const code = await new Promise((resolve) => child.on('close', resolve));
  const summary = out.split('\n').find((line) => line.startsWith('SUMMARY loadtest small:'));
  assert.ok(summary, `no summary line in the output:\n${out}`);
  assert.equal(code, 0, `exit code ${code}:\n${out}`);
  assert.match(summary, /rule violations 0; final state exact; PASS$/);
});
