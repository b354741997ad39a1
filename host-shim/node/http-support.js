// Small HTTP helpers shared by the Node endpoints of this package (the notification endpoint, the Apple and store
// relays): routing under a mount path, the authorize check, answering (empty or JSON) and refusing, reading a bounded
// body within a time limit, one-line error reports. node:http only.

/** One line, whatever the error: its message and code, never a stack (an aborted connection is not a bug here). */
export function oneLine(error) {
  const text = error instanceof Error ? `${error.message}${typeof error.code === 'string' ? ` (${error.code})` : ''}` : String(error);
  return text.replace(/\s+/g, ' ').trim().slice(0, 300);
}

/** An Error with a `code`, for what an endpoint reports to its onError. */
export function httpError(message, code) {
  return Object.assign(new Error(message), { code });
}

/** `path` without trailing slashes; it must start with "/" (`what` names it in the error). */
export function normalizePath(path, what = 'path') {
  const text = String(path);
  if (!text.startsWith('/')) throw new TypeError(`${what} must start with "/": ${JSON.stringify(text)}`);
  return text.replace(/\/+$/, '');
}

/** The route of `url` (path and query) under `prefix`: `{ path, search }`, or null when it is not under `prefix`. */
function routeOf(url, prefix) {
  const text = String(url ?? '');
  const queryAt = text.search(/[?#]/);
  const pathname = queryAt < 0 ? text : text.slice(0, queryAt);
  if (!pathname.startsWith(`${prefix}/`)) return null;
  const search = queryAt < 0 || text[queryAt] === '#' ? '' : text.slice(queryAt).split('#', 1)[0];
  return { path: pathname.slice(prefix.length), search };
}

/**
 * The route of a request under `prefix` (see routeOf; Express strips a mount path from req.url and keeps the full one
 * in req.originalUrl); null when it is not under `prefix`, once it was passed on: `next()` when a router gave one,
 * else a 404.
 */
export function routeOrPass(req, res, next, prefix) {
  const route = routeOf(req.originalUrl ?? req.url, prefix);
  if (route === null) {
    if (typeof next === 'function') next();
    else answer(res, 404);
  }
  return route;
}

/** Whether `authorize(...args)` resolves true; null when it throws (reported to `report`, code AUTHORIZE_FAILED). */
export async function authorized(authorize, args, report) {
  try {
    return (await authorize(...args)) === true;
  } catch (error) {
    report(httpError(`authorize failed: ${oneLine(error)}`, 'AUTHORIZE_FAILED'));
    return null;
  }
}

/** An empty answer (nothing when one was sent already). */
export function answer(res, status, headers = {}) {
  if (res.headersSent) return;
  res.writeHead(status, { 'Content-Length': '0', 'Cache-Control': 'no-store', ...headers });
  res.end();
}

/** A JSON answer (nothing when one was sent already). */
export function answerJson(res, status, value, headers = {}) {
  if (res.headersSent) return;
  const body = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': String(body.length), 'Cache-Control': 'no-store', ...headers });
  res.end(body);
}

/**
 * Answers without reading (the rest of) the body, and closes the connection: Node then discards what is in flight
 * and ends the socket once the answer is sent, instead of reading the upload to keep the connection alive.
 */
export function refuse(res, status, headers = {}) {
  answer(res, status, { Connection: 'close', ...headers });
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

/**
 * Reads the body as UTF-8 text. Resolves `null` once it has answered: 413 when the body exceeds `maxBodyBytes`, 408
 * when it is not complete within `timeoutMs` (reported to `report`). Rejects when the client goes away first. `what`
 * names the request in those reports ("notification", "relay").
 */
function readBody(req, res, { maxBodyBytes, timeoutMs, report, what }) {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBodyBytes) {
      refuse(res, 413);
      resolve(null);
      return;
    }
    const chunks = [];
    let size = 0;
    let done = false;
    const finish = (outcome) => {
      if (done) return false;
      done = true;
      clearTimeout(timer);
      chunks.length = 0;
      req.off('data', onData);
      outcome();
      return true;
    };
    const timer = setTimeout(() => finish(() => {
      report(httpError(`${what} body not received within ${timeoutMs} ms: connection closed`, 'BODY_TIMEOUT'));
      refuse(res, 408);
      resolve(null);
    }), timeoutMs);
    const onData = (chunk) => {
      size += chunk.length;
      if (size > maxBodyBytes) {
        finish(() => {
          refuse(res, 413);
          resolve(null);
        });
        return;
      }
      chunks.push(chunk);
    };
    req.on('data', onData);
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      finish(() => resolve(body));
    });
    const aborted = () => finish(() => reject(httpError(`${what} request aborted: the client closed the connection before its body was complete`, 'ABORTED')));
    req.on('error', aborted);
    req.on('close', aborted);
  });
}

/**
 * The body as UTF-8 text, read here (readBody: same options, answers and rejection) or already by a framework
 * (consumedBody). Resolves `null` once it has answered 413 or 408.
 */
export async function requestBody(req, res, options) {
  const consumed = consumedBody(req);
  if (consumed === undefined) return readBody(req, res, options);
  if (Buffer.byteLength(consumed) <= options.maxBodyBytes) return consumed;
  answer(res, 413);
  return null;
}

/** Throws a TypeError unless `value` is a (positive) safe integer. */
export function checkCount(name, value, { positive = false } = {}) {
  if (!Number.isSafeInteger(value) || value < (positive ? 1 : 0)) {
    throw new TypeError(`${name} must be a ${positive ? 'positive' : 'non-negative'} integer`);
  }
}

