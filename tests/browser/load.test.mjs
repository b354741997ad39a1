// The web build in headless Chromium: loaded through an import map from a static server on loopback, as a
// console page without a bundler would. Run scripts/build-pkg.sh first; needs /usr/bin/chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { launchChromium, serveStatic, skipWithoutChromium as skip, watchProblems } from './chromium.mjs';

const root = fileURLToPath(new URL('../../', import.meta.url));

const PAGE = `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<script type="importmap">
{ "imports": { "vpp-license-engine": "/pkg/vpp_license_engine.js", "vpp-license-engine/host": "/pkg/host-shim/index.js" } }
</script>
<script type="module">
import init, { Engine } from 'vpp-license-engine';
import { Driver, MemoryStore } from 'vpp-license-engine/host';

const config = { mdmInfo: { id: 'mdm-browser', name: 'Browser MDM', metadata: '1' } };
try {
  await init();
  const now = Date.now();
  const engine = new Engine(config, now);
  const outputs = [];
  for (let output = engine.pollOutput(now); ; output = engine.pollOutput(now)) {
    outputs.push(output);
    if (output.type === 'timeout') break;
  }
  engine.free();

  // The host shim runs here unchanged: the driver hands the same first request to its transport.
  const sent = [];
  const driverEngine = new Engine(config, now);
  const driver = new Driver({
    engine: driverEngine,
    store: new MemoryStore(),
    transport: { send: async (request) => { sent.push(request.purpose); throw new Error('offline'); } },
  });
  driver.start();
  await driver.whenIdle();
  driver.stop();
  driverEngine.free();
  window.__result = { outputs, sent };
} catch (error) {
  window.__result = { error: String(error?.stack ?? error) };
}
</script>
</head>
<body></body>
</html>`;

let server;

before(async () => {
  if (skip) return;
  server = await serveStatic({ page: PAGE, root, allowed: (pathname) => pathname.startsWith('/pkg/') });
});

after(() => {
  server?.close();
});

test('the web build runs in Chromium: init, new Engine, a service config request, the host shim', { skip }, async () => {
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    const problems = watchProblems(page);

    await page.goto(`${server.origin}/`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 15_000 });
    const result = await page.evaluate(() => window.__result);

    assert.equal(result.error, undefined, result.error);
    const serviceConfig = result.outputs.find((o) => o.type === 'request' && o.purpose === 'serviceConfig');
    assert.ok(serviceConfig, `no service config request among ${JSON.stringify(result.outputs.map((o) => o.type))}`);
    assert.equal(serviceConfig.method, 'GET');
    assert.match(serviceConfig.url, /^https:\/\/vpp\.itunes\.apple\.com\/mdm\/v2\/service\/config$/);
    assert.equal(result.outputs.at(-1).type, 'timeout');
    assert.deepEqual(result.sent, ['serviceConfig']);
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
