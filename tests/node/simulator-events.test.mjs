// Apps and Books simulator, tier 2: asset and user management — synchronous validation, asynchronous events,
// Get Events Status, and the effect on counts, assignments, users and versionIds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, simulator } from './simulator-support.mjs';

const post = (sim, token, path, body) => call(sim, path, { token, method: 'POST', body });
const status = async (sim, token, eventId) => (await call(sim, '/status', { token, query: { eventId } })).body;

/** An organization with a paid device app (`app`), a book, and devices / users without licenses. */
async function setup(t, options = {}) {
  const { sim, clock } = await simulator(t, options);
  const org = sim.addOrganization({ apps: 3, freeApps: 0, books: 1, devices: 20, users: 12, assignedFraction: 0.2 });
  const app = org.assets.find((a) => a.productType === 'App' && a.deviceAssignable);
  const book = org.assets.find((a) => a.productType === 'Book');
  const ref = (a) => ({ adamId: a.adamId, pricingParam: a.pricingParam });
  const freeDevices = (asset) => org.serialNumbers.filter((serialNumber) => !org.hasAssignment({ ...ref(asset), serialNumber }));
  const activeUsers = org.users.filter((u) => u.status === 'Registered' || u.status === 'Associated').map((u) => u.clientUserId);
  return { sim, clock, org, app, book, ref, freeDevices, activeUsers };
}

// ------------------------------------------------------------------ synchronous validation

test('associate validates synchronously: 9718 no asset, 9719 no target, 9602 malformed', async (t) => {
  const { sim, org, app, ref } = await setup(t);
  const cases = [
    [{ serialNumbers: ['S1'] }, 9718],
    [{ assets: [], serialNumbers: ['S1'] }, 9718],
    [{ assets: [ref(app)] }, 9719],
    [{ assets: [ref(app)], clientUserIds: [], serialNumbers: [] }, 9719],
    [{ assets: [{ adamId: app.adamId, pricingParam: 'HQ' }], serialNumbers: ['S1'] }, 9602],
    [{ assets: 'all', serialNumbers: ['S1'] }, 9602],
    [{ assets: [ref(app)], serialNumbers: 'S1' }, 9602],
  ];
  for (const [body, errorNumber] of cases) {
    const res = await post(sim, org.token, '/assets/associate', body);
    assert.deepEqual([res.status, res.body.errorNumber], [400, errorNumber], JSON.stringify(body));
  }
  assert.equal(sim.requestLog.filter((e) => e.status === 200).length, 0);
  assert.equal(await sim.completeEventsNow(), 0, 'synchronous failures start no event');
});

test('associate enforces the service-config limits (9700, 9701, 9702) and rejects duplicates (9703, 9704, 9705)', async (t) => {
  const { sim, org, app, book, ref } = await setup(t, { limits: { maxAssets: 2, maxClientUserIds: 2, maxSerialNumbers: 2 } });
  const other = org.assets.find((a) => a.adamId !== app.adamId && a.productType === 'App');
  const cases = [
    [{ assets: [ref(app), ref(other), ref(book)], clientUserIds: ['u1'] }, 9700],
    [{ assets: [ref(app)], clientUserIds: ['u1', 'u2', 'u3'] }, 9701],
    [{ assets: [ref(app)], serialNumbers: ['s1', 's2', 's3'] }, 9702],
    [{ assets: [ref(app), { adamId: app.adamId }], clientUserIds: ['u1'] }, 9703],
    [{ assets: [ref(app)], clientUserIds: ['u1', 'u1'] }, 9704],
    [{ assets: [ref(app)], serialNumbers: ['s1', 's1'] }, 9705],
  ];
  for (const [body, errorNumber] of cases) {
    const res = await post(sim, org.token, '/assets/associate', body);
    assert.deepEqual([res.status, res.body.errorNumber], [400, errorNumber], JSON.stringify(body));
  }
  sim.setLimits({ maxSerialNumbers: 3 });
  assert.equal((await post(sim, org.token, '/assets/associate', { assets: [ref(app)], serialNumbers: ['s1', 's2', 's3'] })).status, 200);
});

test('a book cannot go to a device (9707) nor be disassociated (9706); errorInfo names the asset', async (t) => {
  const { sim, org, app, book, ref } = await setup(t);
  const toDevice = await post(sim, org.token, '/assets/associate', { assets: [ref(app), ref(book)], serialNumbers: ['S1'] });
  assert.deepEqual([toDevice.status, toDevice.body.errorNumber, toDevice.body.errorInfo], [400, 9707, { assets: [ref(book)] }]);
  const release = await post(sim, org.token, '/assets/disassociate', { assets: [ref(book)], clientUserIds: ['u1'] });
  assert.deepEqual([release.status, release.body.errorNumber, release.body.errorInfo], [400, 9706, { assets: [ref(book)] }]);
});

