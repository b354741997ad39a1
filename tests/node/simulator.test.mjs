// Apps and Books simulator, tier 1: service and client config, authentication, the response envelope,
// paged and versioned reads, HTTP-level errors, injected faults and rate limiting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, UNLIMITED_COUNT, makeToken } from '../../host-shim/simulator/index.js';
import { START, allPages, call, simulator } from './simulator-support.mjs';

const APPLE_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\+0000$/;
const MDM = { id: '522d5c43-44ca-4f7e-ba7a-53570cf60765', name: 'Apple Configurator 2', metadata: '2.13.3' };
const decodeToken = (token) => JSON.parse(Buffer.from(token, 'base64').toString('utf8'));

// ------------------------------------------------------------------ service config and tokens

test('service config needs no token and has the shape of Apple\'s example, with URLs on this server', async (t) => {
  const { sim } = await simulator(t);
  const { status, body } = await call(sim, '/service/config');
  assert.equal(status, 200);
  assert.deepEqual(Object.keys(body), ['errorCodes', 'limits', 'notificationTypes', 'urls']);
  assert.deepEqual(body.limits, {
    maxAssets: 25, maxUsers: 100, maxNotificationLength: 512, maxRevokeClientUserIds: 100, maxClientUserIds: 1000,
    maxSerialNumbers: 1000, maxRevokeSerialNumbers: 100, maxRequestPerSecond: 15, maxSubscriptions: 25,
    maxSubscriptionClientUserIds: 1000, maxMdmNameLength: 100, maxMdmMetadataLength: 255, maxMdmIdLength: 100,
  });
  assert.deepEqual(body.notificationTypes, ['ASSET_MANAGEMENT', 'USER_MANAGEMENT', 'USER_ASSOCIATED', 'ASSET_COUNT']);
  assert.deepEqual(body.errorCodes[0], { errorMessage: 'Login required.', errorNumber: 9601 });
  const numbers = body.errorCodes.map((e) => e.errorNumber);
  for (const n of [9602, 9646, 9650, 9700, 9709, 9721, 9722, 9728]) assert.ok(numbers.includes(n), `errorCodes lacks ${n}`);
  assert.deepEqual(Object.keys(body.urls).sort(), ['associateAssets', 'clientConfig', 'contentMetadataLookup', 'createUsers',
    'disassociateAssets', 'eventStatus', 'getAssets', 'getAssignments', 'getUsers', 'invitationEmail', 'retireUsers',
    'revokeAssets', 'updateUsers']);
  for (const url of Object.values(body.urls)) assert.ok(url.startsWith(sim.url), url);
  assert.equal(body.urls.getAssets, `${sim.url}/mdm/v2/assets`);
  assert.equal(body.urls.clientConfig, `${sim.url}/mdm/v2/client/config`);
  assert.ok(body.urls.invitationEmail.includes('inviteCode=%25inviteCode%25'));
  assert.equal(sim.serviceConfigUrl, `${sim.url}/mdm/v2/service/config`);
});

test('the content metadata lookup names each asset and gives it an icon, the same for the same adam id', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 3, books: 2 });
  const { body: config } = await call(sim, '/service/config');
  const url = new URL(config.urls.contentMetadataLookup);
  const ids = [...new Set(org.assets.map((a) => a.adamId))];
  const { status, body } = await call(sim, `${url.pathname}`, { query: { id: [...ids, '999'].join(',') } });
  assert.equal(status, 200);
  assert.deepEqual(Object.keys(body.results).sort(), [...ids].sort(), 'unknown ids are left out');
  for (const id of ids) {
    const entry = body.results[id];
    assert.equal(entry.id, id);
    assert.match(entry.name, /^\w+ \w+/);
    assert.match(entry.artwork.url, /^data:image\/svg\+xml,/);
  }
  const again = await call(sim, `${url.pathname}`, { query: { id: ids[0] } });
  assert.deepEqual(again.body.results[ids[0]], body.results[ids[0]]);
});

test('service config limits come from the options and can change while running', async (t) => {
  const { sim } = await simulator(t, { limits: { maxAssets: 5 } });
  assert.equal((await call(sim, '/service/config')).body.limits.maxAssets, 5);
  sim.setLimits({ maxSerialNumbers: 10 });
  const { limits } = (await call(sim, '/service/config')).body;
  assert.equal(limits.maxAssets, 5);
  assert.equal(limits.maxSerialNumbers, 10);
  assert.equal(limits.maxUsers, DEFAULT_LIMITS.maxUsers);
});

