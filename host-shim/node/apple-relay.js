// The relay a Node backend serves to browser consoles that run the engine: Apple's Apps and Books API cannot be
// called from a browser (no CORS), so the console's transport (`createFetchTransport({ baseUrl })`) sends each
// request here and the relay forwards it to Apple. It forwards only the API's own paths and methods (an allow-list:
// it is not an open proxy), with the query, `Authorization`, `Content-Type` and the body; it answers with Apple's
// status, `Content-Type`, `Retry-After` and body unchanged. Callers must pass `authorize` (the backend's own
// administrator check). Bodies are bounded in size and time both ways. This file never logs or keeps the
// Authorization header (the sToken).
import { APPLE_BASE_URL } from '../transport.js';
import { answer, authorized, checkCount, httpError, normalizePath, oneLine, refuse, requestBody, routeOrPass } from './http-support.js';

export const DEFAULT_RELAY_PATH = '/apple-relay';
/**
 * Apple's Apps and Books API paths (under https://vpp.itunes.apple.com/mdm/v2) and the methods the relay forwards
 * for each: every request the engine makes, nothing else.
 */
export const APPLE_RELAY_ROUTES = Object.freeze({
  '/service/config': ['GET'],
  '/client/config': ['GET', 'POST'],
  '/assets': ['GET'],
  '/assets/associate': ['POST'],
  '/assets/disassociate': ['POST'],
  '/assets/revoke': ['POST'],
  '/assignments': ['GET'],
  '/status': ['GET'],
  '/users': ['GET'],
  '/users/create': ['POST'],
  '/users/update': ['POST'],
  '/users/retire': ['POST'],
});
/** A request body: at most 1,000 serial numbers or 100 users with their fields (tens of kilobytes). */
export const DEFAULT_RELAY_MAX_BODY_BYTES = 1 << 20;
/** An answer: a page of 1,000 assignments is ~100 kB; this leaves room for large asset pages. */
export const DEFAULT_RELAY_MAX_RESPONSE_BYTES = 16 << 20;
/** The longest a forwarded request may take, Apple's answer included (then 504). */
export const DEFAULT_RELAY_TIMEOUT_MS = 60_000;
/** The longest the caller may take to send its body (then 408). */
export const DEFAULT_RELAY_BODY_TIMEOUT_MS = 10_000;

const defaultOnError = (error) => console.error(`vpp-license-engine Apple relay: ${oneLine(error)}`);