// ------------------------------------------------------------------ events

test('associate answers an eventId with the envelope, stays PENDING, then completes and updates counts', async (t) => {
  const { sim, org, app, ref, freeDevices, activeUsers } = await setup(t);
  const before = org.asset(app.adamId);
  const versions = org.versionIds;
  const serialNumbers = freeDevices(app).slice(0, 2);
  const clientUserIds = activeUsers.filter((clientUserId) => !org.hasAssignment({ ...ref(app), clientUserId })).slice(0, 1);
  sim.purchase(org.token, app.adamId, 3);
  const res = await post(sim, org.token, '/assets/associate', { assets: [{ adamId: app.adamId }], serialNumbers, clientUserIds });
  assert.equal(res.status, 200);
  assert.deepEqual(Object.keys(res.body), ['eventId', 'tokenExpirationDate', 'uId']);
  assert.match(res.body.eventId, /^[0-9a-f-]{36}$/);
  assert.deepEqual(await status(sim, org.token, res.body.eventId), {
    eventStatus: 'PENDING', eventType: 'ASSOCIATE', numCompleted: 0, numRequested: 3,
    tokenExpirationDate: res.body.tokenExpirationDate, uId: org.uId,
  });
  assert.equal(org.asset(app.adamId).assignedCount, before.assignedCount, 'nothing happens before the event completes');

  assert.equal(await sim.completeEventsNow(), 1);
  const done = await status(sim, org.token, res.body.eventId);
  assert.deepEqual([done.eventStatus, done.numCompleted, done.numRequested, done.failures], ['COMPLETE', 3, 3, undefined]);
  const after = org.asset(app.adamId);
  assert.equal(after.assignedCount, before.assignedCount + 3);
  assert.equal(after.availableCount, before.availableCount);
  for (const serialNumber of serialNumbers) assert.ok(org.hasAssignment({ ...ref(app), serialNumber }));
  assert.ok(org.hasAssignment({ ...ref(app), clientUserId: clientUserIds[0] }));
  const now = org.versionIds;
  assert.notEqual(now.assignments, versions.assignments);
  assert.notEqual(now.assets, versions.assets);
  assert.equal(now.users, versions.users);
});

test('numRequested = assets × targets; a failed target makes the event FAILED with numCompleted = successes', async (t) => {
  const { sim, org, app, ref, freeDevices, activeUsers } = await setup(t);
  const other = org.assets.find((a) => a.adamId !== app.adamId && a.productType === 'App' && a.deviceAssignable);
  sim.purchase(org.token, app.adamId, 10);
  sim.purchase(org.token, other.adamId, 10);
  const body = { assets: [ref(app), ref(other)], clientUserIds: [activeUsers[0], 'client-4'], serialNumbers: freeDevices(app).slice(0, 2) };
  const { eventId } = (await post(sim, org.token, '/assets/associate', body)).body;
  assert.equal((await status(sim, org.token, eventId)).numRequested, 8);
  await sim.completeEventsNow();
  const done = await status(sim, org.token, eventId);
  assert.deepEqual([done.eventStatus, done.numCompleted, done.numRequested], ['FAILED', 6, 8]);
  assert.deepEqual(done.failures, [{ errorInfo: { clientUserIds: ['client-4'] }, errorMessage: 'Unable to find the registered user.', errorNumber: 9609 }]);
});

test('too few licenses fail the extra targets with 9709; re-associating an existing assignment consumes nothing', async (t) => {
  const { sim, org, app, ref, freeDevices } = await setup(t);
  const { availableCount, assignedCount } = org.asset(app.adamId);
  const devices = freeDevices(app).slice(0, availableCount + 2);
  const held = org.assignments.find((a) => a.adamId === app.adamId && a.serialNumber);
  const { eventId } = (await post(sim, org.token, '/assets/associate', { assets: [ref(app)], serialNumbers: [held.serialNumber, ...devices] })).body;
  await sim.completeEventsNow();
  const done = await status(sim, org.token, eventId);
  assert.deepEqual([done.eventStatus, done.numCompleted, done.numRequested], ['FAILED', availableCount + 1, availableCount + 3]);
  assert.equal(done.failures.length, 1);
  assert.equal(done.failures[0].errorNumber, 9709);
  assert.deepEqual(done.failures[0].errorInfo, { assets: [ref(app)], serialNumbers: devices.slice(availableCount) });
  assert.deepEqual(org.asset(app.adamId), { ...org.asset(app.adamId), assignedCount: assignedCount + availableCount, availableCount: 0 });
});