test('makeToken builds base64 of JSON {token, expDate, orgName} with Apple\'s date format', () => {
  const token = makeToken({ orgName: 'ORG12345', expiresAt: Date.UTC(2030, 10, 8, 22, 33, 22), secret: 't1XoUz==' });
  assert.deepEqual(decodeToken(token), { token: 't1XoUz==', expDate: '2030-11-08T22:33:22+0000', orgName: 'ORG12345' });
  assert.notEqual(makeToken({ orgName: 'A', expiresAt: 0 }), makeToken({ orgName: 'A', expiresAt: 0 }), 'random secret by default');
  assert.throws(() => makeToken({ orgName: '', expiresAt: 0 }), TypeError);
});

test('an organization\'s sToken names its orgName and expiry; the whole string is the bearer value', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ orgName: 'ORG1', expiresAt: Date.UTC(2030, 10, 8, 22, 33, 22), apps: 1, devices: 1, users: 1 });
  const decoded = decodeToken(org.token);
  assert.equal(decoded.orgName, 'ORG1');
  assert.equal(decoded.expDate, '2030-11-08T22:33:22+0000');
  assert.ok(decoded.token.length > 50);
  assert.equal((await call(sim, '/client/config', { token: org.token })).status, 200);
  assert.equal(sim.organization(org.token), org);
  assert.throws(() => sim.organization('nope'), /unknown sToken/);
});

// ------------------------------------------------------------------ authentication

test('a missing or malformed Authorization header is 401 / 9722', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  for (const headers of [{}, { Authorization: `Basic ${org.token}` }, { Authorization: 'Bearer' }, { Authorization: `Bearer ${org.token} x` }]) {
    const { status, body } = await call(sim, '/assets', { headers });
    assert.equal(status, 401, JSON.stringify(headers));
    assert.equal(body.errorNumber, 9722);
    assert.match(body.errorMessage, /Bearer \{sToken\}/);
  }
});

test('an unknown sToken is 401 / 9622, or HTTP 200 with the error body when configured as Fleet observed', async (t) => {
  const { sim } = await simulator(t);
  const unknown = makeToken({ orgName: 'ORG9', expiresAt: START + 1e10 });
  assert.deepEqual(await call(sim, '/client/config', { token: unknown }).then((r) => [r.status, r.body]),
    [401, { errorMessage: 'Invalid authentication token.', errorNumber: 9622 }]);
  const { sim: lenient } = await simulator(t, { invalidTokenStatus: 200 });
  const { status, body } = await call(lenient, '/client/config', { token: unknown });
  assert.equal(status, 200);
  assert.equal(body.errorNumber, 9622);
});

test('an expired sToken is 401 / 9621 and a revoked one 401 / 9625; other tokens keep working', async (t) => {
  const { sim, clock } = await simulator(t);
  const a = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  const b = sim.addOrganization({ apps: 1, devices: 1, users: 1, expiresAt: START + 1000 });
  const c = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  assert.equal((await call(sim, '/assets', { token: b.token })).status, 200);
  clock.t = START + 1000;
  assert.deepEqual(await call(sim, '/assets', { token: b.token }).then((r) => [r.status, r.body.errorNumber]), [401, 9621]);
  sim.expireToken(a.token);
  assert.deepEqual(await call(sim, '/users', { token: a.token }).then((r) => [r.status, r.body.errorNumber]), [401, 9621]);
  sim.revokeToken(c.token);
  assert.deepEqual(await call(sim, '/client/config', { token: c.token }).then((r) => [r.status, r.body.errorNumber]), [401, 9625]);
  const fresh = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  assert.equal((await call(sim, '/assets', { token: fresh.token })).status, 200);
});

// ------------------------------------------------------------------ client config and ownership

test('GET client config has Apple\'s fields, no mdmInfo before one is set, and the envelope', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ locationName: 'PS01', countryCode: 'US', apps: 1, devices: 1, users: 1 });
  const { status, body } = await call(sim, '/client/config', { token: org.token });
  assert.equal(status, 200);
  assert.deepEqual(Object.keys(body), ['countryISO2ACode', 'defaultPlatform', 'locationName', 'subscribedNotificationTypes',
    'tokenExpirationDate', 'uId', 'websiteURL']);
  assert.equal(body.countryISO2ACode, 'US');
  assert.equal(body.locationName, 'PS01');
  assert.equal(body.defaultPlatform, 'volumestore');
  assert.equal(body.websiteURL, 'https://business.apple.com');
  assert.match(body.tokenExpirationDate, APPLE_DATE);
  assert.match(body.uId, /^\d{16}$/);
});

test('POST client config stores mdmInfo, and every later authenticated response echoes it', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 2, devices: 5, users: 3 });
  const posted = await call(sim, '/client/config', { token: org.token, method: 'POST', body: { mdmInfo: MDM } });
  assert.equal(posted.status, 200);
  assert.deepEqual(posted.body.mdmInfo, MDM);
  assert.deepEqual(org.mdmInfo, MDM);
  for (const path of ['/client/config', '/assets', '/assignments', '/users']) {
    const { body } = await call(sim, path, { token: org.token });
    assert.deepEqual(body.mdmInfo, MDM, path);
    assert.equal(body.uId, org.uId, path);
    assert.match(body.tokenExpirationDate, APPLE_DATE, path);
  }
  // Service config is not per location: no envelope.
  assert.equal((await call(sim, '/service/config')).body.mdmInfo, undefined);
});

