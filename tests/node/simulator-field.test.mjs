// Apps and Books simulator: Apple's failure modes from the field (issue 17) — the token lifecycle (a new download
// revokes the old token; expired and invalidated tokens), COMPLETE that is not proof (phantom associations),
// notification floods, and the pool replenished by a purchase. Every behaviour is checked over HTTP.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { START, call, receiver, simulator, subscribe } from './simulator-support.mjs';

const decodeToken = (token) => JSON.parse(Buffer.from(token, 'base64').toString('utf8'));
const errorOf = async (sim, path, token) => call(sim, path, { token }).then((r) => [r.status, r.body.errorNumber]);
const MDM = { id: 'mdm-1', name: 'Our MDM', metadata: '1.0' };

// ------------------------------------------------------------------ token lifecycle

test('downloading the token again revokes the old one (9625 everywhere) and the new one carries on the location', async (t) => {
  const { sim, clock } = await simulator(t, { notificationRetryDelayMs: 10 });
  const org = sim.addOrganization({ orgName: 'ORG1', apps: 2, freeApps: 0, devices: 10, users: 3, expiresAt: START + 10 * 86400000 });
  const hook = await receiver(t);
  await subscribe(sim, org.token, hook.url);
  await call(sim, '/client/config', { token: org.token, method: 'POST', body: { mdmInfo: MDM } });
  const app = org.assets.find((a) => a.deviceAssignable);
  const { eventId } = (await call(sim, '/assets/associate', { token: org.token, method: 'POST', body: { assets: [{ adamId: app.adamId }], serialNumbers: [org.serialNumbers[0]] } })).body;
  const before = (await call(sim, '/assignments', { token: org.token })).body;
  const old = org.token;

  clock.t = START + 1000;
  const renewed = sim.renewToken(old);
  assert.notEqual(renewed, old);
  assert.equal(org.token, renewed);
  assert.deepEqual(decodeToken(renewed).orgName, 'ORG1');
  assert.equal(decodeToken(renewed).expDate, '2027-11-23T00:00:01+0000', 'a year from the download');
  for (const path of ['/client/config', '/assets', '/assignments', '/users', `/status?eventId=${eventId}`]) {
    assert.deepEqual(await errorOf(sim, path, old), [401, 9625], path);
  }
  const refused = await call(sim, '/assets/associate', { token: old, method: 'POST', body: { assets: [{ adamId: app.adamId }], serialNumbers: ['X'] } });
  assert.deepEqual([refused.status, refused.body], [401, { errorMessage: 'The server has revoked the sToken.', errorNumber: 9625 }]);

  // The location is the same: data, versionIds, mdmInfo, notifications, events.
  const now = (await call(sim, '/assignments', { token: renewed })).body;
  assert.deepEqual([now.assignments, now.versionId, now.uId], [before.assignments, before.versionId, before.uId]);
  assert.deepEqual(now.mdmInfo, MDM);
  assert.equal(now.tokenExpirationDate, '2027-11-23T00:00:01+0000');
  const config = (await call(sim, '/client/config', { token: renewed })).body;
  assert.deepEqual([config.locationName, config.notificationUrl], [org.locationName, hook.url]);
  assert.equal((await call(sim, '/status', { token: renewed, query: { eventId } })).body.eventStatus, 'PENDING');
  await sim.completeEventsNow();
  assert.equal(hook.ofType('ASSET_MANAGEMENT').length, 1, 'notifications of the location still arrive');

  // Service config is not token-checked: it answers with the revoked bearer, so it cannot test a token.
  const service = await call(sim, '/service/config', { token: old });
  assert.equal(service.status, 200);
  assert.ok(service.body.limits.maxRequestPerSecond > 0);

  assert.equal(sim.organization(old), org, 'the replaced token still names its location');
  assert.equal(sim.organizations.length, 1);
  for (const control of [() => sim.renewToken(old), () => sim.revokeToken(old), () => sim.expireToken(old), () => sim.invalidateToken(old)]) {
    assert.throws(control, /replaced by renewToken/);
  }
  const third = sim.renewToken(renewed, { expiresAt: START + 2 * 86400000 });
  assert.deepEqual(await errorOf(sim, '/assets', renewed), [401, 9625]);
  assert.deepEqual(await errorOf(sim, '/assets', old), [401, 9625]);
  assert.equal((await call(sim, '/assets', { token: third })).body.tokenExpirationDate, '2026-11-25T00:00:00+0000');
});

