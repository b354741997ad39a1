// The demo: the Apps and Books simulator with a seeded demo organization, and a static server on loopback for
// the console (host-shim/console/) and the package it loads (pkg/). The engine runs in the browser: this
// process hosts only the simulator and files. Used by scripts/demo.mjs and tests/browser/console.test.mjs.
import { createServer } from 'node:http';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startSimulator } from '../pkg/host-shim/simulator/index.js';
import { APPLE_BASE_URL } from '../pkg/host-shim/transport.js';
import { DEFAULT_RELAY_PATH, createAppleRelay } from '../pkg/host-shim/node/index.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const STATIC = { '/pkg/': path.join(ROOT, 'pkg'), '/console/': path.join(ROOT, 'host-shim', 'console') };
const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
};
/** Serial numbers per location the Policies panel offers (the simulator's device fleet fixture). */
const FIXTURE_SERIALS = 50;

/** Where a static URL path maps to on disk, or null (unknown prefix, or an escape from the root). */
function staticFile(pathname) {
  for (const [prefix, dir] of Object.entries(STATIC)) {
    if (!pathname.startsWith(prefix)) continue;
    let relative;
    try {
      relative = decodeURIComponent(pathname.slice(prefix.length));
    } catch {
      return null; // malformed %-escape
    }
    const file = path.join(dir, path.normalize(relative));
    return file.startsWith(dir + path.sep) ? file : null;
  }
  return null;
}

/** The demo's stand-in for an administrator's session: a random cookie set with the console's config. */
function demoSession() {
  const secret = randomBytes(24).toString('base64url');
  const cookie = `vpp-demo-session=${secret}`;
  return {
    setCookie: `${cookie}; Path=/; HttpOnly; SameSite=Strict`,
    /** The relay's authorize: the request carries the session cookie (browsers send it on same-origin fetches). */
    authorize(req) {
      const presented = String(req.headers.cookie ?? '').split(/;\s*/).find((c) => c.startsWith('vpp-demo-session=')) ?? '';
      return presented.length === cookie.length && timingSafeEqual(Buffer.from(presented), Buffer.from(cookie));
    },
  };
}

/**
 * App names and icons for the console, `{ [adamId]: { name, iconUrl } }`, as a backend would get them: from the content
 * metadata lookup (the simulator's, at its own address also in --relay mode, where its service config names Apple's).
 */
async function lookUpApps(sim, adamIds) {
  const url = new URL('/WebObjects/MZStorePlatform.woa/wa/lookup', sim.url);
  url.searchParams.set('id', [...new Set(adamIds)].join(','));
  const res = await fetch(url);
  if (!res.ok) throw new Error(`content metadata lookup: HTTP ${res.status}`);
  const { results } = await res.json();
  return Object.fromEntries(Object.values(results).map(({ id, name, artwork }) => [id, { name, iconUrl: artwork?.url }]));
}

/**
 * Starts the simulator (seeded: two locations of one district, the second held by "Rival MDM") and the console
 * server, both on 127.0.0.1. With `relay`, the console reaches the simulator as a production console reaches Apple:
 * through the Apple relay this server mounts at /apple-relay (createAppleRelay; the simulator advertises Apple's
 * URLs, and only a page that loaded the console's config holds the session cookie the relay asks for).
 * Resolves { url, simulator, relay, accounts: [{ file, name, locationName, token }], close() }.
 */
export async function startDemo({ port = 0, simulatorPort = 0, relay = false } = {}) {
  const sim = await startSimulator({ port: simulatorPort, seed: 42, pageSize: 100, eventDelayMs: 2000,
    advertisedBaseUrl: relay ? new URL(APPLE_BASE_URL).origin : null });
  const seeded = [
    { file: 'springfield-high.vpptoken', name: 'Springfield High', devices: 600, users: 120 },
    { file: 'shelbyville-annex.vpptoken', name: 'Shelbyville Annex', devices: 300, users: 40 },
  ].map(({ file, name, devices, users }) => {
    const org = sim.addOrganization({ orgName: 'Springfield School District', locationName: name, apps: 12, devices, users });
    return { file, name, locationName: name, token: org.token, serialNumbers: org.serialNumbers };
  });
  sim.setMdmInfo(seeded[1].token, { id: 'rival-mdm', name: 'Rival MDM', metadata: '7.1' });
  const appMetadata = await lookUpApps(sim, seeded.flatMap(({ token }) => sim.organization(token).assets.map((a) => a.adamId)));

  const runId = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
  const session = demoSession();
  const relayHandler = relay ? createAppleRelay({ authorize: session.authorize, appleBaseUrl: `${sim.url}/mdm/v2` }) : null;
  const consoleConfig = {
    runId,
    serviceConfigUrl: relay ? `${APPLE_BASE_URL}/service/config` : sim.serviceConfigUrl,
    relayPath: relay ? DEFAULT_RELAY_PATH : null,
    mdmInfo: { id: 'vpp-license-engine-console', name: 'vpp-license-engine console', metadata: '0.1.0' },
    tokens: seeded.map(({ file, name }) => ({ name, url: `/tokens/${file}` })),
    appMetadata,
  };
  const fixtures = {
    locations: seeded.map(({ locationName, serialNumbers }) => ({ locationName, serialNumbers: serialNumbers.slice(0, FIXTURE_SERIALS) })),
  };
  const json = (res, body, headers = {}) => res.writeHead(200, { 'content-type': TYPES['.json'], 'cache-control': 'no-store', ...headers }).end(JSON.stringify(body));

  const server = createServer(async (req, res) => {
    const { pathname } = new URL(req.url, 'http://demo.invalid');
    if (relayHandler && pathname.startsWith(`${DEFAULT_RELAY_PATH}/`)) return relayHandler(req, res);
    if (req.method !== 'GET' && req.method !== 'HEAD') return res.writeHead(405, { allow: 'GET, HEAD' }).end();
    if (pathname === '/') return res.writeHead(302, { location: '/console/' }).end();
    if (pathname === '/console-config.json') return json(res, consoleConfig, { 'set-cookie': session.setCookie });
    if (pathname === '/demo-fixtures.json') return json(res, fixtures);
    const token = seeded.find(({ file }) => pathname === `/tokens/${file}`);
    if (token) {
      return res.writeHead(200, {
        'content-type': 'application/octet-stream',
        'content-disposition': `attachment; filename="${token.file}"`,
      }).end(token.token);
    }
    const file = staticFile(pathname.endsWith('/') ? `${pathname}index.html` : pathname);
    if (!file) return res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    try {
      const body = await readFile(file);
      res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream', 'cache-control': 'no-cache' }).end(body);
    } catch {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    }
  });
  try {
    await new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', resolve);
    });
  } catch (error) {
    await sim.close();
    throw error;
  }
  const url = `http://127.0.0.1:${server.address().port}/console/`;
  return {
    url,
    simulator: sim,
    relay: relay ? new URL(DEFAULT_RELAY_PATH, url).href : null,
    accounts: seeded.map(({ file, name, locationName, token }) => ({ file, name, locationName, token })),
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await sim.close();
    },
  };
}