test('another MDM taking the location over shows in the next response; the last writer wins; null releases', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  await call(sim, '/client/config', { token: org.token, method: 'POST', body: { mdmInfo: MDM } });
  const other = { id: 'other-mdm', name: 'Other MDM', metadata: 'mdm.example.org' };
  sim.setMdmInfo(org.token, other);
  assert.deepEqual((await call(sim, '/assets', { token: org.token })).body.mdmInfo, other);
  await call(sim, '/client/config', { token: org.token, method: 'POST', body: { mdmInfo: MDM } });
  assert.deepEqual((await call(sim, '/users', { token: org.token })).body.mdmInfo, MDM);
  // A POST without mdmInfo leaves it as it is.
  await call(sim, '/client/config', { token: org.token, method: 'POST', body: {} });
  assert.deepEqual(org.mdmInfo, MDM);
  sim.setMdmInfo(org.token, null);
  assert.equal((await call(sim, '/client/config', { token: org.token })).body.mdmInfo, undefined);
});

test('POST client config rejects incomplete or too long mdmInfo (9723, 9724, 9725, 9713) and stores nothing', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  const cases = [
    [{ id: 'x', name: 'y' }, 9723],
    [{ id: '', name: 'y', metadata: 'z' }, 9723],
    [{ name: 'y', metadata: 'z' }, 9723],
    ['not an object', 9723],
    [{ ...MDM, id: 'i'.repeat(101) }, 9724],
    [{ ...MDM, name: 'n'.repeat(101) }, 9725],
    [{ ...MDM, metadata: 'm'.repeat(256) }, 9713],
  ];
  for (const [mdmInfo, errorNumber] of cases) {
    const { status, body } = await call(sim, '/client/config', { token: org.token, method: 'POST', body: { mdmInfo } });
    assert.deepEqual([status, body.errorNumber], [400, errorNumber], JSON.stringify(mdmInfo));
  }
  assert.equal(org.mdmInfo, null);
  const limits = await call(sim, '/client/config', { token: org.token, method: 'POST', body: { mdmInfo: { ...MDM, metadata: 'm'.repeat(255) } } });
  assert.equal(limits.status, 200, 'exactly the maximum length is allowed');
});

test('POST client config checks the notification URL / token pair (9710, 9711, 9712) and types (9602)', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  const cases = [
    [{ notificationUrl: 'https://mdm.example.com/apple' }, 9710],
    [{ notificationAuthToken: 'secret' }, 9710],
    [{ notificationUrl: '', notificationAuthToken: 'secret' }, 9710],
    [{ notificationUrl: `https://mdm.example.com/${'p'.repeat(520)}`, notificationAuthToken: 'secret' }, 9711],
    [{ notificationUrl: 'https://mdm.example.com/apple', notificationAuthToken: 's'.repeat(513) }, 9711],
    [{ notificationUrl: 'http://mdm.example.com/apple', notificationAuthToken: 'secret' }, 9712],
    [{ notificationUrl: 'not a url', notificationAuthToken: 'secret' }, 9712],
    [{ notificationTypes: ['ASSET_COUNT', 'NO_SUCH_TYPE'] }, 9602],
    [{ notificationTypes: 'ASSET_COUNT' }, 9602],
  ];
  for (const [body, errorNumber] of cases) {
    const res = await call(sim, '/client/config', { token: org.token, method: 'POST', body });
    assert.deepEqual([res.status, res.body.errorNumber], [400, errorNumber], JSON.stringify(body).slice(0, 120));
  }
  assert.equal(org.notification, null);
});

// ------------------------------------------------------------------ assets

test('Get Assets returns ResponseAssets with totalCount = assigned + available and free apps at 2147483647', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 4, freeApps: 1, books: 2, devices: 40, users: 10 });
  const { status, body } = await call(sim, '/assets', { token: org.token });
  assert.equal(status, 200);
  assert.deepEqual(Object.keys(body), ['assets', 'currentPageIndex', 'size', 'tokenExpirationDate', 'totalPages', 'uId', 'versionId']);
  assert.equal(body.assets.length, 6);
  assert.equal(body.size, 6);
  assert.equal(body.currentPageIndex, 0);
  assert.equal(body.totalPages, 1);
  assert.equal(body.nextPageIndex, undefined);
  for (const a of body.assets) {
    assert.deepEqual(Object.keys(a), ['adamId', 'assignedCount', 'availableCount', 'deviceAssignable', 'pricingParam',
      'productType', 'retiredCount', 'revocable', 'supportedPlatforms', 'totalCount']);
    assert.match(a.adamId, /^\d{9,10}$/);
    assert.equal(a.totalCount, a.assignedCount + a.availableCount);
  }
  const free = body.assets.filter((a) => a.totalCount === UNLIMITED_COUNT);
  assert.equal(free.length, 1);
  const books = body.assets.filter((a) => a.productType === 'Book');
  assert.deepEqual(books.map((b) => [b.pricingParam, b.deviceAssignable, b.revocable]), [['STDQ', false, false], ['PLUS', false, false]]);
  assert.equal(books[0].adamId, books[1].adamId, 'the two editions of a book share the adamId');
  assert.deepEqual(body.assets, org.assets);
  assert.equal(body.versionId, org.versionIds.assets);
});