test('expired (9621), revoked (9625), invalidated (9622) and unknown (9622) tokens each answer their error; a new download cures each', async (t) => {
  const { sim } = await simulator(t);
  const [expired, revoked, invalidated, fine] = [0, 1, 2, 3].map(() => sim.addOrganization({ apps: 1, devices: 1, users: 1 }));
  sim.expireToken(expired.token);
  sim.revokeToken(revoked.token);
  sim.invalidateToken(invalidated.token);
  const unknown = Buffer.from(JSON.stringify({ token: 'nope', expDate: '2030-11-08T22:33:22+0000', orgName: 'ORG9' })).toString('base64');
  const answers = [];
  for (const token of [expired.token, revoked.token, invalidated.token, unknown, fine.token]) {
    const { status, body } = await call(sim, '/client/config', { token });
    answers.push([status, body.errorNumber, body.errorMessage]);
  }
  assert.deepEqual(answers, [
    [401, 9621, "The token has expired. You need to generate a new token online using your organization's account at either school.apple.com or business.apple.com."],
    [401, 9625, 'The server has revoked the sToken.'],
    [401, 9622, 'Invalid authentication token.'],
    [401, 9622, 'Invalid authentication token.'],
    [200, undefined, undefined],
  ]);
  for (const org of [expired, revoked, invalidated]) {
    const old = org.token;
    const renewed = sim.renewToken(old);
    assert.equal((await call(sim, '/assets', { token: renewed })).status, 200);
    assert.equal((await call(sim, '/assets', { token: old })).body.errorNumber, 9625, 'the old one is revoked now');
    assert.deepEqual([org.revoked, org.invalidated], [false, false]);
  }
});

test('an invalidated token answers like an unknown one: HTTP 200 with 9622 under invalidTokenStatus 200', async (t) => {
  const { sim } = await simulator(t, { invalidTokenStatus: 200 });
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  sim.invalidateToken(org.token);
  const { status, body } = await call(sim, '/assets', { token: org.token });
  assert.deepEqual([status, body], [200, { errorMessage: 'Invalid authentication token.', errorNumber: 9622 }]);
  assert.equal((await call(sim, '/service/config', { token: org.token })).status, 200);
});

// ------------------------------------------------------------------ COMPLETE is not proof

/** An organization with one device app of `licenses` spare licenses and `devices` devices holding none. */
async function deviceApp(t, { licenses = 50, devices = 40, ...options } = {}) {
  const { sim, clock } = await simulator(t, { notificationRetryDelayMs: 10, ...options });
  const org = sim.addOrganization({ apps: 1, freeApps: 0, books: 0, devices, users: 0, assignedFraction: 0 });
  const ref = { adamId: '100000001', pricingParam: 'STDQ' };
  org.addAsset({ ...ref, totalCount: licenses });
  const hook = await receiver(t);
  await subscribe(sim, org.token, hook.url);
  const associate = async (serialNumbers) => (await call(sim, '/assets/associate', { token: org.token, method: 'POST', body: { assets: [ref], serialNumbers } })).body.eventId;
  const held = async () => (await call(sim, '/assignments', { token: org.token, query: { adamId: ref.adamId } })).body.assignments.map((a) => a.serialNumber);
  const counts = async () => (await call(sim, '/assets', { token: org.token, query: { adamId: ref.adamId } })).body.assets[0];
  return { sim, clock, org, ref, hook, associate, held, counts };
}

