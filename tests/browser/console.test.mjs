// The console page (host-shim/console/) in headless Chromium against the demo server: the engine runs in the
// page and talks to the simulator. Drives issue 5's acceptance steps and saves screenshots to
// artifacts/console/. Run scripts/build-pkg.sh first; needs /usr/bin/chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startDemo } from '../../scripts/demo-server.mjs';
import { launchChromium, skipWithoutChromium as skip, watchProblems } from './chromium.mjs';

const SHOTS = fileURLToPath(new URL('../../artifacts/console/', import.meta.url));
const WAIT = { timeout: 30_000 };

let demo;

before(async () => {
  if (skip) return;
  demo = await startDemo();
  mkdirSync(SHOTS, { recursive: true });
});

after(async () => {
  await demo?.close();
});

test('the console adds an account from a token file, syncs, and runs every account command', { skip }, async () => {
  const browser = await launchChromium({ viewport: { width: 1280, height: 1000 } });
  let problems = [];
  try {
    const page = await browser.context.newPage();
    problems = watchProblems(page);
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()}: ${response.request().method()} ${response.url()}`);
    });
    const shot = (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
    const [high] = demo.accounts;
    const sim = demo.simulator;
    const row = '#accounts tbody tr';
    const menu = async (action) => {
      await page.click(`${row} [aria-label="Actions for ${high.name}"]`);
      await page.click(`#account-menu [data-action="${action}"]`);
    };
    const logCount = (type) => page.locator(`#event-log li[data-type="${type}"]`).count();

    await page.goto(demo.url);
    await page.waitForSelector('body[data-ready="true"]', WAIT);

    // Add (+) with a token upload.
    await page.getByRole('button', { name: 'Add account' }).click();
    await page.setInputFiles('#account-token', { name: high.file, mimeType: 'application/octet-stream', buffer: Buffer.from(high.token) });
    await page.waitForFunction(() => document.querySelector('#token-info').textContent.includes('Springfield School District'), null, WAIT);
    await page.fill('#account-name', high.name);
    await shot('01-add-account');
    await page.click('#account-submit');

    // The progress bar moves, then the account is active with its counts.
    await page.waitForFunction(() => {
      const bar = document.querySelector('#sync-progress');
      return bar.dataset.state === 'running' && bar.value > 0;
    }, null, { ...WAIT, polling: 'raf' });
    await shot('02-syncing');
    await page.waitForSelector(`${row}[data-status="active"]`, WAIT);
    await page.waitForSelector('#sync-progress[data-state="done"]', WAIT);
    const org = sim.organization(high.token);
    const view = await page.evaluate(() => window.vppConsole.engine.accounts()[0]);
    assert.equal(await page.getAttribute(`${row} .status`, 'title'), view.statusReason);
    assert.ok(view.statusReason.length > 0);
    assert.equal(await page.textContent(`${row} td:nth-child(4)`), high.locationName);
    await page.waitForFunction((n) => document.querySelectorAll('#app-counts tbody tr').length === n, org.assets.length, WAIT);
    for (const asset of org.assets.filter((a) => a.totalCount < 2147483647)) {
      const cells = await page.locator(`#app-counts tbody tr[data-adam-id="${asset.adamId}"]`)
        .filter({ hasText: asset.pricingParam }).locator('td.num').allTextContents();
      assert.deepEqual(cells, [asset.totalCount, asset.assignedCount, asset.availableCount].map(String), `counts of ${asset.adamId}`);
    }
    await page.locator('#app-counts tbody tr').first().getByRole('button', { name: /^Assignments of/ }).click();
    await page.waitForSelector('#assignments tbody tr', WAIT);
    await shot('03-synced');

    // The context menu opens on right-click too, and Escape closes it.
    await page.click(row, { button: 'right' });
    await page.waitForSelector('#account-menu [data-action="test"]:focus', WAIT);
    assert.equal(await page.isDisabled('#account-menu [data-action="reclaimOwnership"]'), true, 'we own the location');
    await page.keyboard.press('Escape');
    await page.waitForSelector('#account-menu', { ...WAIT, state: 'hidden' });

    // Test.
    await menu('test');
    await page.waitForFunction(() => /Test of .*: passed/.test(document.querySelector('#notice').textContent), null, WAIT);
    await shot('04-test-passed');

    // Refresh: a second full sync.
    assert.equal(await logCount('syncCompleted'), 1);
    await menu('refresh');
    await page.waitForFunction(() => document.querySelectorAll('#event-log li[data-type="syncCompleted"]').length === 2, null, WAIT);

    // Reconcile Licenses.
    await page.click('#reconcile');
    await page.click('#confirm-ok');
    await page.waitForSelector('#event-log li[data-type="admin"]:has-text("reconcile (all accounts)")', WAIT);
    assert.equal(await page.isVisible('#alert'), false);

    // Clean Up releases the licenses another MDM assigned: Apple accepts the release requests.
    await menu('cleanUp');
    await page.click('#confirm-ok');
    await page.waitForFunction(() => {
      const { engine } = window.vppConsole;
      const ops = engine.pendingOperations(engine.accounts()[0].accountId);
      return ops.length > 0 && ops.every((op) => op.eventId !== null);
    }, null, WAIT);
    const releases = sim.requestLog.filter((r) => r.method === 'POST' && /\/assets\/(disassociate|revoke)$/.test(r.path) && r.status === 200);
    assert.ok(releases.length > 0, 'Clean Up sent disassociate or revoke requests');
    // Apple finishes them now, not in the middle of the next sync's paging (pages past the shrunken end are 9650).
    assert.ok(await sim.completeEventsNow() > 0);

    // Another MDM takes the location over: a refresh reports it, Reclaim Ownership takes it back.
    sim.setMdmInfo(high.token, { id: 'rival-mdm', name: 'Rival MDM', metadata: '7.1' });
    await menu('refresh');
    await page.waitForSelector(`${row}[data-status="ownedByOtherMdm"]`, WAIT);
    assert.match(await page.getAttribute(`${row} .status`, 'title'), /Rival MDM/);
    // The refresh it interrupted does not stay "Syncing … 0 of ? pages": the progress line says why it stopped.
    await page.waitForSelector('#sync-progress[data-state="stopped"]', WAIT);
    assert.match(await page.textContent('#sync-label'), /^Sync of Springfield High stopped: .*Rival MDM/);
    await shot('05-owned-by-other-mdm');
    await menu('reclaimOwnership');
    await page.click('#confirm-ok');
    await page.waitForSelector(`${row}[data-status="active"]`, WAIT);
    assert.equal(sim.organization(high.token).mdmInfo.id, 'vpp-license-engine-console');

    // Pending changes: Cancel discards, Save applies a rename and the notification toggle together.
    await page.check('#notify-toggle');
    assert.equal(await page.textContent('#pending-text'), '1 unsaved change');
    await page.click('#cancel-changes');
    assert.equal(await page.isChecked('#notify-toggle'), false);
    await page.check('#notify-toggle');
    await menu('edit');
    await page.fill('#account-name', 'Springfield High School');
    await page.click('#account-submit');
    await page.waitForSelector(`${row} td.staged`, WAIT);
    assert.equal(await page.textContent('#pending-text'), '2 unsaved changes');
    await shot('06-pending-changes');
    await page.click('#save-changes');
    await page.waitForFunction(() => window.vppConsole.engine.accounts()[0].name === 'Springfield High School', null, WAIT);
    const settings = await page.evaluate(async () => {
      await window.vppConsole.driver.whenIdle();
      return (await window.vppConsole.store.load()).find((r) => r.key === 'settings')?.value;
    });
    assert.equal(settings?.licenseRemovalNotification, true);
    assert.equal(await page.isDisabled('#save-changes'), true);

    // A policy uses the account: Delete is refused, naming it.
    await page.fill('#policy-name', 'Grade 9 iPads');
    await page.fill('#policy-devices', '5');
    await page.click('#policy-create');
    await page.click('#confirm-ok');
    await page.waitForSelector('#policies li:has-text("Grade 9 iPads")', WAIT);
    await page.click(`${row} [aria-label="Delete Springfield High School"]`);
    await page.click('#confirm-ok');
    await page.waitForSelector('#alert:not([hidden])', WAIT);
    assert.match(await page.textContent('#alert'), /^Cannot delete "Springfield High School": .*Grade 9 iPads/);
    assert.equal(await page.locator(row).count(), 1);
    await shot('07-delete-refused');

    assert.equal(sim.requestLog.filter((r) => r.errorNumber === 9646).length, 0, 'the engine stays under the rate limit');
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
