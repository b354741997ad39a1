// Apps and Books simulator, tier 2: notifications POSTed to the location's notificationUrl — the test
// notification on configuration, event, count and invitation notifications, splitting, faults and retries.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call, receiver, simulator, subscribe } from './simulator-support.mjs';

async function setup(t, options = {}) {
  const { sim } = await simulator(t, { notificationRetryDelayMs: 10, ...options });
  const org = sim.addOrganization({ apps: 2, freeApps: 0, books: 1, devices: 200, users: 10, assignedFraction: 0.1 });
  const hook = await receiver(t);
  const app = org.assets.find((a) => a.deviceAssignable);
  const ref = { adamId: app.adamId, pricingParam: app.pricingParam };
  /** The first `n` devices without a license of `ref`. */
  const freeDevices = (n) => org.serialNumbers.filter((serialNumber) => !org.hasAssignment({ ...ref, serialNumber })).slice(0, n);
  return { sim, org, hook, ref, freeDevices };
}

test('configuring notifications sends TEST_NOTIFICATION with the bearer secret, then client config shows them', async (t) => {
  const { sim, org, hook } = await setup(t);
  const res = await subscribe(sim, org.token, hook.url, ['ASSET_COUNT', 'ASSET_MANAGEMENT']);
  assert.equal(res.status, 200);
  assert.equal(hook.received.length, 1);
  const [{ headers, body }] = hook.received;
  assert.equal(headers.authorization, 'Bearer n0t1f-s3cr3t');
  assert.equal(headers['content-type'], 'application/json');
  assert.deepEqual(Object.keys(body), ['notification', 'notificationId', 'notificationType', 'uId']);
  assert.deepEqual([body.notification, body.notificationType, body.uId], [{}, 'TEST_NOTIFICATION', org.uId]);
  assert.deepEqual([res.body.notificationUrl, res.body.notificationAuthToken, res.body.subscribedNotificationTypes],
    [hook.url, 'n0t1f-s3cr3t', ['ASSET_COUNT', 'ASSET_MANAGEMENT']]);
  const got = (await call(sim, '/client/config', { token: org.token })).body;
  assert.deepEqual([got.notificationUrl, got.subscribedNotificationTypes], [hook.url, ['ASSET_COUNT', 'ASSET_MANAGEMENT']]);
  assert.deepEqual(sim.notificationLog.map((e) => [e.notificationType, e.status, e.attempt]), [['TEST_NOTIFICATION', 200, 1]]);
});

test('an unreachable or failing notification URL is rejected with 9728 and nothing of the request is stored', async (t) => {
  const { sim, org, hook } = await setup(t);
  hook.respond(500);
  const mdmInfo = { id: 'mdm-1', name: 'MDM', metadata: '1' };
  const failing = await call(sim, '/client/config', { token: org.token, method: 'POST', body: { mdmInfo, notificationUrl: hook.url, notificationAuthToken: 'x' } });
  assert.deepEqual([failing.status, failing.body.errorNumber], [400, 9728]);
  const closed = await call(sim, '/client/config', { token: org.token, method: 'POST', body: { notificationUrl: 'http://127.0.0.1:9/none', notificationAuthToken: 'x' } });
  assert.equal(closed.body.errorNumber, 9728);
  const external = await call(sim, '/client/config', { token: org.token, method: 'POST', body: { notificationUrl: 'https://www.next.com/notification', notificationAuthToken: 'x' } });
  assert.equal(external.body.errorNumber, 9728, 'non-loopback hosts are never contacted');
  assert.match(sim.notificationLog.at(-1).error, /not contacted/);
  assert.deepEqual([org.mdmInfo, org.notification], [null, null]);
});

test('empty notification URL and token clear the configuration', async (t) => {
  const { sim, org, hook } = await setup(t);
  await subscribe(sim, org.token, hook.url);
  const cleared = await call(sim, '/client/config', { token: org.token, method: 'POST', body: { notificationUrl: '', notificationAuthToken: '' } });
  assert.equal(cleared.status, 200);
  assert.equal(cleared.body.notificationUrl, undefined);
  await sim.purchase(org.token, org.assets[0].adamId, 5);
  assert.equal(hook.ofType('ASSET_COUNT').length, 0);
});

