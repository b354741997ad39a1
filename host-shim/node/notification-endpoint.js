// The HTTP endpoint Apple POSTs Apps and Books notifications to, for Node backends (node:http only).
// It decides nothing: it routes `POST <path>/<accountId>` to Driver.notification with the raw body and the
// Authorization header, and answers Apple with the status the engine chose. The engine checks the bearer
// secret; this file never logs or keeps the Authorization header.
import http from 'node:http';

export const DEFAULT_NOTIFICATION_PATH = '/apple/notifications';
/** Apple sends at most 100 elements per notification: a few tens of kilobytes. */
export const DEFAULT_MAX_BODY_BYTES = 1 << 20;

const defaultOnError = (error) => console.error('vpp-license-engine notification endpoint:', error);

function normalizePath(path) {
  const text = String(path);
  if (!text.startsWith('/')) throw new TypeError(`notification path must start with "/": ${JSON.stringify(text)}`);
  return text.replace(/\/+$/, '');
}

function answer(res, status, headers = {}) {
  if (res.headersSent) return;
  res.writeHead(status, { 'Content-Length': '0', 'Cache-Control': 'no-store', ...headers });
  res.end();
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

/** A body a framework already read (Express's raw/text/json parsers), as text; undefined when there is none. */
function consumedBody(req) {
  if (!req.readableEnded) return undefined;
  const { body } = req;
  if (typeof body === 'string') return body;
  if (Buffer.isBuffer(body)) return body.toString('utf8');
  if (body !== undefined && body !== null) return JSON.stringify(body);
  return '';
}

/** Reads the body as UTF-8 text; resolves `null` (after answering 413) when it exceeds `maxBodyBytes`. */
function readBody(req, res, maxBodyBytes) {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    const tooLarge = () => {
      // Close the connection after the answer rather than read the rest of an oversized upload.
      answer(res, 413, { Connection: 'close' });
      req.resume();
      resolve(null);
    };
    if (Number.isFinite(declared) && declared > maxBodyBytes) {
      tooLarge();
      return;
    }
    const chunks = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk) => {
      if (done) return;
      size += chunk.length;
      if (size > maxBodyBytes) {
        done = true;
        chunks.length = 0;
        tooLarge();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks).toString('utf8'));
    });
    req.on('error', (error) => {
      if (done) return;
      done = true;
      reject(error);
    });
  });
}

/**
 * The answer when driver.notification throws: the engine rejecting the notification (an Error with a `code`)
 * would reject a retry too, so 404 / 400; anything else (a stopped driver) is 503, which Apple retries.
 */
function failureStatus(error) {
  if (typeof error?.code !== 'string') return 503;
  return error.code === 'UNKNOWN_ACCOUNT' ? 404 : 400;
}

/**
 * A `(req, res, next?)` handler for `http.createServer` or Express-style routers: `POST <path>/<accountId>`
 * goes to `driver.notification`; any other path is 404 (or `next()` when a router passed one), another method
 * 405, a body over `maxBodyBytes` 413, a malformed account id 400; see failureStatus for a throwing driver.
 */
export function createNotificationHandler({
  driver,
  path = DEFAULT_NOTIFICATION_PATH,
  maxBodyBytes = DEFAULT_MAX_BODY_BYTES,
  onError = defaultOnError,
} = {}) {
  if (!driver || typeof driver.notification !== 'function') {
    throw new TypeError('createNotificationHandler needs { driver } with a notification() method');
  }
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 0) throw new TypeError('maxBodyBytes must be a non-negative integer');
  const prefix = normalizePath(path);

  async function handle(req, res, next) {
    // Express strips a mount path from req.url and keeps the full one in req.originalUrl.
    const accountId = accountIdOf(req.originalUrl ?? req.url, prefix);
    if (accountId === null) {
      if (typeof next === 'function') next();
      else answer(res, 404);
      return;
    }
    if (req.method !== 'POST') {
      answer(res, 405, { Allow: 'POST' });
      return;
    }
    if (accountId === undefined || accountId === '') {
      answer(res, 400);
      return;
    }
    let body = consumedBody(req);
    if (body === undefined) {
      body = await readBody(req, res, maxBodyBytes);
      if (body === null) return;
    } else if (Buffer.byteLength(body) > maxBodyBytes) {
      answer(res, 413);
      return;
    }
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
  }

  return (req, res, next) => {
    handle(req, res, next).catch((error) => {
      // A broken request stream (the client went away): nothing reached the engine.
      onError(error);
      answer(res, 400, { Connection: 'close' });
    });
  };
}

/**
 * Listens on `host:port` (default 127.0.0.1, any free port) with a handler from createNotificationHandler.
 * Resolves `{ url, close() }`: `url` is the base for the engine's `notifications.url` (Apple requires https:
 * put a TLS-terminating proxy in front and configure its public URL).
 */
export async function startNotificationServer({ driver, host = '127.0.0.1', port = 0, path = DEFAULT_NOTIFICATION_PATH, maxBodyBytes, onError } = {}) {
  const handler = createNotificationHandler({ driver, path, maxBodyBytes, onError });
  const server = http.createServer(handler);
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
    url: `http://${hostPart}:${address.port}${normalizePath(path)}`,
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
