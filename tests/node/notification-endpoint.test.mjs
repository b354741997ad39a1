// The Node notification endpoint (host-shim/node) over real loopback HTTP, with a fake driver.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { createNotificationHandler, startNotificationServer } from '../../host-shim/node/index.js';

const TOKEN = '6f1c0d2e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d';
const SECRET = `Bearer ${TOKEN}`;
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
  const server = await startNotificationServer({ driver, authToken: TOKEN, onError: (error) => errors.push(error), ...options });
  t.after(() => server.close());
  return { server, errors };
}

/**
 * One HTTP request with node:http (full control over headers and framing), with the right bearer unless `headers`
 * name another Authorization (null: none). `body` is sent in two pieces without Content-Length when `chunked`.
 * Resolves { status, headers, body }.
 */
function send(url, { method = 'POST', headers = {}, body, chunked = false } = {}) {
  return new Promise((resolve, reject) => {
    const allHeaders = { 'Content-Type': 'application/json', Authorization: SECRET, ...headers };
    if (allHeaders.Authorization === null) delete allHeaders.Authorization;
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

  const ok = await send(`${server.url}/hq`, { body: BODY });
  status = 404; // the engine's answer for an account it does not know
  const unknown = await send(`${server.url}/other`, { body: BODY });
  assert.deepEqual([ok.status, ok.body, unknown.status, unknown.body], [200, '', 404, '']);
  assert.equal(ok.headers['content-length'], '0');
  assert.deepEqual(driver.calls, [
    { accountId: 'hq', authorization: SECRET, body: BODY },
    { accountId: 'other', authorization: SECRET, body: BODY },
  ]);
  assert.deepEqual(errors, []);
});

test('a wrong or missing bearer is answered 401 by the endpoint, without reaching the driver; a chunked body arrives whole', async (t) => {
  const driver = fakeDriver(200);
  const { server, errors } = await serve(t, driver);
  const wrong = [null, '', TOKEN, 'Bearer', 'Bearer ', `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}0`, `Basic ${TOKEN}`,
    `bearer ${TOKEN}`, `Bearer  ${TOKEN}`, 'Bearer wrong'];
  for (const authorization of wrong) {
    const res = await send(`${server.url}/hq`, { headers: { Authorization: authorization }, body: BODY });
    assert.deepEqual([res.status, res.headers['www-authenticate'], res.headers.connection], [401, 'Bearer', 'close'], String(authorization));
  }
  assert.deepEqual(driver.calls, []);
  const res = await send(`${server.url}/hq`, { body: BODY, chunked: true });
  assert.equal(res.status, 200);
  assert.deepEqual(driver.calls, [{ accountId: 'hq', authorization: SECRET, body: BODY }]);
  assert.deepEqual(errors, []);
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
  const server = await startNotificationServer({ driver, authToken: TOKEN, maxBodyBytes: 1024 });
  t.after(() => server.close());
  for (const [suffix, body] of [['/hq', BODY], ['/boom', BODY], ['/hq', 'z'.repeat(2048)], ['/%zz', BODY]]) {
    await send(server.url + suffix, { headers: { Authorization: SECRET }, body });
  }
  assert.equal(printed.length, 1, 'the driver failure is reported once');
  assert.ok(!JSON.stringify(printed, (k, v) => (v instanceof Error ? `${v.stack} ${JSON.stringify(v)}` : v)).includes(SECRET.slice(7)));
});

test('as router middleware: next() for other paths, originalUrl honoured, a body parsed before is used', async (t) => {
  const driver = fakeDriver();
  const handler = createNotificationHandler({ driver, authToken: TOKEN, onError: (e) => assert.fail(e) });
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
  const server = await startNotificationServer({ driver: fakeDriver(), authToken: TOKEN });
  assert.equal((await send(`${server.url}/hq`, { body: BODY })).status, 200);
  await server.close();
  await server.close();
  await assert.rejects(send(`${server.url}/hq`, { body: BODY }), { code: 'ECONNREFUSED' });
});

test('bad options are rejected up front', async () => {
  assert.throws(() => createNotificationHandler({ authToken: TOKEN }), /driver/);
  assert.throws(() => createNotificationHandler({ driver: fakeDriver() }), /authToken/);
  assert.throws(() => createNotificationHandler({ driver: fakeDriver(), authToken: '' }), /authToken/);
  const options = { driver: fakeDriver(), authToken: TOKEN };
  assert.throws(() => createNotificationHandler({ ...options, path: 'no-slash' }), /path/);
  assert.throws(() => createNotificationHandler({ ...options, maxBodyBytes: -1 }), /maxBodyBytes/);
  assert.throws(() => createNotificationHandler({ ...options, bodyTimeoutMs: 0 }), /bodyTimeoutMs/);
  assert.throws(() => createNotificationHandler({ ...options, maxConcurrentRequests: 0 }), /maxConcurrentRequests/);
  await assert.rejects(startNotificationServer({ ...options, headersTimeoutMs: -1 }), /headersTimeoutMs/);
  await assert.rejects(startNotificationServer({ ...options, maxConnections: 0 }), /maxConnections/);
});

/** A raw HTTP/1.1 connection to the server of `url`: what it received (`text()`), and when the server closed it. */
function rawConnection(url) {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  let text = '';
  socket.setEncoding('latin1');
  socket.on('data', (data) => {
    text += data;
  });
  socket.on('error', () => {}); // a reset after the server's answer is expected
  socket.setTimeout(8000, () => socket.destroy()); // a server that never answers does not hold the test forever
  const closed = new Promise((resolve) => socket.on('close', () => resolve(Date.now())));
  return { socket, text: () => text, closed };
}

/** A POST's request line and headers, for `rawConnection`. */
function postHead(url, { authorization = SECRET, contentLength }) {
  const { pathname } = new URL(url);
  return `POST ${pathname} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n` +
    `${authorization === null ? '' : `Authorization: ${authorization}\r\n`}Content-Length: ${contentLength}\r\n\r\n`;
}

/** Resolves once `predicate()` holds; rejects after `ms`. */
async function within(ms, label, predicate) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`${label}: not within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

const MiB = 1 << 20;

test('without the bearer, 401 comes from the headers and the connection is closed: the body is never waited for', { timeout: 20_000 }, async (t) => {
  const driver = fakeDriver();
  const { server, errors } = await serve(t, driver);
  for (const authorization of [null, 'Bearer wrong']) {
    const conn = rawConnection(`${server.url}/hq`);
    conn.socket.write(postHead(`${server.url}/hq`, { authorization, contentLength: MiB }));
    conn.socket.write(Buffer.alloc(64 * 1024, 'x')); // and never the rest
    await within(2000, `401 for ${authorization}`, () => conn.text().startsWith('HTTP/1.1 401'));
    assert.match(conn.text(), /\r\nconnection: close\r\n/i);
    await Promise.race([conn.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('not closed')), 2000))]);
  }
  assert.deepEqual(driver.calls, []);
  assert.deepEqual(errors, [], 'refusing a client without the secret is not an error');
});

test('200 unauthenticated connections each sending 1 MiB are answered 401 and closed; the server reads almost none of it', { timeout: 20_000 }, async (t) => {
  const driver = fakeDriver();
  const server = http.createServer(createNotificationHandler({ driver, authToken: TOKEN, onError: (e) => assert.fail(e) }));
  const serverSockets = [];
  server.on('connection', (socket) => serverSockets.push(socket));
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => {
    server.closeAllConnections();
    server.close(resolve);
  }));
  const url = `http://127.0.0.1:${server.address().port}/apple/notifications/hq`;
  const body = Buffer.alloc(MiB, 'x');
  const connections = Array.from({ length: 200 }, (_, i) => {
    const conn = rawConnection(url);
    conn.socket.write(postHead(url, { authorization: i % 2 === 0 ? null : `Bearer ${'0'.repeat(64)}`, contentLength: MiB }));
    conn.socket.write(body);
    return conn;
  });
  await Promise.race([
    Promise.all(connections.map((c) => c.closed)),
    new Promise((_, reject) => setTimeout(() => reject(new Error('connections still open after 10 s')), 10_000)),
  ]);
  const answered = connections.filter((c) => c.text().startsWith('HTTP/1.1 401')).length;
  const read = serverSockets.reduce((sum, s) => sum + s.bytesRead, 0);
  const most = Math.max(...serverSockets.map((s) => s.bytesRead));
  t.diagnostic(`${answered} of 200 saw the 401 before the reset; the server read ${(read / MiB).toFixed(1)} MiB of 200 MiB sent, at most ${(most / 1024).toFixed(0)} KiB of one connection`);
  assert.ok(answered >= 190, `${answered} of 200 connections got their 401`);
  // What Node had read from a socket when the 401 was sent (a chunk or two), discarded: no body is read on.
  assert.ok(most < MiB / 4, `the server read ${most} bytes of one connection`);
  assert.ok(read < 50 * MiB, `the server read ${read} bytes`);
  assert.deepEqual(driver.calls, []);
});

