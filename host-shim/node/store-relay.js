// The store relay a Node backend serves to browser consoles that run the engine with a LeaseKeeper: it exposes the
// backend's own LeaseStore (PostgresStore) to them as JSON over POST, `<path>/<method>` with `{ "args": [...] }`,
// answered `{ "result": ... }`, so that a browser's engine takes an account's lease on the same store, by the same
// clock, as the backend's instances and the other consoles. It allows the methods a LeaseKeeper calls
// (STORE_RELAY_METHODS) and refuses the unfenced `apply`: every write of a browser goes through `applyFenced`, which
// leaves out the records of accounts whose lease it does not hold. Callers must pass `authorize` (the backend's own
// administrator check). Arguments are checked before the store is called; a store failure is answered with a
// generic message and reported to onError in one line. Nothing here logs record values (account records hold sTokens).
import { LEASE_STORE_METHODS, checkLeaseStoreArgs } from '../lease-store-checks.js';
import { answerJson, authorized, checkCount, httpError, normalizePath, oneLine, refuse, requestBody, routeOrPass } from './http-support.js';

const NAME = 'StoreRelay';
export const DEFAULT_STORE_RELAY_PATH = '/store-relay';
/** The LeaseStore methods the relay serves: those a LeaseKeeper calls; never the unfenced `apply`. */
export const STORE_RELAY_METHODS = LEASE_STORE_METHODS;
/** A request body: the largest is one persist output (at most 5,000 records, a few MiB for a large sync). */
export const DEFAULT_STORE_RELAY_MAX_BODY_BYTES = 32 << 20;
/** The longest the caller may take to send its body (then 408): room for that largest body on a slow link. */
export const DEFAULT_STORE_RELAY_BODY_TIMEOUT_MS = 30_000;

/** Error codes of a store that cannot be reached now (503): Node's socket errors, PostgreSQL's connection failures. */
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH',
  'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03', '53300']);
const isUnavailable = (error) => typeof error?.code === 'string' && (UNAVAILABLE_CODES.has(error.code) || /^08[0-9A-Z]{3}$/.test(error.code));

const defaultOnError = (error) => console.error(`vpp-license-engine store relay: ${oneLine(error)}`);

/** A refusal decided before the body is read: a JSON error, and the connection closed (see refuse). */
const refuseJson = (res, status, code, message, headers = {}) => answerJson(res, status, { error: { code, message } }, { Connection: 'close', ...headers });
/** An error answer once the body was read. */
const failJson = (res, status, code, message) => answerJson(res, status, { error: { code, message } });

/**
 * A `(req, res, next?)` handler for `http.createServer` or Express-style routers that serves `POST <path>/<method>`
 * with body `{ "args": [...] }` by calling `store[method](...args)` and answering `{ "result": ... }` (null for the
 * methods that return nothing). Answers: 404 for a method that is not one of STORE_RELAY_METHODS (or `next()` when a
 * router passed one and the path is not under `path`), 405 for another HTTP method, 403 for `apply` (write through a
 * LeaseKeeper) and when `authorize(req, method)` is not true (both before the body is read), 415 for a body that is
 * not `application/json`, 413 / 408 for a body over `maxBodyBytes` or not received within `bodyTimeoutMs`, 400 for a
 * body that is not JSON or arguments the method does not take (the store is not called), 503 when the store cannot be
 * reached, 500 when it fails otherwise (its error goes to onError, never into the answer).
 */
export function createStoreRelay({
  store,
  authorize,
  path = DEFAULT_STORE_RELAY_PATH,
  maxBodyBytes = DEFAULT_STORE_RELAY_MAX_BODY_BYTES,
  bodyTimeoutMs = DEFAULT_STORE_RELAY_BODY_TIMEOUT_MS,
  onError = defaultOnError,
} = {}) {
  const missing = STORE_RELAY_METHODS.filter((m) => typeof store?.[m] !== 'function');
  if (missing.length > 0) throw new TypeError(`createStoreRelay needs { store }: a LeaseStore (missing ${missing.join(', ')})`);
  if (typeof authorize !== 'function') {
    throw new TypeError('createStoreRelay needs { authorize(req, method) }: the backend decides who may reach its store through it');
  }
  checkCount('maxBodyBytes', maxBodyBytes);
  checkCount('bodyTimeoutMs', bodyTimeoutMs, { positive: true });
  const prefix = normalizePath(path, 'store relay path');

  async function handle(req, res, next) {
    const route = routeOrPass(req, res, next, prefix);
    if (route === null) return;
    const method = route.path.slice(1);
    if (method !== 'apply' && !STORE_RELAY_METHODS.includes(method)) {
      refuseJson(res, 404, 'UNKNOWN_METHOD', `not a store method the relay serves (${STORE_RELAY_METHODS.join(', ')})`);
      return;
    }
    if (req.method !== 'POST') {
      refuseJson(res, 405, 'METHOD_NOT_ALLOWED', 'the store relay takes POST', { Allow: 'POST' });
      return;
    }
    if (method === 'apply') {
      refuseJson(res, 403, 'UNFENCED_APPLY', 'apply is refused: write through a LeaseKeeper (keeper.store uses applyFenced)');
      return;
    }
    const allowed = await authorized(authorize, [req, method], onError);
    if (allowed === null) {
      refuseJson(res, 500, 'AUTHORIZE_FAILED', 'the authorization check failed');
      return;
    }
    if (!allowed) {
      refuseJson(res, 403, 'NOT_AUTHORIZED', 'not authorized');
      return;
    }
    if (!/^application\/json\s*(;|$)/i.test(req.headers['content-type'] ?? '')) {
      refuseJson(res, 415, 'UNSUPPORTED_MEDIA_TYPE', 'the body must be application/json');
      return;
    }
    const body = await requestBody(req, res, { maxBodyBytes, timeoutMs: bodyTimeoutMs, report: onError, what: 'store relay' });
    if (body === null) return;
    let args;
    try {
      args = JSON.parse(body)?.args;
      checkLeaseStoreArgs(method, args, NAME);
    } catch (error) {
      failJson(res, 400, 'BAD_REQUEST', error instanceof SyntaxError ? 'the body must be JSON: { "args": [...] }' : oneLine(error));
      return;
    }
    try {
      answerJson(res, 200, { result: (await store[method](...args)) ?? null });
    } catch (error) {
      const unavailable = isUnavailable(error);
      const code = unavailable ? 'STORE_UNAVAILABLE' : 'STORE_FAILED';
      onError(httpError(`${method}: ${oneLine(error)}`, code));
      failJson(res, unavailable ? 503 : 500, code, unavailable ? 'the store cannot be reached now' : `the store failed (${method})`);
    }
  }

  return (req, res, next) => {
    handle(req, res, next).catch((error) => {
      // The caller went away while its body was read: the store was not called.
      onError(error);
      refuse(res, 400);
    });
  };
}
