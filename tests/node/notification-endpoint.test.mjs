// The Node notification endpoint (host-shim/node) over real loopback HTTP, with a fake driver.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createNotificationHandler, startNotificationServer } from '../../host-shim/node/index.js';

const SECRET = 'Bearer 6f1c0d2e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d';
const BODY = JSON.stringify({ notification: {}, notificationId: 'n-1', notificationType: 'TEST_NOTIFICATION', uId: '2049025000431439' });

/** Records every call; answers `status` (a number, or a function of the call that may throw). */
function fakeDriver(status = 200) {
  const calls = [];
  return {
    calls,
    notification(accountId, authorization, body) {
      const call = { accountId, authorization, body };
      calls.push(call);
      return typeof status === 'function' ? status(call) : status;
    },
  };
}

/** A notification server on loopback around `driver`, closed after the test. */
async function serve(t, driver, options = {}) {
  const errors = [];
  const server = await startNotificationServer({ driver, onError: (error) => errors.push(error), ...options });
  t.after(() => server.close());
  return { server, errors };
}

/**
 * One HTTP request with node:http (full control over headers and framing). `body` is sent in `chunks` pieces
 * without Content-Length when `chunked`. Resolves { status, headers, body }.
 */
function send(url, { method = 'POST', headers = {}, body, chunked = false } = {}) {
  return new Promise((resolve, reject) => {
    const allHeaders = { 'Content-Type': 'application/json', ...headers };
    if (body !== undefined && !chunked) allHeaders['Content-Length'] = Buffer.byteLength(body);
    const req = http.request(url, { method, headers: allHeaders, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    if (body !== undefined && chunked) {
      const half = Math.floor(body.length / 2);
      req.write(body.slice(0, half));
      req.end(body.slice(half));
    } else {
      req.end(body);
    }
  });
}

test('POST <path>/<accountId> hands account, Authorization and raw body to the driver and answers its status, empty', async (t) => {
  let status = 200;
  const driver = fakeDriver(() => status);
  const { server, errors } = await serve(t, driver);
  assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/apple\/notifications$/);

  const ok = await send(`${server.url}/hq`, { headers: { Authorization: SECRET }, body: BODY });
  status = 401;
  const refused = await send(`${server.url}/hq`, { headers: { Authorization: 'Bearer wrong' }, body: BODY });
  assert.deepEqual([ok.status, ok.body, refused.status, refused.body], [200, '', 401, '']);
  assert.equal(ok.headers['content-length'], '0');
  assert.deepEqual(driver.calls, [
    { accountId: 'hq', authorization: SECRET, body: BODY },
    { accountId: 'hq', authorization: 'Bearer wrong', body: BODY },
  ]);
  assert.deepEqual(errors, []);
});

test('a missing Authorization header reaches the driver as null; a chunked body arrives whole', async (t) => {
  const driver = fakeDriver(401);
  const { server } = await serve(t, driver);
  const res = await send(`${server.url}/hq`, { body: BODY, chunked: true });
  assert.equal(res.status, 401);
  assert.deepEqual(driver.calls, [{ accountId: 'hq', authorization: null, body: BODY }]);
});

test('the account id is URL-decoded, the query ignored; malformed percent-encoding is 400', async (t) => {
  const driver = fakeDriver();
  const { server } = await serve(t, driver);
  const statuses = [];
  for (const suffix of ['/h%C3%A9%20q%2F1', '/plain?attempt=2', '/%E0%A4%A', '/%']) {
    statuses.push((await send(server.url + suffix, { headers: { Authorization: SECRET }, body: BODY })).status);
  }
  assert.deepEqual(statuses, [200, 200, 400, 400]);
  assert.deepEqual(driver.calls.map((c) => c.accountId), ['hé q/1', 'plain']);
});

test('other paths are 404 and other methods 405, without reaching the driver', async (t) => {
  const driver = fakeDriver();
  const { server } = await serve(t, driver);
  const origin = new URL(server.url).origin;
  const notFound = [];
  for (const path of ['/', '/apple/notifications', '/apple/notifications/', '/apple/notificationsX/hq', '/apple/notifications/hq/extra', '/other/hq']) {
    notFound.push([path, (await send(origin + path, { body: BODY })).status]);
  }
  assert.deepEqual(notFound.filter(([, status]) => status !== 404), []);

  for (const method of ['GET', 'PUT', 'DELETE']) {
    const res = await send(`${server.url}/hq`, { method, body: method === 'GET' ? undefined : BODY });
    assert.equal(res.status, 405, method);
    assert.equal(res.headers.allow, 'POST');
  }
  assert.deepEqual(driver.calls, []);
});

test('a body over maxBodyBytes is 413, declared or streamed, and never reaches the driver', async (t) => {
  const driver = fakeDriver();
  const { server } = await serve(t, driver, { maxBodyBytes: 64 });
  const exact = 'x'.repeat(64);
  const over = 'x'.repeat(65);
  assert.equal((await send(`${server.url}/hq`, { body: over })).status, 413);
  assert.equal((await send(`${server.url}/hq`, { body: 'y'.repeat(10_000), chunked: true })).status, 413);
  assert.equal((await send(`${server.url}/hq`, { body: exact })).status, 200);
  assert.deepEqual(driver.calls.map((c) => c.body), [exact]);
});

test('a custom path (trailing slash tolerated) and an IPv6 loopback host', async (t) => {
  const driver = fakeDriver(202);
  let server;
  try {
    ({ server } = await serve(t, driver, { path: '/hooks/vpp/', host: '::1' }));
  } catch (error) {
    t.skip(`no IPv6 loopback: ${error.message}`);
    return;
  }
  assert.match(server.url, /^http:\/\/\[::1\]:\d+\/hooks\/vpp$/);
  assert.equal((await send(`${server.url}/a1`, { body: BODY })).status, 202);
  assert.deepEqual(driver.calls.map((c) => c.accountId), ['a1']);
});

test('a throwing driver: 404 for UNKNOWN_ACCOUNT, 400 for another engine error, 503 otherwise; onError gets it', async (t) => {
  const failures = {
    gone: Object.assign(new Error('unknown account "gone"'), { code: 'UNKNOWN_ACCOUNT' }),
    bad: Object.assign(new Error('bad input'), { code: 'INVALID_INPUT' }),
    stopped: new Error('Driver is stopped'),
  };
  const driver = fakeDriver(({ accountId }) => {
    throw failures[accountId];
  });
  const { server, errors } = await serve(t, driver);
  const statuses = [];
  for (const id of ['gone', 'bad', 'stopped']) statuses.push((await send(`${server.url}/${id}`, { body: BODY })).status);
  assert.deepEqual(statuses, [404, 400, 503]);
  assert.deepEqual(errors, [failures.gone, failures.bad, failures.stopped]);
});

test('a driver answer that is not an HTTP status is answered 500 and reported', async (t) => {
  const { server, errors } = await serve(t, fakeDriver(() => undefined));
  assert.equal((await send(`${server.url}/hq`, { body: BODY })).status, 500);
  assert.match(String(errors[0]), /not an HTTP status/);
});

test('nothing the endpoint writes to the console or onError contains the Authorization header', async (t) => {
  const printed = [];
  for (const name of ['log', 'info', 'warn', 'error', 'debug']) t.mock.method(console, name, (...args) => printed.push(args));
  const driver = fakeDriver(({ accountId }) => {
    if (accountId === 'boom') throw new Error('engine bug');
    return 200;
  });
  // The default onError (console.error) is in use here.
  const server = await startNotificationServer({ driver, maxBodyBytes: 1024 });
  t.after(() => server.close());
  for (const [suffix, body] of [['/hq', BODY], ['/boom', BODY], ['/hq', 'z'.repeat(2048)], ['/%zz', BODY]]) {
    await send(server.url + suffix, { headers: { Authorization: SECRET }, body });
  }
  assert.equal(printed.length, 1, 'the driver failure is reported once');
  assert.ok(!JSON.stringify(printed, (k, v) => (v instanceof Error ? `${v.stack} ${JSON.stringify(v)}` : v)).includes(SECRET.slice(7)));
});

test('as router middleware: next() for other paths, originalUrl honoured, a body parsed before is used', async (t) => {
  const driver = fakeDriver();
  const handler = createNotificationHandler({ driver, onError: (e) => assert.fail(e) });
  const passed = [];
  // A minimal Express stand-in: mounted at /apple, it strips the mount path from req.url like Express does, and
  // a JSON body parser runs first for requests that ask for it.
  const server = http.createServer((req, res) => {
    req.originalUrl = req.url;
    req.url = req.url.replace(/^\/apple/, '') || '/';
    const next = () => {
      passed.push(req.originalUrl);
      res.writeHead(418).end();
    };
    if (req.headers['x-parse'] !== 'json') return handler(req, res, next);
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      req.body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      handler(req, res, next);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  const origin = `http://127.0.0.1:${server.address().port}`;

  assert.equal((await send(`${origin}/apple/notifications/hq`, { body: BODY })).status, 200);
  assert.equal((await send(`${origin}/apple/notifications/parsed`, { body: BODY, headers: { 'X-Parse': 'json' } })).status, 200);
  assert.equal((await send(`${origin}/apple/elsewhere`, { body: BODY })).status, 418);
  assert.deepEqual(passed, ['/apple/elsewhere']);
  assert.deepEqual(driver.calls.map((c) => [c.accountId, JSON.parse(c.body)]), [['hq', JSON.parse(BODY)], ['parsed', JSON.parse(BODY)]]);
});

test('close() stops listening and resolves; a second close() resolves too', async () => {
  const server = await startNotificationServer({ driver: fakeDriver() });
  assert.equal((await send(`${server.url}/hq`, { body: BODY })).status, 200);
  await server.close();
  await server.close();
  await assert.rejects(send(`${server.url}/hq`, { body: BODY }), { code: 'ECONNREFUSED' });
});

test('bad options are rejected up front', () => {
  assert.throws(() => createNotificationHandler({}), /driver/);
  assert.throws(() => createNotificationHandler({ driver: fakeDriver(), path: 'no-slash' }), /path/);
  assert.throws(() => createNotificationHandler({ driver: fakeDriver(), maxBodyBytes: -1 }), /maxBodyBytes/);
});