test('a phantom association completes at /status and in its notification, but Apple holds no license for it', async (t) => {
  const { sim, org, ref, hook, associate, held, counts } = await deviceApp(t);
  const [ghost, real] = org.serialNumbers;
  sim.setPhantomAssociations(org.token, { serialNumbers: [ghost] });
  const eventId = await associate([ghost, real]);
  await sim.completeEventsNow();
  const status = (await call(sim, '/status', { token: org.token, query: { eventId } })).body;
  assert.deepEqual([status.eventStatus, status.numCompleted, status.numRequested, status.failures], ['COMPLETE', 2, 2, undefined]);
  const [notification] = hook.ofType('ASSET_MANAGEMENT');
  assert.deepEqual(notification.notification, {
    assignments: [{ ...ref, serialNumber: ghost }, { ...ref, serialNumber: real }], eventId, result: 'SUCCESS', type: 'ASSOCIATE',
  });
  assert.deepEqual(await held(), [real], 'Get Assignments: the license is not found');
  assert.deepEqual(await call(sim, '/assignments', { token: org.token, query: { serialNumber: ghost } }).then((r) => r.body.assignments), []);
  assert.deepEqual([(await counts()).assignedCount, (await counts()).availableCount], [1, 49], 'only the real one counts');
  assert.deepEqual([org.hasAssignment({ ...ref, serialNumber: ghost }), org.hasAssignment({ ...ref, serialNumber: real })], [false, true]);
  assert.deepEqual(org.phantomAssignments, [{ ...ref, serialNumber: ghost }]);

  // A listed serial stays a phantom; once the switch is off its association is real.
  await associate([ghost]);
  await sim.completeEventsNow();
  assert.deepEqual(await held(), [real]);
  sim.setPhantomAssociations(org.token, null);
  const again = await associate([ghost]);
  await sim.completeEventsNow();
  assert.equal((await call(sim, '/status', { token: org.token, query: { eventId: again } })).body.eventStatus, 'COMPLETE');
  assert.deepEqual((await held()).sort(), [ghost, real].sort());
  assert.deepEqual(org.phantomAssignments, []);
});

test('a fraction of phantom associations: every pair is reported SUCCESS, Get Assignments shows only those really held', async (t) => {
  const { sim, org, ref, hook, associate, held, counts } = await deviceApp(t, { licenses: 200, devices: 200 });
  sim.setPhantomAssociations(org.token, { fraction: 0.25 });
  const serials = org.serialNumbers;
  const eventId = await associate(serials);
  await sim.completeEventsNow();
  const status = (await call(sim, '/status', { token: org.token, query: { eventId } })).body;
  assert.deepEqual([status.eventStatus, status.numCompleted], ['COMPLETE', 200]);
  const reported = hook.ofType('ASSET_MANAGEMENT').flatMap((n) => (n.notification.result === 'SUCCESS' ? n.notification.assignments : []));
  assert.deepEqual(reported.map((a) => a.serialNumber), serials);
  const phantoms = org.phantomAssignments.map((a) => a.serialNumber);
  assert.ok(phantoms.length > 25 && phantoms.length < 75, `about a quarter are phantoms: ${phantoms.length}`);
  const holding = await held();
  assert.deepEqual([...holding, ...phantoms].sort(), [...serials].sort(), 'each pair is held or a phantom');
  assert.equal((await counts()).assignedCount, holding.length);
  // Disassociating a phantom pair succeeds and ends it.
  await call(sim, '/assets/disassociate', { token: org.token, method: 'POST', body: { assets: [ref], serialNumbers: [phantoms[0]] } });
  await sim.completeEventsNow();
  assert.equal(org.phantomAssignments.length, phantoms.length - 1);
  // The draw is seeded: the same seed picks the same phantoms.
  const twin = await deviceApp(t, { licenses: 200, devices: 200 });
  twin.sim.setPhantomAssociations(twin.org.token, { fraction: 0.25 });
  await twin.associate(twin.org.serialNumbers);
  await twin.sim.completeEventsNow();
  assert.deepEqual(twin.org.phantomAssignments.map((a) => a.serialNumber), phantoms);
  assert.throws(() => sim.setPhantomAssociations(org.token, { fraction: 2 }), RangeError);
  assert.throws(() => sim.setPhantomAssociations(org.token, { serialNumbers: 'S1' }), TypeError);
});

