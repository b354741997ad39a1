// HTTP: request parsing, the request log, latency and injected faults, rate limiting, authentication,
// the common response envelope and error bodies. Endpoint semantics live in the route handlers.
import http from 'node:http';
import { ApiError, errorBody } from './errors.js';
import { faultResponse } from './faults.js';
import { ROUTES } from './routes.js';
import { formatAppleDate } from './token.js';

const JSON_TYPE = 'application/json;charset=UTF-8';

/** CORS, so that an MDM console running the engine in a browser can call the simulator from another origin. */
const CORS_HEADERS = {
  'Access-Control-Allow-Origin': '*',
  // Retry-After is not a CORS-safelisted response header: without this, browsers hide it from fetch.
  'Access-Control-Expose-Headers': 'Retry-After',
};
const PREFLIGHT_HEADERS = {
  ...CORS_HEADERS,
  'Access-Control-Allow-Methods': 'GET, POST',
  'Access-Control-Allow-Headers': 'Authorization, Content-Type',
  'Access-Control-Max-Age': '600',
};

/** The sToken of an `Authorization: Bearer <sToken>` header, or null. */
function bearerOf(header) {
  const match = /^Bearer (\S+)$/i.exec(header ?? '');
  return match ? match[1] : null;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** A POST body: JSON media type (else 415 / 9727) holding a JSON object (else 400 / 9602). */
function parseJsonBody(contentType, raw) {
  const mediaType = (contentType ?? '').split(';')[0].trim().toLowerCase();
  if (mediaType !== 'application/json') throw new ApiError(9727);
  let body;
  try { body = JSON.parse(raw); } catch { throw new ApiError(9602); }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new ApiError(9602);
  return body;
}

/**
 * Missing/malformed header 9722; unknown or invalidated token 9622 (HTTP 401 or the configured status); revoked
 * 9625, also a token replaced by a newer download for its location; expired 9621.
 */
function authenticate(ctx, token) {
  if (token === null) throw new ApiError(9722);
  const org = ctx.organizations.get(token);
  if (!org) {
    if (ctx.replacedTokens.has(token)) throw new ApiError(9625);
    throw new ApiError(9622, undefined, ctx.invalidTokenStatus);
  }
  if (org.revoked) throw new ApiError(9625);
  if (org.invalidated) throw new ApiError(9622, undefined, ctx.invalidTokenStatus);
  if (ctx.now() >= org.expiresAt) throw new ApiError(9621);
  return org;
}

/** Fields every authenticated response carries. */
function envelope(org) {
  const fields = { tokenExpirationDate: formatAppleDate(org.expiresAt), uId: org.uId };
  if (org.mdmInfo) fields.mdmInfo = { ...org.mdmInfo };
  return fields;
}

/** Top-level keys in alphabetical order, as Apple's examples show them. */
function sortKeys(body) {
  return Object.fromEntries(Object.entries(body).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

async function route(ctx, req, entry, reply) {
  const endpoint = ROUTES.get(entry.path);
  if (!endpoint) return reply(404, { errorMessage: 'The requested resource was not found.' });
  const handler = endpoint[entry.method];
  if (!handler) throw new ApiError(9726);
  // Every request with a bearer counts toward its token's rate, even one a fault answers.
  const overRate = handler.auth && entry.token !== null && ctx.rateLimited(entry.token, entry.at);
  if (ctx.latencyMs > 0) await ctx.sleeper.sleep(ctx.latencyMs);
  const fault = ctx.faults.take(entry);
  if (fault?.delayMs) await ctx.sleeper.sleep(fault.delayMs);
  if (fault?.drop) {
    entry.dropped = true;
    return req.socket.destroy();
  }
  if (fault?.status !== undefined) {
    const { status, headers, body } = faultResponse(fault);
    return reply(status, body, headers);
  }
  if (overRate) throw new ApiError(9646);
  const org = handler.auth ? authenticate(ctx, entry.token) : null;
  const body = entry.method === 'POST' ? parseJsonBody(req.headers['content-type'], await readBody(req)) : undefined;
  const result = await handler.handle(ctx, { org, query: entry.query, body });
  if (typeof result?.eventId === 'string') entry.eventId = result.eventId;
  return reply(200, org ? { ...result, ...envelope(org) } : result);
}

/** The request headers `names` (lower case) that the request carries, for the log; null when none are asked for. */
function loggedHeaders(req, names) {
  if (names.length === 0) return null;
  return Object.fromEntries(names.filter((name) => req.headers[name] !== undefined).map((name) => [name, req.headers[name]]));
}

/**
 * An http.Server answering Apple's API from `ctx`: { organizations: Map<token, Organization>, replacedTokens:
 * Map<token, Organization> (tokens superseded by a newer download), now(),
 * requestLog, logHeaders, replyHook, faults, sleeper, latencyMs, invalidTokenStatus, rateLimited(token, at),
 * …handler needs }.
 */
export function createServer(ctx) {
  return http.createServer((req, res) => {
    // A CORS preflight is the browser asking, not an API call: answered here, never logged or rate-limited.
    if (req.method === 'OPTIONS' && req.headers['access-control-request-method']) {
      res.writeHead(204, PREFLIGHT_HEADERS).end();
      return;
    }
    for (const [name, value] of Object.entries(CORS_HEADERS)) res.setHeader(name, value);
    const url = new URL(req.url, 'http://simulator.invalid');
    const entry = {
      at: ctx.now(), method: req.method, path: url.pathname, query: Object.fromEntries(url.searchParams),
      token: bearerOf(req.headers.authorization), status: null, errorNumber: null,
    };
    const headers = loggedHeaders(req, ctx.logHeaders);
    if (headers !== null) entry.headers = headers;
    ctx.requestLog.push(entry);
    const write = (status, body, headers) => {
      entry.answeredAt = ctx.now();
      res.writeHead(status, { 'Content-Type': JSON_TYPE, ...headers });
      res.end(JSON.stringify(sortKeys(body)));
    };
    const reply = (status, body, headers = {}) => {
      entry.status = status;
      entry.errorNumber = body.errorNumber ?? null;
      // The request is handled (its effects applied); the hook may hold the answer back, e.g. to crash a client.
      let hold;
      try {
        hold = ctx.replyHook?.(entry);
      } catch (error) {
        console.error('apps-and-books simulator: reply hook threw', error);
      }
      if (hold && typeof hold.then === 'function') {
        hold.then(() => write(status, body, headers), () => write(status, body, headers));
      } else {
        write(status, body, headers);
      }
    };
    route(ctx, req, entry, reply).catch((err) => {
      if (err instanceof ApiError) return reply(err.status, err.body);
      console.error('apps-and-books simulator: internal error', err);
      return reply(500, errorBody(9603));
    });
  });
}