test('a body sent too slowly (slow loris) is cut at bodyTimeoutMs with 408, reported once', { timeout: 20_000 }, async (t) => {
  const driver = fakeDriver();
  const { server, errors } = await serve(t, driver, { bodyTimeoutMs: 300 });
  const conn = rawConnection(`${server.url}/hq`);
  const started = Date.now();
  conn.socket.write(postHead(`${server.url}/hq`, { contentLength: 100 }));
  const drip = setInterval(() => conn.socket.writable && conn.socket.write('x'), 50);
  t.after(() => clearInterval(drip));
  const closedAt = await Promise.race([conn.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('not cut')), 5000))]);
  clearInterval(drip);
  assert.ok(conn.text().startsWith('HTTP/1.1 408'), conn.text());
  assert.ok(closedAt - started >= 250 && closedAt - started < 2000, `cut after ${closedAt - started} ms`);
  assert.deepEqual(errors.map((e) => e.code), ['BODY_TIMEOUT']);
  assert.deepEqual(driver.calls, []);
});

test('headers sent too slowly are cut at headersTimeoutMs with 408, reported once', { timeout: 20_000 }, async (t) => {
  const driver = fakeDriver();
  const { server, errors } = await serve(t, driver, { headersTimeoutMs: 300 });
  const conn = rawConnection(`${server.url}/hq`);
  const started = Date.now();
  conn.socket.write(`POST ${new URL(server.url).pathname}/hq HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: `);
  const drip = setInterval(() => conn.socket.writable && conn.socket.write('y'), 50);
  t.after(() => clearInterval(drip));
  const closedAt = await Promise.race([conn.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('not cut')), 5000))]);
  clearInterval(drip);
  assert.ok(conn.text().startsWith('HTTP/1.1 408'), conn.text());
  assert.ok(closedAt - started >= 250 && closedAt - started < 2000, `cut after ${closedAt - started} ms`);
  assert.deepEqual(errors.map((e) => e.code), ['ERR_HTTP_REQUEST_TIMEOUT']);
  assert.deepEqual(driver.calls, []);
});