test('Get Assets filters by productType, pricingParam, flags, adamId and inclusive count bounds', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 6, books: 2, devices: 60, users: 10 });
  const get = async (query) => (await call(sim, '/assets', { token: org.token, query })).body.assets;
  assert.deepEqual(await get({ productType: 'Book' }), org.assets.filter((a) => a.productType === 'Book'));
  assert.deepEqual(await get({ pricingParam: 'PLUS' }), org.assets.filter((a) => a.pricingParam === 'PLUS'));
  assert.deepEqual(await get({ productType: 'App', pricingParam: 'STDQ' }), org.assets.filter((a) => a.productType === 'App'));
  assert.deepEqual(await get({ deviceAssignable: false }), org.assets.filter((a) => !a.deviceAssignable));
  assert.deepEqual(await get({ revocable: 'true' }), org.assets.filter((a) => a.revocable));
  const one = org.assets[2];
  assert.deepEqual(await get({ adamId: one.adamId }), [one]);
  assert.deepEqual(await get({ minAssignedCount: one.assignedCount, maxAssignedCount: one.assignedCount }),
    org.assets.filter((a) => a.assignedCount === one.assignedCount));
  assert.deepEqual(await get({ maxAvailableCount: 0 }), org.assets.filter((a) => a.availableCount === 0));
  assert.deepEqual(await get({ minAvailableCount: 1000 }), org.assets.filter((a) => a.totalCount === UNLIMITED_COUNT));
  for (const query of [{ productType: 'Software' }, { pricingParam: 'HQ' }, { revocable: 'maybe' }, { minAssignedCount: 'x' }]) {
    const res = await call(sim, '/assets', { token: org.token, query });
    assert.deepEqual([res.status, res.body.errorNumber], [400, 9602], JSON.stringify(query));
  }
});

test('unlimited=true lists free assets in unlimitedAssets without counts; unlimited=false leaves them out', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 5, freeApps: 2, books: 1, devices: 20, users: 5 });
  const unlimited = (await call(sim, '/assets', { token: org.token, query: { unlimited: true } })).body;
  assert.equal(unlimited.assets, undefined);
  assert.equal(unlimited.unlimitedAssets.length, 2);
  for (const a of unlimited.unlimitedAssets) {
    assert.deepEqual(Object.keys(a), ['adamId', 'assignedCount', 'deviceAssignable', 'pricingParam', 'productType', 'revocable', 'supportedPlatforms']);
  }
  const limited = (await call(sim, '/assets', { token: org.token, query: { unlimited: false } })).body.assets;
  assert.equal(limited.length, 4);
  assert.ok(limited.every((a) => a.totalCount < UNLIMITED_COUNT));
});

// ------------------------------------------------------------------ paging

test('paging is zero-based: nextPageIndex on every page but the last, size = records on the page', async (t) => {
  const { sim } = await simulator(t, { pageSize: 50 });
  const org = sim.addOrganization({ apps: 4, devices: 100, users: 10 });
  const total = org.assignments.length;
  const pages = await allPages(sim, '/assignments', { token: org.token });
  const expectedPages = Math.ceil(total / 50);
  assert.equal(pages.length, expectedPages);
  pages.forEach((p, i) => {
    assert.equal(p.currentPageIndex, i);
    assert.equal(p.totalPages, expectedPages);
    assert.equal(p.size, p.assignments.length);
    assert.equal(p.nextPageIndex, i + 1 < expectedPages ? i + 1 : undefined);
    assert.equal('nextPageIndex' in p, i + 1 < expectedPages);
  });
  assert.equal(pages.at(-1).size, total - 50 * (expectedPages - 1));
  assert.deepEqual(pages.flatMap((p) => p.assignments), org.assignments);
  assert.equal(new Set(pages.map((p) => p.versionId)).size, 1, 'unchanged data keeps its versionId');
});