/** Reads `response`'s body up to `limit` bytes; null when it is longer (the rest is cancelled). */
async function boundedBody(response, limit) {
  if (!response.body) return Buffer.alloc(0);
  const chunks = [];
  let size = 0;
  for await (const chunk of response.body) {
    size += chunk.length;
    if (size > limit) {
      await response.body.cancel?.().catch(() => {});
      return null;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks.map((c) => Buffer.from(c)));
}

/**
 * A `(req, res, next?)` handler for `http.createServer` or Express-style routers that relays
 * `<path>/<Apple API path>?<query>` to `<appleBaseUrl>/<Apple API path>?<query>`. Answers: 404 for a path that is
 * not one of Apple's (or `next()` when a router passed one and the path is not under `path`), 405 for another
 * method, 403 when `authorize(req)` is not true (before the body is read), 413 / 408 for a body over `maxBodyBytes`
 * or not received within `bodyTimeoutMs`, 504 when Apple does not answer within `timeoutMs`, 502 when it cannot be
 * reached or its answer exceeds `maxResponseBytes`; otherwise Apple's own answer.
 */
export function createAppleRelay({
  authorize,
  path = DEFAULT_RELAY_PATH,
  appleBaseUrl = APPLE_BASE_URL,
  fetch = globalThis.fetch,
  maxBodyBytes = DEFAULT_RELAY_MAX_BODY_BYTES,
  maxResponseBytes = DEFAULT_RELAY_MAX_RESPONSE_BYTES,
  timeoutMs = DEFAULT_RELAY_TIMEOUT_MS,
  bodyTimeoutMs = DEFAULT_RELAY_BODY_TIMEOUT_MS,
  onError = defaultOnError,
} = {}) {
  if (typeof authorize !== 'function') {
    throw new TypeError('createAppleRelay needs { authorize(req) }: the backend decides who may reach Apple through it');
  }
  if (typeof fetch !== 'function') throw new TypeError('createAppleRelay needs a fetch function');
  checkCount('maxBodyBytes', maxBodyBytes);
  checkCount('maxResponseBytes', maxResponseBytes);
  checkCount('timeoutMs', timeoutMs, { positive: true });
  checkCount('bodyTimeoutMs', bodyTimeoutMs, { positive: true });
  const prefix = normalizePath(path, 'relay path');
  const upstream = String(appleBaseUrl).replace(/\/+$/, '');

  async function handle(req, res, next) {
    const route = routeOrPass(req, res, next, prefix);
    if (route === null) return;
    const methods = Object.hasOwn(APPLE_RELAY_ROUTES, route.path) ? APPLE_RELAY_ROUTES[route.path] : null;
    if (methods === null) {
      refuse(res, 404);
      return;
    }
    if (!methods.includes(req.method)) {
      refuse(res, 405, { Allow: methods.join(', ') });
      return;
    }
    const allowed = await authorized(authorize, [req], onError);
    if (allowed !== true) {
      refuse(res, allowed === null ? 500 : 403);
      return;
    }
    let body;
    if (req.method !== 'GET') {
      body = await requestBody(req, res, { maxBodyBytes, timeoutMs: bodyTimeoutMs, report: onError, what: 'relay' });
      if (body === null) return;
    }
    const headers = {};
    if (typeof req.headers.authorization === 'string') headers.authorization = req.headers.authorization;
    if (typeof req.headers['content-type'] === 'string') headers['content-type'] = req.headers['content-type'];
    const target = `${upstream}${route.path}${route.search}`;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), timeoutMs);
    try {
      let response;
      try {
        response = await fetch(target, { method: req.method, headers, body, signal: controller.signal, redirect: 'manual' });
      } catch (error) {
        const timedOut = controller.signal.aborted;
        onError(httpError(`${req.method} ${route.path}: ${timedOut ? `no answer within ${timeoutMs} ms` : `Apple not reached: ${oneLine(error)}`}`,
          timedOut ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_UNREACHABLE'));
        answer(res, timedOut ? 504 : 502);
        return;
      }
      let answerBody;
      try {
        answerBody = await boundedBody(response, maxResponseBytes);
      } catch (error) {
        const timedOut = controller.signal.aborted;
        onError(httpError(`${req.method} ${route.path}: answer cut off (${timedOut ? `not complete within ${timeoutMs} ms` : oneLine(error)})`,
          timedOut ? 'UPSTREAM_TIMEOUT' : 'UPSTREAM_CUT'));
        answer(res, timedOut ? 504 : 502);
        return;
      }
      if (answerBody === null) {
        onError(httpError(`${req.method} ${route.path}: answer over ${maxResponseBytes} bytes`, 'UPSTREAM_TOO_LARGE'));
        answer(res, 502);
        return;
      }
      const out = { 'Content-Length': String(answerBody.length), 'Cache-Control': 'no-store' };
      for (const [name, header] of [['content-type', 'Content-Type'], ['retry-after', 'Retry-After']]) {
        const value = response.headers.get(name);
        if (value !== null) out[header] = value;
      }
      if (!res.headersSent) {
        res.writeHead(response.status, out);
        res.end(answerBody);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  return (req, res, next) => {
    handle(req, res, next).catch((error) => {
      // The caller went away while its body was read: nothing was forwarded.
      onError(error);
      refuse(res, 400);
    });
  };
}