test('associating an asset the organization does not own fails with 9709', async (t) => {
  const { sim, org } = await setup(t);
  const { eventId } = (await post(sim, org.token, '/assets/associate', { assets: [{ adamId: '999999999', pricingParam: 'STDQ' }], serialNumbers: ['S1'] })).body;
  await sim.completeEventsNow();
  const done = await status(sim, org.token, eventId);
  assert.deepEqual([done.eventStatus, done.failures[0].errorNumber], ['FAILED', 9709]);
});

test('disassociate releases licenses; releasing one the target does not hold succeeds; an unknown user is 9609', async (t) => {
  const { sim, org, app, ref } = await setup(t);
  const held = org.assignments.filter((a) => a.adamId === app.adamId && a.serialNumber).slice(0, 2).map((a) => a.serialNumber);
  const before = org.asset(app.adamId);
  const { eventId } = (await post(sim, org.token, '/assets/disassociate', { assets: [ref(app)], serialNumbers: [...held, 'NEVERASSIGNED'] })).body;
  await sim.completeEventsNow();
  assert.deepEqual(await status(sim, org.token, eventId).then((s) => [s.eventStatus, s.eventType, s.numCompleted]), ['COMPLETE', 'DISASSOCIATE', 3]);
  assert.equal(org.asset(app.adamId).assignedCount, before.assignedCount - 2);
  assert.equal(org.asset(app.adamId).availableCount, before.availableCount + 2);
  const unknown = (await post(sim, org.token, '/assets/disassociate', { assets: [ref(app)], clientUserIds: ['nobody'] })).body;
  await sim.completeEventsNow();
  assert.equal((await status(sim, org.token, unknown.eventId)).failures[0].errorNumber, 9609);
});

test('revoke releases every revocable license of the targets, keeps books, and enforces maxRevoke* limits', async (t) => {
  const { sim, org, book, ref } = await setup(t);
  const user = org.users.find((u) => u.status !== 'Retired' && org.assignmentsOf({ clientUserId: u.clientUserId }).some((a) => a.adamId !== book.adamId));
  const clientUserId = user.clientUserId;
  if (!org.hasAssignment({ ...ref(book), clientUserId })) org.addAssignment({ ...ref(book), clientUserId });
  const device = org.assignments.find((a) => a.serialNumber).serialNumber;
  const { eventId } = (await post(sim, org.token, '/assets/revoke', { clientUserIds: [clientUserId], serialNumbers: [device] })).body;
  await sim.completeEventsNow();
  assert.deepEqual(await status(sim, org.token, eventId).then((s) => [s.eventStatus, s.eventType, s.numCompleted, s.numRequested]), ['COMPLETE', 'REVOKE', 2, 2]);
  assert.deepEqual(org.assignmentsOf({ clientUserId }), [{ ...ref(book), clientUserId }]);
  assert.deepEqual(org.assignmentsOf({ serialNumber: device }), []);

  sim.setLimits({ maxRevokeClientUserIds: 1, maxRevokeSerialNumbers: 1 });
  const cases = [[{}, 9719], [{ clientUserIds: ['a', 'b'] }, 9701], [{ serialNumbers: ['a', 'b'] }, 9702]];
  for (const [body, errorNumber] of cases) {
    assert.equal((await post(sim, org.token, '/assets/revoke', body)).body.errorNumber, errorNumber, JSON.stringify(body));
  }
});

test('Get Events Status: an unknown eventId, or another organization\'s, is 400 / 9708; none at all 400 / 9602', async (t) => {
  const { sim, org, app, ref } = await setup(t);
  const other = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  const { eventId } = (await post(sim, org.token, '/assets/associate', { assets: [ref(app)], serialNumbers: ['S1'] })).body;
  for (const [token, id] of [[org.token, 'ed3edfc3-e617-465e-b309-a17925266e14'], [other.token, eventId]]) {
    const res = await call(sim, '/status', { token, query: { eventId: id } });
    assert.deepEqual([res.status, res.body.errorNumber], [400, 9708]);
  }
  assert.equal((await call(sim, '/status', { token: org.token })).body.errorNumber, 9602);
});

test('events complete by themselves after eventDelayMs', async (t) => {
  const { sim, org, app, ref } = await setup(t, { eventDelayMs: 20 });
  const { eventId } = (await post(sim, org.token, '/assets/associate', { assets: [ref(app)], serialNumbers: ['SELFDONE0001'] })).body;
  assert.equal((await status(sim, org.token, eventId)).eventStatus, 'PENDING');
  await new Promise((resolve) => setTimeout(resolve, 60));
  assert.notEqual((await status(sim, org.token, eventId)).eventStatus, 'PENDING');
});

// ------------------------------------------------------------------ users

