// The console in headless Chromium in the demo's relay mode: the engine in the page reaches the simulator only
// through the Apple relay the demo server mounts (createAppleRelay), as a production console reaches Apple through its
// backend. Run scripts/build-pkg.sh first; needs /usr/bin/chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDemo } from '../../scripts/demo-server.mjs';
import { launchChromium, skipWithoutChromium as skip, watchProblems } from './chromium.mjs';

const WAIT = { timeout: 30_000 };

let demo;

before(async () => {
  if (skip) return;
  demo = await startDemo({ relay: true });
});

after(async () => {
  await demo?.close();
});

test('in relay mode the console syncs and licenses through the relay and never calls the simulator itself; All accounts sums the apps', { skip }, async () => {
  const browser = await launchChromium({ viewport: { width: 1280, height: 1000 } });
  let problems = [];
  try {
    const page = await browser.context.newPage();
    problems = watchProblems(page);
    const requested = [];
    page.on('request', (request) => requested.push(new URL(request.url())));
    const [high] = demo.accounts;
    const simOrigin = new URL(demo.simulator.url).origin;

    await page.goto(demo.url);
    await page.waitForSelector('body[data-ready="true"]', WAIT);
    assert.match(await page.textContent('#engine-info'), /via the relay at \/apple-relay/);
    await page.getByRole('button', { name: 'Add account' }).click();
    await page.setInputFiles('#account-token', { name: high.file, mimeType: 'application/octet-stream', buffer: Buffer.from(high.token) });
    await page.waitForFunction(() => document.querySelector('#token-info').textContent.includes('Springfield School District'), null, WAIT);
    await page.fill('#account-name', high.name);
    await page.click('#account-submit');
    await page.waitForSelector('#accounts tbody tr[data-status="active"]', WAIT);
    await page.waitForSelector('#sync-progress[data-state="done"]', WAIT);

    // A license through the relay: the engine's association reaches the simulator, which then holds it.
    const org = demo.simulator.organization(high.token);
    const asset = org.assets.find((a) => a.availableCount > 0 && a.productType !== 'Book');
    const serial = org.serialNumbers.find((s) => !org.assignments.some((a) => a.serialNumber === s && a.adamId === asset.adamId));
    await page.evaluate(({ adamId, pricingParam, serial: target }) => window.vppConsole.driver.input({
      type: 'setPolicy',
      policy: { policyId: 'relay-test', name: 'Relay test', accountId: window.vppConsole.engine.accounts()[0].accountId, adamId, pricingParam, licenseType: 'device', targets: [target] },
    }), { adamId: asset.adamId, pricingParam: asset.pricingParam, serial });
    const held = () => org.assignments.some((a) => a.serialNumber === serial && a.adamId === asset.adamId);
    const deadline = Date.now() + WAIT.timeout;
    while (!held() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
    assert.ok(held(), 'the association sent through the relay was made');

    // With a second account the Licenses panel offers every app over all accounts, each account's share shown.
    const [, annex] = demo.accounts;
    await page.evaluate((token) => window.vppConsole.driver.input({ type: 'addAccount', accountId: 'annex', name: 'Shelbyville Annex', token }), annex.token);
    await page.waitForFunction(() => document.querySelectorAll('#accounts tbody tr').length === 2, null, WAIT);
    await page.selectOption('#license-account', '*all*');
    const totals = await page.evaluate(() => window.vppConsole.engine.appTotals());
    await page.waitForFunction((n) => document.querySelectorAll('#app-counts tbody tr').length === n, totals.length, WAIT);
    const first = page.locator('#app-counts tbody tr').first();
    assert.deepEqual(await first.locator('td.num').allTextContents(), [totals[0].totalCount, totals[0].assignedCount, totals[0].availableCount].map(String));
    assert.match(await first.locator('td').last().textContent(), /^Springfield High: \d+ of \d+/);
    assert.equal(await page.isHidden('#assignments'), true, 'assignments are per account');

    const toSimulator = requested.filter((url) => url.origin === simOrigin || url.hostname === 'vpp.itunes.apple.com');
    assert.deepEqual(toSimulator.map(String), [], 'the page called nothing but its own origin');
    const relayed = requested.filter((url) => url.pathname.startsWith('/apple-relay/')).map((url) => url.pathname);
    for (const path of ['/apple-relay/service/config', '/apple-relay/assignments', '/apple-relay/assets/associate']) {
      assert.ok(relayed.includes(path), `${path} went through the relay`);
    }
    assert.ok(demo.simulator.requestLog.some((e) => e.path === '/mdm/v2/assets/associate'), 'the simulator got the association');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
