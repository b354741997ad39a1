// The HTTP endpoint Apple POSTs Apps and Books notifications to, for Node backends (node:http only).
// It decides nothing: it routes `POST <path>/<accountId>` to Driver.notification with the raw body and the
// Authorization header, and answers Apple with the status the engine chose. Before reading a body it checks the
// bearer secret itself (in constant time; the engine checks it again), so that a client without the secret is
// answered 401 from its headers alone and cannot make the endpoint buffer anything; bodies must arrive within
// bodyTimeoutMs, and at most maxConcurrentRequests requests are read and handled at once. This file never logs or
// keeps the Authorization header.
import http from 'node:http';
import { createHash, timingSafeEqual } from 'node:crypto';
import { answer, checkCount, httpError, normalizePath, oneLine, refuse, requestBody } from './http-support.js';

export const DEFAULT_NOTIFICATION_PATH = '/apple/notifications';
/** Apple sends at most 100 elements per notification: a few tens of kilobytes. */
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;
/** Apple sends a notification's headers and body at once: these leave ample room for a slow network. */
export const DEFAULT_HEADERS_TIMEOUT_MS = 10_000;
export const DEFAULT_BODY_TIMEOUT_MS = 10_000;
/** Requests read and handled at the same time (authenticated ones: the others are answered from their headers). */
export const DEFAULT_MAX_CONCURRENT_REQUESTS = 32;
/** Open connections of startNotificationServer's server; more are closed at once. */
export const DEFAULT_MAX_CONNECTIONS = 256;

const defaultOnError = (error) => console.error(`vpp-license-engine notification endpoint: ${oneLine(error)}`);

/** A connection error Node's HTTP server reports (timeout, malformed or cut request), in words; the code kept. */
function describeClientError(error, headersTimeoutMs) {
  const code = typeof error?.code === 'string' ? error.code : undefined;
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return httpError(`notification request not received in time (headers within ${headersTimeoutMs} ms): connection closed`, code);
  }
  if (code === 'HPE_INVALID_EOF_STATE') {
    return httpError('notification request aborted: the client closed the connection before its request was complete', code);
  }
  return httpError(`malformed notification request: ${error?.message ?? error}`, code);
}

/** Compares the Authorization header with `Bearer <authToken>` as the engine does, in constant time (digests). */
function bearerCheck(authToken) {
  const digest = (text) => createHash('sha256').update(text, 'utf8').digest();
  const expected = digest(authToken);
  return (authorization) => {
    const header = typeof authorization === 'string' ? authorization.trim() : '';
    const presented = header.startsWith('Bearer ') ? header.slice('Bearer '.length) : null;
    // A missing or malformed header is compared too, against a digest that cannot match, in the same time.
    const equal = timingSafeEqual(digest(presented ?? `\0${authToken}`), expected);
    return presented !== null && equal;
  };
}

/**
 * The account id of `url` (path and query of the request) under `prefix`, URL-decoded: a string, `null` when
 * the path is not `<prefix>/<one segment>`, or `undefined` when the segment is not valid percent-encoding.
 */