test('a page index outside [0, totalPages) is 400 / 9650; a non-numeric one 400 / 9602', async (t) => {
  const { sim } = await simulator(t, { pageSize: 10 });
  const org = sim.addOrganization({ apps: 1, devices: 30, users: 1, assignedFraction: 1 });
  const { totalPages } = (await call(sim, '/assignments', { token: org.token })).body;
  for (const pageIndex of [-1, totalPages, totalPages + 5]) {
    const res = await call(sim, '/assignments', { token: org.token, query: { pageIndex } });
    assert.deepEqual([res.status, res.body.errorNumber], [400, 9650], `pageIndex ${pageIndex}`);
  }
  assert.equal((await call(sim, '/assignments', { token: org.token, query: { pageIndex: totalPages - 1 } })).status, 200);
  assert.equal((await call(sim, '/users', { token: org.token, query: { pageIndex: 'two' } })).body.errorNumber, 9602);
});

test('page size is server-controlled, globally or per resource', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 3, devices: 20, users: 20 });
  sim.setPageSize(7, 'users');
  assert.equal((await call(sim, '/users', { token: org.token })).body.size, 7);
  assert.equal((await call(sim, '/assets', { token: org.token })).body.size, org.assets.length);
  sim.setPageSize(2);
  assert.equal((await call(sim, '/assets', { token: org.token })).body.size, 2);
  assert.throws(() => sim.setPageSize(0), RangeError);
  assert.throws(() => sim.setPageSize(5, 'licenses'), RangeError);
});

// ------------------------------------------------------------------ versionId and sinceVersionId

test('versionId changes when a data set changes and only then, per endpoint', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 2, devices: 10, users: 5 });
  const versions = async () => Object.fromEntries(await Promise.all(['assets', 'assignments', 'users']
    .map(async (r) => [r, (await call(sim, `/${r}`, { token: org.token })).body.versionId])));
  const v1 = await versions();
  assert.deepEqual(await versions(), v1);
  assert.match(v1.assets, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  const serialNumber = org.serialNumbers.find((s) => !org.hasAssignment({ adamId: org.assets[0].adamId, pricingParam: 'STDQ', serialNumber: s }));
  sim.purchase(org.token, org.assets[0].adamId, 1);
  sim.mutate(org.token, (o) => o.addAssignment({ adamId: o.assets[0].adamId, pricingParam: 'STDQ', serialNumber }));
  const v2 = await versions();
  assert.notEqual(v2.assignments, v1.assignments);
  assert.notEqual(v2.assets, v1.assets, 'counts changed');
  assert.equal(v2.users, v1.users);
  sim.mutate(org.token, (o) => o.updateUser(o.users[0].clientUserId, { email: 'new.address@example.com' }));
  const v3 = await versions();
  assert.notEqual(v3.users, v2.users);
  assert.equal(v3.assignments, v2.assignments);
  assert.deepEqual(org.versionIds, v3);
});

test('versionId changes mid-traversal when data changes between pages', async (t) => {
  const { sim } = await simulator(t, { pageSize: 20 });
  const org = sim.addOrganization({ apps: 2, devices: 50, users: 5 });
  const first = (await call(sim, '/assignments', { token: org.token, query: { pageIndex: 0 } })).body;
  assert.ok(first.nextPageIndex === 1);
  const removed = sim.mutate(org.token, (o) => {
    const a = o.assignments[0];
    o.removeAssignment(a);
    return a;
  });
  const second = (await call(sim, '/assignments', { token: org.token, query: { pageIndex: 1 } })).body;
  assert.notEqual(second.versionId, first.versionId);
  assert.ok(!org.hasAssignment(removed));
});

test('sinceVersionId returns only the records changed since, paged, with zero records not being an error', async (t) => {
  const { sim } = await simulator(t, { pageSize: 3 });
  const org = sim.addOrganization({ apps: 1, freeApps: 1, devices: 20, users: 5, assignedFraction: 0.2 });
  const { versionId: v1 } = (await call(sim, '/assignments', { token: org.token })).body;

  const empty = (await call(sim, '/assignments', { token: org.token, query: { sinceVersionId: v1 } })).body;
  assert.deepEqual([empty.assignments, empty.size, empty.totalPages, empty.currentPageIndex, 'nextPageIndex' in empty], [[], 0, 1, 0, false]);
  assert.equal(empty.versionId, v1);

  const adamId = org.assets[0].adamId;
  const free = org.serialNumbers.filter((s) => !org.hasAssignment({ adamId, pricingParam: 'STDQ', serialNumber: s })).slice(0, 5);
  const gone = org.assignments[0];
  sim.mutate(org.token, (o) => {
    for (const serialNumber of free) o.addAssignment({ adamId, pricingParam: 'STDQ', serialNumber });
    o.removeAssignment(gone);
  });
  const pages = await allPages(sim, '/assignments', { token: org.token, query: { sinceVersionId: v1 } });
  assert.equal(pages.length, 2);
  const delta = pages.flatMap((p) => p.assignments);
  assert.deepEqual(delta.map((a) => a.serialNumber), free, 'the added assignments only; the removed one leaves no tombstone');
  const v2 = pages[0].versionId;
  assert.notEqual(v2, v1);
  assert.deepEqual((await call(sim, '/assignments', { token: org.token, query: { sinceVersionId: v2 } })).body.assignments, []);
  // The old versionId keeps working.
  assert.equal((await call(sim, '/assignments', { token: org.token, query: { sinceVersionId: v1 } })).body.size, 3);
});