test('beyond maxConcurrentRequests requests in progress, 503 at once; a client without the secret still gets 401', { timeout: 20_000 }, async (t) => {
  const driver = fakeDriver();
  const { server, errors } = await serve(t, driver, { maxConcurrentRequests: 2 });
  const url = `${server.url}/hq`;
  const held = [rawConnection(url), rawConnection(url)];
  for (const conn of held) conn.socket.write(`${postHead(url, { contentLength: 10 })}{"a":`);
  // Both are in the handler, reading their bodies, once a third request is refused.
  let third;
  for (let attempt = 0; attempt < 40; attempt += 1) {
    third = await send(url, { body: BODY });
    if (third.status === 503) break;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  assert.deepEqual([third.status, third.headers['retry-after'], third.headers.connection], [503, '1', 'close']);
  assert.equal((await send(url, { headers: { Authorization: 'Bearer wrong' }, body: BODY })).status, 401);
  for (const conn of held) conn.socket.write('1}   ');
  await within(2000, 'the held requests answered', () => held.every((c) => c.text().startsWith('HTTP/1.1 200')));
  assert.equal((await send(url, { body: BODY })).status, 200, 'below the cap again');
  assert.equal(driver.calls.length, 2 + (third.status === 503 ? 0 : 1) + 1);
  for (const conn of held) conn.socket.destroy();
  assert.deepEqual(errors, []);
});

test('the default onError prints one line per aborted connection, without a stack', { timeout: 20_000 }, async (t) => {
  const printed = [];
  t.mock.method(console, 'error', (...args) => printed.push(args));
  const server = await startNotificationServer({ driver: fakeDriver(), authToken: TOKEN, bodyTimeoutMs: 300 });
  t.after(() => server.close());
  const url = `${server.url}/hq`;
  const aborted = Array.from({ length: 5 }, () => rawConnection(url));
  for (const conn of aborted) conn.socket.write(`${postHead(url, { contentLength: 1000 })}{"partial":`);
  const stalled = rawConnection(url);
  stalled.socket.write(`${postHead(url, { contentLength: 1000 })}{"stalled":`);
  await new Promise((resolve) => setTimeout(resolve, 100));
  for (const [i, conn] of aborted.entries()) {
    if (i % 2 === 0) conn.socket.resetAndDestroy();
    else conn.socket.destroy();
  }
  await within(3000, 'six lines', () => printed.length >= 6);
  await new Promise((resolve) => setTimeout(resolve, 400));
  const lines = printed.map((args) => args.map(String).join(' '));
  assert.equal(lines.length, 6, lines.join('\n'));
  for (const line of lines) {
    assert.ok(!line.includes('\n') && !/\bat .+:\d+:\d+/.test(line), `one line, no stack: ${line}`);
    assert.match(line, /^vpp-license-engine notification endpoint: /);
  }
  assert.equal(lines.filter((l) => /aborted/.test(l)).length, 5, lines.join('\n'));
  assert.equal(lines.filter((l) => /BODY_TIMEOUT/.test(l)).length, 1);
});
