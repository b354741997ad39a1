// The Store contract (tests/stores/contract.mjs) on IndexedDbStore in headless Chromium: a static server on
// loopback serves the built pkg/ and the contract suite, the page runs every case (each in a fresh database)
// and reports the results, one node:test test per case. Run scripts/build-pkg.sh first; needs /usr/bin/chromium.
import { test, before, after } from 'node:test';
import { fileURLToPath } from 'node:url';
import { contractCases } from '../stores/contract.mjs';
import { launchChromium, serveStatic, skipWithoutChromium as skip, watchProblems } from './chromium.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));
const SERVED = ['pkg/', 'tests/stores/'];

const PAGE = `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<script type="importmap">
{ "imports": { "vpp-license-engine": "/pkg/vpp_license_engine.js", "vpp-license-engine/host": "/pkg/host-shim/index.js" } }
</script>
<script type="module">
import init from 'vpp-license-engine';
import { IndexedDbStore } from 'vpp-license-engine/host';
import { contractCases, runCase, supports } from '/tests/stores/contract.mjs';

let databases = 0;
function makePlace() {
  const name = 'vpp-contract-' + (databases += 1);
  const realPut = IDBObjectStore.prototype.put;
  return {
    durable: true,
    open: (hooks) => IndexedDbStore.open(name, hooks),
    close: (store) => store.close(),
    // The write of \`key\` throws inside the adapter's transaction, after the ops before it were queued.
    failWritesTo: (key) => {
      IDBObjectStore.prototype.put = function (value, k) {
        if (k === key) throw new DOMException('injected write failure', 'DataError');
        return realPut.call(this, value, k);
      };
    },
    cleanup: () => {
      IDBObjectStore.prototype.put = realPut;
      return new Promise((resolve, reject) => {
        const request = indexedDB.deleteDatabase(name);
        request.onsuccess = () => resolve();
        request.onerror = () => reject(request.error);
      });
    },
  };
}

const results = {};
try {
  // Before init() the engine's key ranges are out of reach: loadAccount says so (load and apply need no engine).
  const early = await IndexedDbStore.open('vpp-before-init');
  await early.apply([{ op: 'put', key: 'account/a', value: { accountId: 'a' } }]);
  const loaded = (await early.load()).length;
  const refusal = await early.loadAccount('a').then(() => 'resolved', (error) => error.message);
  await early.close();
  window.__beforeInit = { loaded, refusal };
  await init();
  for (const c of contractCases) {
    if (!supports({ durable: true, failWritesTo: true }, c)) { results[c.name] = { skipped: true }; continue; }
    const started = performance.now();
    try {
      await runCase(c, makePlace);
      results[c.name] = { ok: true, ms: Math.round(performance.now() - started) };
    } catch (error) {
      results[c.name] = { ok: false, error: String(error?.stack ?? error) };
    }
  }
  window.__result = { results, beforeInit: window.__beforeInit };
} catch (error) {
  window.__result = { error: String(error?.stack ?? error) };
}
</script>
</head>
<body></body>
</html>`;

let server;
let outcome;

before(async () => {
  if (skip) return;
  server = await serveStatic({ page: PAGE, root, allowed: (pathname) => SERVED.some((dir) => pathname.startsWith(`/${dir}`)) });
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    // Failing-write cases log errors on purpose: only uncaught errors and failed requests count.
    const problems = watchProblems(page, { consoleErrors: false });
    await page.goto(`${server.origin}/`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 60_000 });
    outcome = { ...(await page.evaluate(() => window.__result)), problems };
  } catch (error) {
    outcome = { error: String(error?.stack ?? error) };
  } finally {
    await browser.close();
  }
});

after(() => {
  server?.close();
});

for (const c of contractCases) {
  test(`IndexedDB (Chromium) store contract: ${c.name}`, { skip }, (t) => {
    if (outcome.error) throw new Error(`the page failed: ${outcome.error}\n${outcome.problems?.join('\n') ?? ''}`);
    const result = outcome.results[c.name];
    if (!result) throw new Error(`the page reported no result for this case (${outcome.problems.join('; ')})`);
    if (result.skipped) return t.skip('IndexedDbStore cannot run this case');
    if (!result.ok) throw new Error(result.error);
  });
}

test('IndexedDB (Chromium): before the engine\'s init(), load works and loadAccount says init() is missing', { skip }, () => {
  if (outcome.error) throw new Error(outcome.error);
  const { loaded, refusal } = outcome.beforeInit;
  if (loaded !== 1) throw new Error(`load gave ${loaded} records`);
  if (!/not initialised: call `await init\(\)`/.test(refusal)) throw new Error(`loadAccount before init: ${refusal}`);
});

test('IndexedDB (Chromium): the page loaded without errors', { skip }, () => {
  if (outcome.error) throw new Error(outcome.error);
  if (outcome.problems.length > 0) throw new Error(outcome.problems.join('\n'));
});