test('an unknown sinceVersionId, or one of another endpoint, is 400 / 9721', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 5, users: 5 });
  const assetsVersion = (await call(sim, '/assets', { token: org.token })).body.versionId;
  for (const [path, sinceVersionId] of [['/assignments', 'not-a-version'], ['/users', '00000000-0000-4000-8000-000000000000'], ['/assignments', assetsVersion]]) {
    const res = await call(sim, path, { token: org.token, query: { sinceVersionId } });
    assert.deepEqual([res.status, res.body.errorNumber], [400, 9721], `${path} ${sinceVersionId}`);
  }
});

test('a users delta shows retired and deleted users with their status; activeOnly and retiredOnly filter', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 20 });
  const { versionId } = (await call(sim, '/users', { token: org.token })).body;
  const [a, b] = org.users.filter((u) => u.status === 'Associated');
  sim.mutate(org.token, (o) => {
    o.updateUser(a.clientUserId, { status: 'Retired' });
    o.updateUser(b.clientUserId, { status: 'Deleted' });
  });
  const delta = (await call(sim, '/users', { token: org.token, query: { sinceVersionId: versionId } })).body.users;
  assert.deepEqual(delta.map((u) => [u.clientUserId, u.status]), [[a.clientUserId, 'Retired'], [b.clientUserId, 'Deleted']]);
  const active = (await call(sim, '/users', { token: org.token, query: { activeOnly: true } })).body.users;
  assert.ok(active.length > 0 && active.every((u) => u.status === 'Registered' || u.status === 'Associated'));
  const retired = (await call(sim, '/users', { token: org.token, query: { retiredOnly: true } })).body.users;
  assert.ok(retired.some((u) => u.clientUserId === a.clientUserId));
  assert.ok(retired.every((u) => u.status === 'Retired'));
  assert.deepEqual((await call(sim, '/users', { token: org.token, query: { clientUserId: b.clientUserId } })).body.users.map((u) => u.status), ['Deleted']);
  assert.equal((await call(sim, '/users', { token: org.token, query: { activeOnly: true, retiredOnly: true } })).body.errorNumber, 9602);
});

test('users look like Apple\'s: Registered have an inviteCode, Associated an idHash', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 40 });
  const users = (await call(sim, '/users', { token: org.token })).body.users;
  assert.equal(users.length, 40);
  for (const u of users) {
    assert.match(u.clientUserId, /^[0-9a-f-]{36}$/);
    assert.match(u.email, /^[a-z]+\.[a-z]+\d+@.+\.example\.com$/);
    if (u.status === 'Registered') assert.match(u.inviteCode, /^[0-9a-f]{32}$/);
    if (u.status === 'Associated') assert.match(u.idHash, /^[A-Za-z0-9+/]{27}=$/);
  }
  assert.deepEqual(new Set(users.map((u) => u.status)), new Set(['Associated', 'Registered', 'Retired']));
});

test('Get Assignments filters by asset, target and pricing, adds user state on request, and can hide inactive users', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 3, books: 1, devices: 30, users: 60, assignedFraction: 0.8 });
  const get = async (query) => (await call(sim, '/assignments', { token: org.token, query })).body.assignments;
  const [firstApp] = org.assets;
  assert.deepEqual(await get({ adamId: firstApp.adamId }), org.assignments.filter((a) => a.adamId === firstApp.adamId));
  const serialNumber = org.assignments.find((a) => a.serialNumber).serialNumber;
  assert.deepEqual(await get({ serialNumber }), org.assignments.filter((a) => a.serialNumber === serialNumber));
  const userAssignment = org.assignments.find((a) => a.clientUserId);
  assert.deepEqual(await get({ clientUserId: userAssignment.clientUserId }), org.assignmentsOf({ clientUserId: userAssignment.clientUserId }));
  assert.deepEqual(await get({ pricingParam: 'PLUS' }), []);

  const withState = await get({ includeUserState: true });
  for (const a of withState) {
    if (a.serialNumber) {
      assert.equal(a.userStatus, undefined);
    } else {
      const user = org.user(a.clientUserId);
      assert.equal(a.userStatus, user.status);
      assert.equal(a.idHash, user.idHash);
    }
  }
  const retiredHolders = org.assignments.filter((a) => a.clientUserId && org.user(a.clientUserId).status === 'Retired');
  assert.ok(retiredHolders.length > 0, 'the seed should give a retired user a book');
  const active = await get({ excludeInactiveUsers: true });
  assert.equal(active.length, org.assignments.length - retiredHolders.length);
  const book = org.assets.find((a) => a.productType === 'Book');
  assert.equal(book.retiredCount, retiredHolders.filter((a) => a.adamId === book.adamId).length);
});

