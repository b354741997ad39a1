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
