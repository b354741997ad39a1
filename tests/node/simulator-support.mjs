// Helpers shared by the simulator tests (not a test file itself).
import http from 'node:http';
import { startSimulator } from '../../host-shim/simulator/index.js';

/** 2026-11-23T00:00:00Z */
export const START = 1_795_392_000_000;

/**
 * A simulator closed after the test; `clock.t` is its time unless `now` is given. Events complete only through
 * completeEventsNow(), and the rate limit is off unless asked for (the clock stands still).
 */
export async function simulator(t, options = {}) {
  const clock = { t: START };
  const sim = await startSimulator({ seed: 1, eventDelayMs: Infinity, rateLimit: false, now: () => clock.t, ...options });
  t.after(() => sim.close());
  return { sim, clock };
}

/** One HTTP call; `token` becomes the bearer header. Resolves { status, headers, body } (body parsed JSON). */
export async function call(sim, path, { token, method = 'GET', query, body, headers = {} } = {}) {
  const url = new URL(`${sim.url}${path.startsWith('/mdm/') || path.startsWith('/WebObjects/') ? path : `/mdm/v2${path}`}`);
  for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, String(v));
  const allHeaders = { ...headers };
  if (token !== undefined) allHeaders.Authorization = `Bearer ${token}`;
  if (body !== undefined && allHeaders['Content-Type'] === undefined) allHeaders['Content-Type'] = 'application/json';
  const res = await fetch(url, { method, headers: allHeaders, body: typeof body === 'string' || body === undefined ? body : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text === '' ? null : JSON.parse(text) };
}

/** Every page of a paged GET, following nextPageIndex from page 0. */
export async function allPages(sim, path, { token, query = {} }) {
  const pages = [];
  let pageIndex = 0;
  for (;;) {
    const { status, body } = await call(sim, path, { token, query: { ...query, pageIndex } });
    if (status !== 200) throw new Error(`${path} page ${pageIndex}: HTTP ${status} ${JSON.stringify(body)}`);
    pages.push(body);
    if (body.nextPageIndex === undefined) return pages;
    pageIndex = body.nextPageIndex;
  }
}

/** A loopback notification endpoint recording every POST; `respond` sets the status it answers. */
export async function receiver(t, { status = 200 } = {}) {
  const state = { status, received: [] };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      state.received.push({ headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString('utf8')) });
      res.writeHead(typeof state.status === 'function' ? state.status() : state.status);
      res.end();
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => new Promise((resolve) => server.close(resolve)));
  return {
    url: `http://127.0.0.1:${server.address().port}/notify`,
    received: state.received,
    /** Bodies of one notification type. */
    ofType: (type) => state.received.map((r) => r.body).filter((b) => b.notificationType === type),
    respond: (s) => { state.status = s; },
  };
}

/** Subscribes `token`'s location to notifications at `url`. */
export function subscribe(sim, token, url, notificationTypes = ['ASSET_MANAGEMENT', 'USER_MANAGEMENT', 'USER_ASSOCIATED', 'ASSET_COUNT']) {
  return call(sim, '/client/config', { token, method: 'POST', body: { notificationUrl: url, notificationAuthToken: 'n0t1f-s3cr3t', notificationTypes } });
}