// ------------------------------------------------------------------ HTTP-level errors

test('an unknown path is 404 JSON; a wrong method 405 / 9726', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  const missing = await call(sim, '/mdm/v2/licenses', { token: org.token });
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get('content-type'), 'application/json;charset=UTF-8');
  assert.equal(typeof missing.body.errorMessage, 'string');
  for (const [path, method] of [['/assets', 'POST'], ['/assets/associate', 'GET'], ['/service/config', 'DELETE'], ['/client/config', 'PUT']]) {
    const res = await call(sim, path, { token: org.token, method, body: method === 'GET' ? undefined : {} });
    assert.deepEqual([res.status, res.body.errorNumber], [405, 9726], `${method} ${path}`);
  }
});

test('a POST that is not application/json is 415 / 9727; malformed JSON or a non-object body is 400 / 9602', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  const text = await call(sim, '/client/config', { token: org.token, method: 'POST', body: '{}', headers: { 'Content-Type': 'text/plain' } });
  assert.deepEqual([text.status, text.body.errorNumber], [415, 9727]);
  const charset = await call(sim, '/client/config', { token: org.token, method: 'POST', body: '{}', headers: { 'Content-Type': 'application/json; charset=utf-8' } });
  assert.equal(charset.status, 200);
  for (const body of ['{"mdmInfo": ', '[]', '42', '']) {
    const res = await call(sim, '/client/config', { token: org.token, method: 'POST', body, headers: { 'Content-Type': 'application/json' } });
    assert.deepEqual([res.status, res.body.errorNumber], [400, 9602], body);
  }
});

// ------------------------------------------------------------------ faults

test('a 503 fault with Retry-After (delta-seconds or HTTP-date) answers once, then the endpoint recovers', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  sim.injectFault({ status: 503, retryAfter: '120' });
  const first = await call(sim, '/assets', { token: org.token });
  assert.deepEqual([first.status, first.headers.get('retry-after'), first.body.errorNumber], [503, '120', 9729]);
  assert.equal((await call(sim, '/assets', { token: org.token })).status, 200);
  const date = 'Wed, 21 Oct 2026 07:28:00 GMT';
  sim.injectFault({ status: 503, retryAfter: date, count: 2 });
  for (let i = 0; i < 2; i++) assert.equal((await call(sim, '/users', { token: org.token })).headers.get('retry-after'), date);
  assert.equal((await call(sim, '/users', { token: org.token })).status, 200);
});

test('status faults carry Apple\'s error bodies: 429 / 9646, 500 / 9603, and 9622 answered with HTTP 200', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  sim.injectFault({ status: 429, errorNumber: 9646 });
  sim.injectFault({ status: 500 });
  sim.injectFault({ status: 200, errorNumber: 9622 });
  const answers = [];
  for (let i = 0; i < 3; i++) {
    const { status, body } = await call(sim, '/client/config', { token: org.token });
    answers.push([status, body.errorNumber, typeof body.errorMessage]);
  }
  assert.deepEqual(answers, [[429, 9646, 'string'], [500, 9603, 'string'], [200, 9622, 'string']]);
  assert.deepEqual(sim.requestLog.map((e) => [e.status, e.errorNumber]), [[429, 9646], [500, 9603], [200, 9622]]);
});

test('faults match by token, path (with or without /mdm/v2) and method', async (t) => {
  const { sim } = await simulator(t);
  const a = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  const b = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  const handle = sim.injectFault({ token: b.token, path: '/assignments', method: 'GET', status: 500, count: Infinity });
  assert.equal((await call(sim, '/assignments', { token: a.token })).status, 200);
  assert.equal((await call(sim, '/assets', { token: b.token })).status, 200);
  assert.equal((await call(sim, '/assignments', { token: b.token })).status, 500);
  assert.equal((await call(sim, '/assignments', { token: b.token })).status, 500);
  handle.cancel();
  assert.equal((await call(sim, '/assignments', { token: b.token })).status, 200);
  sim.injectFault({ path: '/mdm/v2/users', status: 503 });
  sim.clearFaults();
  assert.equal((await call(sim, '/users', { token: a.token })).status, 200);
  assert.throws(() => sim.injectFault({ count: 1 }), TypeError);
  assert.throws(() => sim.injectFault({ status: 99 }), RangeError);
});