test('a completed associate sends ASSET_MANAGEMENT: SUCCESS with the assignments and FAILURE with the 9709 error', async (t) => {
  const { sim, org, hook, ref, freeDevices } = await setup(t);
  await subscribe(sim, org.token, hook.url);
  await sim.purchase(org.token, ref.adamId, 2);
  const free = freeDevices(org.asset(ref.adamId).availableCount + 1);
  const { eventId } = (await call(sim, '/assets/associate', { token: org.token, method: 'POST', body: { assets: [ref], serialNumbers: free } })).body;
  assert.equal(await sim.completeEventsNow(), 1);
  const [success, failure] = hook.ofType('ASSET_MANAGEMENT');
  assert.deepEqual(success.notification, {
    assignments: free.slice(0, -1).map((serialNumber) => ({ ...ref, serialNumber })), eventId, result: 'SUCCESS', type: 'ASSOCIATE',
  });
  assert.deepEqual(failure.notification, {
    assignments: [{ ...ref, serialNumber: free.at(-1) }],
    error: { errorMessage: 'There are not enough licenses for this app or book available to assign to the selected group.', errorNumber: 9709 },
    eventId, result: 'FAILURE', type: 'ASSOCIATE',
  });
  assert.equal(success.uId, org.uId);
  assert.notEqual(success.notificationId, failure.notificationId);
});

test('more than 100 assignments are split over several notifications of at most 100', async (t) => {
  const { sim, org, hook, ref, freeDevices } = await setup(t);
  await subscribe(sim, org.token, hook.url);
  const free = freeDevices(150);
  await sim.purchase(org.token, ref.adamId, 150);
  await call(sim, '/assets/associate', { token: org.token, method: 'POST', body: { assets: [ref], serialNumbers: free } });
  await sim.completeEventsNow();
  const sizes = hook.ofType('ASSET_MANAGEMENT').map((n) => n.notification.assignments.length);
  assert.deepEqual(sizes, [100, 50]);
});

test('revoke sends ASSET_MANAGEMENT of type REVOKE listing each released license', async (t) => {
  const { sim, org, hook } = await setup(t);
  await subscribe(sim, org.token, hook.url);
  const serialNumber = org.assignments.find((a) => a.serialNumber).serialNumber;
  const held = org.assignmentsOf({ serialNumber });
  await call(sim, '/assets/revoke', { token: org.token, method: 'POST', body: { serialNumbers: [serialNumber] } });
  await sim.completeEventsNow();
  const [revoked] = hook.ofType('ASSET_MANAGEMENT');
  assert.deepEqual([revoked.notification.type, revoked.notification.result, revoked.notification.assignments], ['REVOKE', 'SUCCESS', held]);
});

test('notification types the location did not subscribe to are not sent', async (t) => {
  const { sim, org, hook } = await setup(t);
  await subscribe(sim, org.token, hook.url, ['ASSET_COUNT']);
  await call(sim, '/users/create', { token: org.token, method: 'POST', body: { users: [{ clientUserId: 'client-200' }] } });
  await sim.completeEventsNow();
  await sim.purchase(org.token, org.assets[0].adamId, 2);
  assert.deepEqual(hook.received.map((r) => r.body.notificationType), ['TEST_NOTIFICATION', 'ASSET_COUNT']);
});

test('a purchase sends ASSET_COUNT with countDelta and changes total and available counts', async (t) => {
  const { sim, org, hook } = await setup(t);
  await subscribe(sim, org.token, hook.url);
  const app = org.assets[0];
  await sim.purchase(org.token, app.adamId, 12);
  await sim.purchase(org.token, app.adamId, -2);
  assert.deepEqual(hook.ofType('ASSET_COUNT').map((n) => n.notification), [
    { adamId: app.adamId, countDelta: 12, pricingParam: 'STDQ' },
    { adamId: app.adamId, countDelta: -2, pricingParam: 'STDQ' },
  ]);
  const now = org.asset(app.adamId);
  assert.deepEqual([now.totalCount, now.availableCount], [app.totalCount + 10, app.availableCount + 10]);
  assert.throws(() => sim.purchase(org.token, app.adamId, -(now.availableCount + 1)), RangeError);
  await sim.purchase(org.token, '1234567890', 5);
  assert.equal(org.asset('1234567890').totalCount, 5, 'a new purchase adds the asset');
  assert.throws(() => sim.purchase(org.token, '1111111111', -1), RangeError);
});