test('phantom associations apply to device tasks that would get a license; users and 9709 refusals are unaffected', async (t) => {
  const { sim, org, ref, associate } = await deviceApp(t, { licenses: 1 });
  sim.mutate(org.token, (o) => o.addUser({ clientUserId: 'client-1', status: 'Associated', idHash: 'h=' }));
  sim.setPhantomAssociations(org.token, { fraction: 1 });
  const [a, b] = org.serialNumbers;
  const eventId = await associate([a, b]);
  await sim.completeEventsNow();
  const status = (await call(sim, '/status', { token: org.token, query: { eventId } })).body;
  assert.deepEqual([status.eventStatus, status.numCompleted], ['COMPLETE', 2], 'phantoms consume nothing, so both "fit"');
  const users = (await call(sim, '/assets/associate', { token: org.token, method: 'POST', body: { assets: [ref], clientUserIds: ['client-1'] } })).body.eventId;
  const full = await associate([org.serialNumbers[2]]);
  await sim.completeEventsNow();
  assert.equal((await call(sim, '/status', { token: org.token, query: { eventId: users } })).body.eventStatus, 'COMPLETE');
  assert.ok(org.hasAssignment({ ...ref, clientUserId: 'client-1' }));
  const refused = (await call(sim, '/status', { token: org.token, query: { eventId: full } })).body;
  assert.deepEqual([refused.eventStatus, refused.failures[0].errorNumber], ['FAILED', 9709], 'no license left: refused as usual');
});

// ------------------------------------------------------------------ notification floods

/** An organization with `apps` paid device apps of `licenses` each (adamIds 200000001, …) and `devices` devices. */
async function floodOrg(t, { apps, devices, licenses = devices, ...options }) {
  const { sim } = await simulator(t, { notificationRetryDelayMs: 10, ...options });
  const org = sim.addOrganization({ apps: 0, freeApps: 0, books: 0, devices, users: 2, assignedFraction: 0 });
  const refs = Array.from({ length: apps }, (_, i) => ({ adamId: String(200000001 + i), pricingParam: 'STDQ' }));
  sim.mutate(org.token, (o) => refs.forEach((ref, i) => o.addAsset({ ...ref, totalCount: typeof licenses === 'function' ? licenses(i) : licenses })));
  const hook = await receiver(t);
  await subscribe(sim, org.token, hook.url);
  const associate = async (serialNumbers) => (await call(sim, '/assets/associate', { token: org.token, method: 'POST', body: { assets: refs, serialNumbers } })).body.eventId;
  return { sim, org, refs, hook, associate };
}