test('users/create validates synchronously: 9720 none, 9714 too many, 9715 duplicates, 9717 bad email', async (t) => {
  const { sim, org } = await setup(t, { limits: { maxUsers: 2 } });
  const cases = [
    [{}, 9720],
    [{ users: [] }, 9720],
    [{ users: [{ clientUserId: 'a' }, { clientUserId: 'b' }, { clientUserId: 'c' }] }, 9714],
    [{ users: [{ clientUserId: 'a' }, { clientUserId: 'a' }] }, 9715],
    [{ users: [{ clientUserId: 'a', email: 'not-an-email' }] }, 9717],
    [{ users: [{ email: 'a@example.com' }] }, 9602],
  ];
  for (const [body, errorNumber] of cases) {
    const res = await post(sim, org.token, '/users/create', body);
    assert.deepEqual([res.status, res.body.errorNumber], [400, errorNumber], JSON.stringify(body));
  }
});

test('users/create registers users with an inviteCode, or associates them at once with a Managed Apple ID; 9716 for existing', async (t) => {
  const { sim, org, activeUsers } = await setup(t);
  const users = [
    { clientUserId: 'client-100', email: 'client-100@next.com', managedAppleId: 'maid-100@next.com' },
    { clientUserId: 'client-102', email: 'client-102@next.com' },
    { clientUserId: activeUsers[0] },
  ];
  const versionBefore = org.versionIds.users;
  const { eventId } = (await post(sim, org.token, '/users/create', { users })).body;
  await sim.completeEventsNow();
  const done = await status(sim, org.token, eventId);
  assert.deepEqual([done.eventStatus, done.eventType, done.numCompleted, done.numRequested], ['FAILED', 'CREATE', 2, 3]);
  assert.deepEqual(done.failures, [{ errorInfo: { clientUserIds: [activeUsers[0]] }, errorMessage: 'A registered user already exists with the specified clientUserId.', errorNumber: 9716 }]);
  const associated = org.user('client-100');
  assert.equal(associated.status, 'Associated');
  assert.match(associated.idHash, /=$/);
  assert.equal(associated.inviteCode, undefined);
  const registered = org.user('client-102');
  assert.deepEqual([registered.status, registered.email], ['Registered', 'client-102@next.com']);
  assert.match(registered.inviteCode, /^[0-9a-f]{32}$/);
  assert.notEqual(org.versionIds.users, versionBefore);
});

test('users/update changes email; unknown users fail with 9609', async (t) => {
  const { sim, org, activeUsers } = await setup(t);
  const { eventId } = (await post(sim, org.token, '/users/update', { users: [{ clientUserId: activeUsers[0], email: 'moved@apple.com' }, { clientUserId: 'ghost' }] })).body;
  await sim.completeEventsNow();
  const done = await status(sim, org.token, eventId);
  assert.deepEqual([done.eventStatus, done.numCompleted, done.failures[0].errorNumber], ['FAILED', 1, 9609]);
  assert.equal(org.user(activeUsers[0]).email, 'moved@apple.com');
});

test('users/retire marks users Retired, drops the invitation, releases revocable licenses and keeps books in retiredCount', async (t) => {
  const { sim, org, book, ref } = await setup(t);
  const user = org.users.find((u) => u.status === 'Registered');
  const app = org.assets.find((a) => a.productType === 'App');
  sim.mutate(org.token, (o) => {
    if (!o.hasAssignment({ ...ref(app), clientUserId: user.clientUserId })) {
      o.adjustAssetCount(app.adamId, app.pricingParam, 1);
      o.addAssignment({ ...ref(app), clientUserId: user.clientUserId });
    }
    if (!o.hasAssignment({ ...ref(book), clientUserId: user.clientUserId })) {
      o.adjustAssetCount(book.adamId, book.pricingParam, 1);
      o.addAssignment({ ...ref(book), clientUserId: user.clientUserId });
    }
  });
  const retiredBefore = org.asset(book.adamId, book.pricingParam).retiredCount;
  const { eventId } = (await post(sim, org.token, '/users/retire', { users: [{ clientUserId: user.clientUserId }] })).body;
  await sim.completeEventsNow();
  assert.deepEqual(await status(sim, org.token, eventId).then((s) => [s.eventStatus, s.eventType, s.numCompleted]), ['COMPLETE', 'RETIRE', 1]);
  const retired = org.user(user.clientUserId);
  assert.equal(retired.status, 'Retired');
  assert.equal(retired.inviteCode, undefined);
  assert.deepEqual(org.assignmentsOf({ clientUserId: user.clientUserId }), [{ ...ref(book), clientUserId: user.clientUserId }]);
  assert.equal(org.asset(book.adamId, book.pricingParam).retiredCount, retiredBefore + 1);
  // Retiring again is harmless; an associate to a retired user fails with 9609.
  const again = (await post(sim, org.token, '/assets/associate', { assets: [ref(app)], clientUserIds: [user.clientUserId] })).body;
  await sim.completeEventsNow();
  assert.equal((await status(sim, org.token, again.eventId)).failures[0].errorNumber, 9609);
});
