// createFetchTransport against a real HTTP server on loopback.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { APPLE_BASE_URL, createFetchTransport } from '../../host-shim/transport.js';

let server;
let origin;
const received = [];

before(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      received.push({ method: req.method, url: req.url, headers: req.headers, body });
      if (req.url.startsWith('/slow')) return; // never answers
      res.writeHead(201, { 'X-Request-Id': 'r-1', 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ echo: body }));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${server.address().port}`;
});

after(() => {
  server.closeAllConnections();
  server.close();
});

test('send returns status, lower-cased headers as a plain object and the body as text', async () => {
  const transport = createFetchTransport();
  const response = await transport.send({
    method: 'POST',
    url: `${origin}/assets/associate`,
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer tok' },
    body: '{"a":1}',
  });
  assert.equal(response.status, 201);
  assert.equal(Object.getPrototypeOf(response.headers), Object.prototype);
  assert.equal(response.headers['x-request-id'], 'r-1');
  assert.equal(response.headers['content-type'], 'application/json');
  assert.equal(response.body, '{"echo":"{\\"a\\":1}"}');
  const seen = received.at(-1);
  assert.equal(seen.method, 'POST');
  assert.equal(seen.headers.authorization, 'Bearer tok');
  assert.equal(seen.body, '{"a":1}');
});

test('baseUrl replaces the Apple prefix and leaves other URLs alone', async () => {
  const transport = createFetchTransport({ baseUrl: `${origin}/relay/` });
  await transport.send({ method: 'GET', url: `${APPLE_BASE_URL}/assets?pageIndex=2`, headers: {}, body: null });
  assert.equal(received.at(-1).url, '/relay/assets?pageIndex=2');
  await transport.send({ method: 'GET', url: `${origin}/service/config`, headers: {}, body: null });
  assert.equal(received.at(-1).url, '/service/config');
});

test('a request that outlives timeoutMs rejects with a timeout error', async () => {
  const transport = createFetchTransport({ timeoutMs: 100 });
  await assert.rejects(
    transport.send({ method: 'GET', url: `${origin}/slow`, headers: {}, body: null }),
    /timed out after 100 ms/,
  );
});

test('a refused connection rejects', async () => {
  const closed = createServer();
  await new Promise((resolve) => closed.listen(0, '127.0.0.1', resolve));
  const { port } = closed.address();
  await new Promise((resolve) => closed.close(resolve));
  const transport = createFetchTransport();
  await assert.rejects(transport.send({ method: 'GET', url: `http://127.0.0.1:${port}/`, headers: {}, body: null }));
});

test('the fetch option replaces globalThis.fetch', async () => {
  const calls = [];
  const fetch = async (url, init) => {
    calls.push({ url, method: init.method, body: init.body });
    return new Response('hi', { status: 503, headers: { 'Retry-After': '120' } });
  };
  const transport = createFetchTransport({ fetch, baseUrl: 'http://relay.test' });
  const response = await transport.send({ method: 'GET', url: `${APPLE_BASE_URL}/client/config`, headers: {}, body: null });
  assert.deepEqual(calls, [{ url: 'http://relay.test/client/config', method: 'GET', body: undefined }]);
  assert.deepEqual(response, { status: 503, headers: { 'retry-after': '120', 'content-type': 'text/plain;charset=UTF-8' }, body: 'hi' });
});