test('a flood: 1,000 devices × 25 apps are notified as 250 notifications of 100 devices of one app, with duplicates, spread out after COMPLETE', { timeout: 60_000 }, async (t) => {
  const spreadMs = 2000;
  const { sim, org, refs, hook, associate } = await floodOrg(t, { apps: 25, devices: 1000, now: Date.now });
  sim.setNotificationFlood(org.token, { spreadMs });
  assert.deepEqual(org.notificationFlood, { maxAssignments: 100, duplicateFraction: 0.1, spreadMs });
  const eventId = await associate(org.serialNumbers);
  const completedAt = Date.now();
  const delivered = sim.completeEventsNow();
  const status = (await call(sim, '/status', { token: org.token, query: { eventId } })).body;
  assert.deepEqual([status.eventStatus, status.numCompleted, status.numRequested], ['COMPLETE', 25000, 25000]);
  const seenAtStatus = hook.ofType('ASSET_MANAGEMENT').length;
  assert.ok(seenAtStatus < 250, `/status said COMPLETE while notifications were still to come (${seenAtStatus} arrived)`);
  assert.equal(await delivered, 1, 'completeEventsNow resolves once the flood is delivered');

  const received = hook.ofType('ASSET_MANAGEMENT');
  const byId = new Map();
  for (const n of received) {
    assert.deepEqual(Object.keys(n.notification).sort(), ['assignments', 'eventId', 'result', 'type'], 'the usual ASSET_MANAGEMENT shape');
    assert.deepEqual([n.notification.eventId, n.notification.result, n.notification.type, n.uId], [eventId, 'SUCCESS', 'ASSOCIATE', org.uId]);
    if (byId.has(n.notificationId)) assert.deepEqual(n, byId.get(n.notificationId), 'a duplicate is the same notification');
    byId.set(n.notificationId, n);
  }
  assert.equal(byId.size, 250, 'one notification per app and 100 devices');
  const duplicates = received.length - byId.size;
  assert.ok(duplicates > 5 && duplicates < 50, `about a tenth sent twice: ${duplicates}`);
  const pairs = new Set();
  for (const { notification } of byId.values()) {
    assert.equal(notification.assignments.length, 100);
    assert.equal(new Set(notification.assignments.map((a) => a.adamId)).size, 1, 'one app per notification');
    for (const a of notification.assignments) pairs.add(`${a.adamId}|${a.serialNumber}`);
  }
  assert.equal(pairs.size, 25000, 'every pair is notified');
  assert.equal((await call(sim, '/assets', { token: org.token, query: { adamId: refs[24].adamId } })).body.assets[0].assignedCount, 1000);

  const times = sim.notificationLog.filter((e) => e.notificationType === 'ASSET_MANAGEMENT').map((e) => e.at);
  assert.equal(times.length, received.length);
  assert.ok(Math.min(...times) >= completedAt);
  assert.ok(Math.max(...times) - Math.min(...times) >= spreadMs / 2, `spread over ${Math.max(...times) - Math.min(...times)} ms`);
});

test('a flood splits per app and maxAssignments, FAILURE series too; duplicates keep the notificationId; user events and null end it', async (t) => {
  const { sim, org, refs, hook, associate } = await floodOrg(t, { apps: 2, devices: 25, licenses: (i) => (i === 0 ? 25 : 20) });
  sim.setNotificationFlood(org.token, { maxAssignments: 10, duplicateFraction: 1, spreadMs: 0 });
  const eventId = await associate(org.serialNumbers);
  await sim.completeEventsNow();
  const received = hook.ofType('ASSET_MANAGEMENT');
  assert.equal(received.length, 12, '6 notifications, each twice');
  const byId = new Map();
  for (const n of received) byId.set(n.notificationId, [...(byId.get(n.notificationId) ?? []), n]);
  assert.ok([...byId.values()].every((copies) => copies.length === 2));
  const shape = [...byId.values()].map(([n]) => [n.notification.result, n.notification.assignments[0].adamId, n.notification.assignments.length,
    n.notification.error?.errorNumber]).sort();
  assert.deepEqual(shape, [
    ['FAILURE', refs[1].adamId, 5, 9709],
    ['SUCCESS', refs[0].adamId, 10, undefined], ['SUCCESS', refs[0].adamId, 10, undefined], ['SUCCESS', refs[0].adamId, 5, undefined],
    ['SUCCESS', refs[1].adamId, 10, undefined], ['SUCCESS', refs[1].adamId, 10, undefined],
  ].sort());
  assert.equal(received[0].notification.eventId, eventId);

  // User events are notified as usual; after null, asset events too.
  const created = (await call(sim, '/users/create', { token: org.token, method: 'POST', body: { users: [{ clientUserId: 'c-1' }, { clientUserId: 'c-2' }] } })).body.eventId;
  await sim.completeEventsNow();
  assert.deepEqual(hook.ofType('USER_MANAGEMENT').map((n) => [n.notification.eventId, n.notification.users.length]), [[created, 2]]);
  sim.setNotificationFlood(org.token, null);
  await call(sim, '/assets/revoke', { token: org.token, method: 'POST', body: { serialNumbers: org.serialNumbers.slice(0, 20) } });
  await sim.completeEventsNow();
  const revoked = hook.ofType('ASSET_MANAGEMENT').slice(12);
  assert.deepEqual(revoked.map((n) => [n.notification.type, n.notification.assignments.length]), [['REVOKE', 40]], 'one notification of both apps');
  for (const spec of [{ maxAssignments: 101 }, { maxAssignments: 0 }, { duplicateFraction: -0.1 }, { spreadMs: -1 }, { spreadMs: Infinity }]) {
    assert.throws(() => sim.setNotificationFlood(org.token, spec), RangeError, JSON.stringify(spec));
  }
});