test('user management sends USER_MANAGEMENT; accepting an invitation sends USER_ASSOCIATED', async (t) => {
  const { sim, org, hook } = await setup(t);
  await subscribe(sim, org.token, hook.url);
  const { eventId } = (await call(sim, '/users/create', { token: org.token, method: 'POST', body: { users: [{ clientUserId: 'client-100', email: 'client-100@next.com' }] } })).body;
  await sim.completeEventsNow();
  const [created] = hook.ofType('USER_MANAGEMENT');
  const user = org.user('client-100');
  assert.deepEqual(created.notification, { eventId, result: 'SUCCESS', type: 'CREATE', users: [user] });
  assert.equal(user.status, 'Registered');

  await sim.acceptInvite(org.token, 'client-100');
  const [associated] = hook.ofType('USER_ASSOCIATED');
  const now = org.user('client-100');
  assert.equal(now.status, 'Associated');
  assert.ok(now.idHash);
  assert.deepEqual(associated.notification, { associatedUsers: [now] });
  assert.throws(() => sim.acceptInvite(org.token, 'client-100'), /not a Registered user/);
});

test('the invitationEmail URL of service config accepts the invitation when a user opens it', async (t) => {
  const { sim, org, hook } = await setup(t);
  await subscribe(sim, org.token, hook.url);
  const invited = org.users.find((u) => u.status === 'Registered');
  const template = (await call(sim, '/service/config')).body.urls.invitationEmail;
  const link = template.replace('%25inviteCode%25', invited.inviteCode);
  const opened = await fetch(link);
  assert.equal(opened.status, 200);
  assert.deepEqual(await opened.json(), { clientUserId: invited.clientUserId, status: 'Associated' });
  assert.equal(hook.ofType('USER_ASSOCIATED').length, 1);
  assert.equal((await fetch(template.replace('%25inviteCode%25', 'nope'))).status, 400);
});

test('notification faults drop, duplicate (same notificationId) or delay notifications; TEST is never faulted', async (t) => {
  const { sim, org, hook } = await setup(t);
  sim.injectNotificationFault({ drop: true, count: Infinity, notificationType: 'TEST_NOTIFICATION' });
  sim.clearFaults();
  sim.injectNotificationFault({ drop: true });
  await subscribe(sim, org.token, hook.url);
  assert.equal(hook.received.length, 1, 'the test notification got through');
  const adamId = org.assets[0].adamId;
  await sim.purchase(org.token, adamId, 1);
  assert.equal(hook.ofType('ASSET_COUNT').length, 0);
  assert.equal(sim.notificationLog.at(-1).dropped, true);
  sim.injectNotificationFault({ duplicate: true, token: org.token, notificationType: 'ASSET_COUNT' });
  await sim.purchase(org.token, adamId, 2);
  const counts = hook.ofType('ASSET_COUNT');
  assert.equal(counts.length, 2);
  assert.equal(counts[0].notificationId, counts[1].notificationId);
  sim.injectNotificationFault({ delayMs: 80 });
  const started = performance.now();
  await sim.purchase(org.token, adamId, 3);
  assert.ok(performance.now() - started >= 70);
  assert.equal(hook.ofType('ASSET_COUNT').length, 3);
  assert.throws(() => sim.injectNotificationFault({ count: 2 }), TypeError);
});

test('a failed delivery is retried up to notificationAttempts times', async (t) => {
  const { sim, org, hook } = await setup(t, { notificationAttempts: 3 });
  await subscribe(sim, org.token, hook.url);
  let calls = 0;
  hook.respond(() => (++calls < 3 ? 503 : 200));
  await sim.purchase(org.token, org.assets[0].adamId, 1);
  const attempts = sim.notificationLog.filter((e) => e.notificationType === 'ASSET_COUNT');
  assert.deepEqual(attempts.map((e) => [e.attempt, e.status]), [[1, 503], [2, 503], [3, 200]]);
  assert.equal(new Set(attempts.map((e) => e.notificationId)).size, 1);
  hook.respond(500);
  await sim.purchase(org.token, org.assets[0].adamId, 1);
  await sim.notificationsSettled();
  assert.equal(sim.notificationLog.filter((e) => e.status === 500).length, 3, 'given up after three attempts');
});
