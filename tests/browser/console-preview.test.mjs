// The console's confirmations in headless Chromium against the demo server: a scope edit (a new policy, a policy
// removed), a reclaim, Reconcile and Clean Up show what they would do — the engine's preview — in the page's dialog,
// and nothing happens unless the administrator confirms. Run scripts/build-pkg.sh first; needs /usr/bin/chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startDemo } from '../../scripts/demo-server.mjs';
import { launchChromium, skipWithoutChromium as skip, watchProblems } from './chromium.mjs';

const WAIT = { timeout: 60_000 }; // generous: the machines running it are shared

let demo;

before(async () => {
  if (skip) return;
  demo = await startDemo();
});

after(async () => {
  await demo?.close();
});

test('scope edits, a reclaim, Reconcile and Clean Up show their preview and ask before anything is sent', { skip }, async () => {
  const browser = await launchChromium({ viewport: { width: 1280, height: 1000 } });
  let problems = [];
  try {
    const page = await browser.context.newPage();
    problems = watchProblems(page);
    page.on('dialog', (dialog) => {
      problems.push(`a browser dialog (${dialog.type()}) instead of the page's`);
      dialog.dismiss();
    });
    const [high] = demo.accounts;
    const sim = demo.simulator;
    const posts = (pattern) => sim.requestLog.filter((r) => r.method === 'POST' && pattern.test(r.path)).length;
    const releases = () => posts(/\/assets\/(disassociate|revoke)$/);
    const until = async (done) => {
      const deadline = Date.now() + WAIT.timeout;
      while (!done()) {
        assert.ok(Date.now() < deadline, `timed out waiting for ${done}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    const operations = () => page.evaluate(() => window.vppConsole.engine.pendingOperations('high').map((op) => op.operationId));
    /** Opens the confirmation with `open`, checks its text, and answers it; a Cancel planned nothing. */
    const confirmation = async (open, pattern, answer) => {
      const planned = await operations();
      await open();
      await page.waitForSelector('#confirm-dialog[open]', WAIT);
      const text = await page.textContent('#confirm-text');
      assert.match(text, pattern);
      await page.click(`#confirm-dialog button[value="${answer}"]`);
      await page.waitForSelector('#confirm-dialog', { ...WAIT, state: 'hidden' });
      if (answer === 'cancel') assert.deepEqual(await operations(), planned, 'Cancel planned nothing');
      return text;
    };

    await page.goto(demo.url);
    await page.waitForSelector('body[data-ready="true"]', WAIT);
    await page.evaluate((token) => window.vppConsole.driver.input({ type: 'addAccount', accountId: 'high', name: 'Springfield High', token }), high.token);
    await page.waitForSelector('#accounts tbody tr[data-status="active"]', WAIT);
    await page.waitForSelector('#sync-progress[data-state="done"]', WAIT);

    // A new policy for 5 devices: the preview counts the devices that lack the app; Cancel sends nothing.
    const adamId = (await page.inputValue('#policy-app')).split('|')[0];
    const org = sim.organization(high.token);
    const lacking = org.serialNumbers.slice(0, 5).filter((s) => !org.assignments.some((a) => a.serialNumber === s && a.adamId === adamId)).length;
    assert.ok(lacking > 0, 'some of the devices lack the app');
    const licenses = `${lacking} license${lacking === 1 ? '' : 's'}`;
    const devices = `${lacking} device${lacking === 1 ? '' : 's'}`;
    await page.fill('#policy-name', 'Grade 9 iPads');
    await page.fill('#policy-devices', '5');
    const associations = posts(/\/assets\/associate$/);
    const create = () => page.click('#policy-create');
    await confirmation(create, new RegExp(`^Create the policy "Grade 9 iPads" for 5 devices\\? Assigns ${licenses} of ${adamId} to ${devices}; 1 request, about 1 s\\.$`), 'cancel');
    assert.equal(await page.locator('#policies li').count(), 0);
    await confirmation(create, /^Create the policy/, 'ok');
    await page.waitForSelector('#policies li:has-text("Grade 9 iPads")', WAIT);
    await until(() => posts(/\/assets\/associate$/) > associations);
    // Apple completes the associations now; the engine learns it at its next /status poll (30 s apart).
    assert.ok(await sim.completeEventsNow() > 0);
    await page.waitForFunction(() => window.vppConsole.engine.pendingOperations('high').length === 0, null, { timeout: 90_000 });

    // Reclaim: the licenses this MDM just assigned, from the same devices.
    const before = releases();
    await page.selectOption('#license-account', 'high');
    const reclaim = () => page.click(`#app-counts [aria-label="Reclaim licenses of ${adamId} STDQ"]`);
    await confirmation(reclaim, new RegExp(`^Reclaim every license of ${adamId} \\(STDQ\\) this MDM assigned in Springfield High\\? Reclaims ${licenses} of ${adamId} from ${devices}; 1 request, about 1 s\\.$`), 'ok');
    await until(() => releases() > before);

    // Reconcile with nothing to release (the reclaimed licenses are being released already) says so; Cancel does not reconcile.
    await confirmation(() => page.click('#reconcile'), /^Reconcile every account\? .*No license changes\.$/, 'cancel');
    assert.equal(await page.locator('#event-log li[data-type="admin"]:has-text("reconcile")').count(), 0);

    // Removing the policy: its licenses are being reclaimed already.
    await confirmation(() => page.click('[aria-label="Remove policy Grade 9 iPads"]'), /^Remove the policy "Grade 9 iPads"\? No license changes\.$/, 'ok');
    await page.waitForFunction(() => document.querySelectorAll('#policies li').length === 0, null, WAIT);

    // Clean Up: the other MDM's licenses, counted; Cancel releases nothing.
    assert.ok(org.assignments.length > 0, 'the location holds other MDMs\' licenses');
    await page.click('#accounts tbody tr [aria-label="Actions for Springfield High"]');
    const cleanUp = () => page.click('#account-menu [data-action="cleanUp"]');
    const text = await confirmation(cleanUp, /^Clean Up "Springfield High"\? .*Reclaims [\d,]+ licenses? of .* of them assigned by another MDM.*; [\d,]+ requests?, about \d+ (s|min)\.$/, 'cancel');
    assert.equal(releases(), before + 1, 'Cancel released nothing');
    const previewed = await page.evaluate(() => window.vppConsole.engine.preview([{ type: 'cleanUp', accountId: 'high' }], Date.now()).totals);
    assert.equal(previewed.release, previewed.otherMdmReleased);
    assert.ok(text.includes(`${previewed.requests.toLocaleString('en-US')} request`));
    assert.deepEqual(problems, []);
  } finally {
    await browser.close();
  }
});