// ------------------------------------------------------------------ pool replenishment

test('a purchase replenishes an exhausted pool: Get Assets shows the new counts, ASSET_COUNT is sent, associations succeed again', async (t) => {
  const { sim, org, ref, hook, associate, held, counts } = await deviceApp(t, { licenses: 2, devices: 5 });
  const refusedId = await associate(org.serialNumbers);
  await sim.completeEventsNow();
  const refused = (await call(sim, '/status', { token: org.token, query: { eventId: refusedId } })).body;
  assert.deepEqual([refused.eventStatus, refused.numCompleted, refused.failures[0].errorNumber], ['FAILED', 2, 9709]);
  const exhausted = await counts();
  assert.deepEqual([exhausted.totalCount, exhausted.assignedCount, exhausted.availableCount], [2, 2, 0]);
  const { versionId } = (await call(sim, '/assets', { token: org.token })).body;

  await sim.purchase(org.token, ref.adamId, 10);
  const [count] = hook.ofType('ASSET_COUNT');
  assert.deepEqual(Object.keys(count).sort(), ['notification', 'notificationId', 'notificationType', 'uId']);
  assert.deepEqual([count.notification, count.uId], [{ adamId: ref.adamId, countDelta: 10, pricingParam: 'STDQ' }, org.uId]);
  const replenished = await counts();
  assert.deepEqual([replenished.totalCount, replenished.assignedCount, replenished.availableCount], [12, 2, 10]);
  assert.notEqual((await call(sim, '/assets', { token: org.token })).body.versionId, versionId, 'the counts moved: a new versionId');

  const retried = await associate(org.serialNumbers.slice(2));
  await sim.completeEventsNow();
  assert.equal((await call(sim, '/status', { token: org.token, query: { eventId: retried } })).body.eventStatus, 'COMPLETE');
  assert.deepEqual((await held()).sort(), [...org.serialNumbers].sort());
  assert.equal((await counts()).availableCount, 7);
});

test('addOrganization takes phantomAssociations and notificationFlood; a bad one throws before the location is registered', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 3, users: 0, phantomAssociations: { serialNumbers: ['S1'] }, notificationFlood: { spreadMs: 5 } });
  assert.deepEqual(org.notificationFlood, { maxAssignments: 100, duplicateFraction: 0.1, spreadMs: 5 });
  org.addAsset({ adamId: '100000001', unlimited: true });
  const { eventId } = (await call(sim, '/assets/associate', { token: org.token, method: 'POST', body: { assets: [{ adamId: '100000001' }], serialNumbers: ['S1'] } })).body;
  await sim.completeEventsNow();
  assert.equal((await call(sim, '/status', { token: org.token, query: { eventId } })).body.eventStatus, 'COMPLETE');
  assert.deepEqual(org.phantomAssignments, [{ adamId: '100000001', pricingParam: 'STDQ', serialNumber: 'S1' }]);
  assert.throws(() => sim.addOrganization({ phantomAssociations: { fraction: -1 } }), RangeError);
  assert.throws(() => sim.addOrganization({ notificationFlood: { maxAssignments: 1000 } }), RangeError);
  assert.equal(sim.organizations.length, 1);
});