function accountIdOf(url, prefix) {
  const pathname = String(url ?? '').split(/[?#]/, 1)[0];
  if (!pathname.startsWith(`${prefix}/`)) return null;
  const segment = pathname.slice(prefix.length + 1);
  if (segment === '' || segment.includes('/')) return null;
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/**
 * The answer when driver.notification throws: the engine rejecting the notification (an Error with a `code`)
 * would reject a retry too, so 404 / 400; anything else (a stopped driver) is 503, which Apple retries.
 */
function failureStatus(error) {
  if (typeof error?.code !== 'string') return 503;
  return error.code === 'UNKNOWN_ACCOUNT' ? 404 : 400;
}

/** The handler, and `reportOnce(socket, error)`: onError at most once per connection (the server's errors use it too). */
function makeHandler({
  driver,
  authToken,
  path = DEFAULT_NOTIFICATION_PATH,
  maxBodyBytes = DEFAULT_MAX_BODY_BYTES,
  bodyTimeoutMs = DEFAULT_BODY_TIMEOUT_MS,
  maxConcurrentRequests = DEFAULT_MAX_CONCURRENT_REQUESTS,
  onError = defaultOnError,
} = {}) {
  if (!driver || typeof driver.notification !== 'function') {
    throw new TypeError('createNotificationHandler needs { driver } with a notification() method');
  }
  if (typeof authToken !== 'string' || authToken === '') {
    throw new TypeError("createNotificationHandler needs { authToken }: the engine's notifications.authToken");
  }
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) throw new TypeError('maxBodyBytes must be a non-negative integer');
  checkCount('bodyTimeoutMs', bodyTimeoutMs, { positive: true });
  checkCount('maxConcurrentRequests', maxConcurrentRequests, { positive: true });
  const prefix = normalizePath(path, 'notification path');
  const authorized = bearerCheck(authToken);
  const reported = new WeakSet();
  const reportOnce = (socket, error) => {
    if (socket) {
      if (reported.has(socket)) return;
      reported.add(socket);
    }
    onError(error);
  };
  let inProgress = 0;

  async function handle(req, res, next) {
    // Express strips a mount path from req.url and keeps the full one in req.originalUrl.
    const accountId = accountIdOf(req.originalUrl ?? req.url, prefix);
    if (accountId === null) {
      if (typeof next === 'function') next();
      else answer(res, 404);
      return;
    }
    if (req.method !== 'POST') {
      refuse(res, 405, { Allow: 'POST' });
      return;
    }
    if (accountId === undefined || accountId === '') {
      refuse(res, 400);
      return;
    }
    // From the headers alone: without the secret, nothing of the body is read.
    if (!authorized(req.headers.authorization)) {
      refuse(res, 401, { 'WWW-Authenticate': 'Bearer' });
      return;
    }
    if (inProgress >= maxConcurrentRequests) {
      refuse(res, 503, { 'Retry-After': '1' });
      return;
    }
    inProgress += 1;
    try {
      const body = await requestBody(req, res, { maxBodyBytes, timeoutMs: bodyTimeoutMs, report: (error) => reportOnce(req.socket, error), what: 'notification' });
      if (body === null) return;
      let status;
      try {
        status = driver.notification(accountId, req.headers.authorization ?? null, body);
      } catch (error) {
        onError(error);
        answer(res, failureStatus(error));
        return;
      }
      if (!Number.isInteger(status) || status < 200 || status > 599) {
        onError(new Error(`driver.notification returned ${String(status)}, not an HTTP status`));
        answer(res, 500);
        return;
      }
      answer(res, status);
    } finally {
      inProgress -= 1;
    }
  }

  const handler = (req, res, next) => {
    handle(req, res, next).catch((error) => {
      // A broken request stream (the client went away): nothing reached the engine.
      reportOnce(req.socket, error);
      refuse(res, 400);
    });
  };
  return { handler, reportOnce };
}

/**
 * A `(req, res, next?)` handler for `http.createServer` or Express-style routers: `POST <path>/<accountId>`
 * goes to `driver.notification`; any other path is 404 (or `next()` when a router passed one), another method
 * 405, a malformed account id 400, an Authorization header other than `Bearer <authToken>` 401 (before the body
 * is read), more than `maxConcurrentRequests` requests at once 503, a body over `maxBodyBytes` 413 and one not
 * received within `bodyTimeoutMs` 408 (the connection is closed after each of these); see failureStatus for a
 * throwing driver.
 */
export function createNotificationHandler(options) {
  return makeHandler(options).handler;
}

/**
 * Listens on `host:port` (default 127.0.0.1, any free port) with a handler from createNotificationHandler, on a
 * server that closes a connection whose request headers take longer than `headersTimeoutMs` (408) and keeps at most
 * `maxConnections` connections open. Resolves `{ url, close() }`: `url` is the base for the engine's
 * `notifications.url` (Apple requires https: put a TLS-terminating proxy in front and configure its public URL).
 */
export async function startNotificationServer({
  driver,
  authToken,
  host = '127.0.0.1',
  port = 0,
  path = DEFAULT_NOTIFICATION_PATH,
  maxBodyBytes,
  headersTimeoutMs = DEFAULT_HEADERS_TIMEOUT_MS,
  bodyTimeoutMs = DEFAULT_BODY_TIMEOUT_MS,
  maxConcurrentRequests,
  maxConnections = DEFAULT_MAX_CONNECTIONS,
  onError = defaultOnError,
} = {}) {
  checkCount('headersTimeoutMs', headersTimeoutMs, { positive: true });
  checkCount('maxConnections', maxConnections, { positive: true });
  const { handler, reportOnce } = makeHandler({ driver, authToken, path, maxBodyBytes, bodyTimeoutMs, maxConcurrentRequests, onError });
  const server = http.createServer({
    headersTimeout: headersTimeoutMs,
    // A backstop for the whole request; the handler's own body timer fires first.
    requestTimeout: headersTimeoutMs + bodyTimeoutMs,
    // How often Node looks for connections past those timeouts (its default, 30 s, would let them run on).
    connectionsCheckingInterval: Math.max(10, Math.min(1000, Math.floor(headersTimeoutMs / 4))),
  }, handler);
  server.maxConnections = maxConnections;
  // What Node does by default (answer 408, 431 or 400 if nothing was sent yet, then destroy the socket), reported in
  // one line per connection; a connection reset by the client is not worth a line.
  server.on('clientError', (error, socket) => {
    if (error?.code !== 'ECONNRESET' && error?.code !== 'EPIPE') reportOnce(socket, describeClientError(error, headersTimeoutMs));
    if (socket.writable && (!socket._httpMessage || !socket._httpMessage.headersSent)) {
      const status = error?.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : error?.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
      socket.write(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    }
    socket.destroy();
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const hostPart = address.family === 'IPv6' || address.family === 6 ? `[${address.address}]` : address.address;
  let closing;
  return {
    url: `http://${hostPart}:${address.port}${normalizePath(path, 'notification path')}`,
    /** Stops listening and closes idle keep-alive connections; resolves once the server is closed. */
    close() {
      closing ??= new Promise((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections?.();
      });
      return closing;
    },
  };
}