test('a delay fault slows one response; latency slows every response; a drop fault destroys the connection', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  sim.injectFault({ delayMs: 120 });
  let started = performance.now();
  assert.equal((await call(sim, '/assets', { token: org.token })).status, 200);
  assert.ok(performance.now() - started >= 110, 'delayed');
  sim.setLatency(60);
  started = performance.now();
  await call(sim, '/service/config');
  assert.ok(performance.now() - started >= 50, 'latency');
  sim.setLatency(0);
  sim.injectFault({ drop: true, path: '/users' });
  await assert.rejects(call(sim, '/users', { token: org.token }), TypeError);
  const dropped = sim.requestLog.at(-1);
  assert.deepEqual([dropped.path, dropped.status, dropped.dropped], ['/mdm/v2/users', null, true]);
  assert.equal((await call(sim, '/users', { token: org.token })).status, 200);
});

// ------------------------------------------------------------------ rate limit and the request log

test('more than maxRequestPerSecond requests of one token within 1000 ms get 429 / 9646, logged', async (t) => {
  const { sim, clock } = await simulator(t, { rateLimit: true });
  const a = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  const b = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  const statuses = [];
  for (let i = 0; i < 16; i++) {
    clock.t = START + i * 50; // 16 requests within 750 ms
    statuses.push((await call(sim, '/assets', { token: a.token })).status);
  }
  assert.deepEqual(statuses, [...Array(15).fill(200), 429]);
  assert.deepEqual(sim.requestLog.filter((e) => e.status === 429).map((e) => e.errorNumber), [9646]);
  assert.equal((await call(sim, '/assets', { token: b.token })).status, 200, 'per sToken');
  assert.equal((await call(sim, '/service/config')).status, 200, 'service config has no token');
  clock.t = START + 2000;
  assert.equal((await call(sim, '/assets', { token: a.token })).status, 200, 'the window moved on');
});

test('the request log records time, method, path, query, bearer, status, errorNumber and answer time; clearLog empties it', async (t) => {
  const { sim, clock } = await simulator(t);
  const org = sim.addOrganization({ apps: 1, devices: 1, users: 1 });
  clock.t = START + 5;
  await call(sim, '/assignments', { token: org.token, query: { adamId: '123', pageIndex: 0 } });
  await call(sim, '/assets', { headers: { Authorization: 'Token abc' } });
  assert.deepEqual(sim.requestLog, [
    { at: START + 5, method: 'GET', path: '/mdm/v2/assignments', query: { adamId: '123', pageIndex: '0' }, token: org.token, status: 200, errorNumber: null, answeredAt: START + 5 },
    { at: START + 5, method: 'GET', path: '/mdm/v2/assets', query: {}, token: null, status: 401, errorNumber: 9722, answeredAt: START + 5 },
  ]);
  sim.clearLog();
  assert.deepEqual(sim.requestLog, []);
});

// ------------------------------------------------------------------ generated data

test('the same seed generates the same organizations; another seed different ones', async (t) => {
  const shape = (org) => JSON.stringify([org.orgName, org.uId, org.assets, org.assignments, org.users, org.serialNumbers]);
  const { sim: one } = await simulator(t, { seed: 7 });
  const { sim: two } = await simulator(t, { seed: 7 });
  const { sim: three } = await simulator(t, { seed: 8 });
  const opts = { apps: 5, devices: 50, users: 10 };
  assert.equal(shape(one.addOrganization(opts)), shape(two.addOrganization(opts)));
  assert.equal(shape(one.addOrganization(opts)), shape(two.addOrganization(opts)), 'the second organization too');
  assert.notEqual(shape(one.addOrganization(opts)), shape(three.addOrganization(opts)));
});

test('generated serial numbers, adamIds and counts look real and respect the options', async (t) => {
  const { sim } = await simulator(t);
  const org = sim.addOrganization({ orgName: 'ORG1', locationName: 'Main', apps: 12, freeApps: 1, books: 2, devices: 300, users: 50, assignedFraction: 0.5 });
  assert.equal(org.serialNumbers.length, 300);
  assert.equal(new Set(org.serialNumbers).size, 300);
  for (const s of org.serialNumbers) assert.match(s, /^[0-9A-HJ-NP-Z]{12}$/);
  assert.equal(org.users.length, 50);
  assert.equal(org.assets.filter((a) => a.productType === 'App').length, 12);
  const deviceApps = org.assets.filter((a) => a.deviceAssignable);
  const deviceAssignments = org.assignments.filter((a) => a.serialNumber).length;
  const share = deviceAssignments / (deviceApps.length * 300);
  assert.ok(share > 0.4 && share < 0.6, `device share ${share}`);
  for (const a of org.assets) {
    assert.equal(a.assignedCount, org.assignments.filter((x) => x.adamId === a.adamId && x.pricingParam === a.pricingParam).length);
    assert.ok(a.availableCount >= 0);
  }
  assert.equal(org.locationName, 'Main');
});
