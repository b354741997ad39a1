// The console's reports in headless Chromium against the demo server: apps shown with the names and icons the host
// gave (the simulator's content metadata lookup, passed by the demo), the assignments table paged through a large
// account, and Export CSV built page by page and downloaded. Run scripts/build-pkg.sh first; needs /usr/bin/chromium.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startDemo } from '../../scripts/demo-server.mjs';
import { parseCsv } from '../node/csv-support.mjs';
import { launchChromium, skipWithoutChromium as skip, watchProblems } from './chromium.mjs';

const WAIT = { timeout: 30_000 };

let demo;
let browser;
let page;
let problems;

before(async () => {
  if (skip) return;
  demo = await startDemo();
  browser = await launchChromium({ viewport: { width: 1280, height: 1000 }, acceptDownloads: true });
  page = await browser.context.newPage();
  problems = watchProblems(page);
  await page.goto(demo.url);
  await page.waitForSelector('body[data-ready="true"]', WAIT);
  const [high] = demo.accounts;
  await page.evaluate(({ name, token }) => window.vppConsole.driver.input({ type: 'addAccount', accountId: 'high', name, token }), high);
  await page.waitForSelector('#accounts tbody tr[data-status="active"]', WAIT);
  await page.waitForSelector('#sync-progress[data-state="done"]', WAIT);
});

after(async () => {
  await browser?.close();
  await demo?.close();
});

const org = () => demo.simulator.organization(demo.accounts[0].token);

/** Clicks `selector` and resolves the downloaded file's name and text. */
async function download(selector) {
  const [file] = await Promise.all([page.waitForEvent('download', WAIT), page.click(selector)]);
  return { name: file.suggestedFilename(), text: await readFile(await file.path(), 'utf8') };
}

test('apps are shown with the name and icon the host gave, and setAppMetadata renames them', { skip }, async () => {
  const lookup = new URL('/WebObjects/MZStorePlatform.woa/wa/lookup', demo.simulator.url);
  const [asset] = org().assets;
  lookup.searchParams.set('id', asset.adamId);
  const { results } = await (await fetch(lookup)).json();
  const row = `#app-counts tbody tr[data-adam-id="${asset.adamId}"]`;
  await page.waitForSelector(`${row} .app-name`, WAIT);
  assert.equal(await page.textContent(`${row} .app-name`), results[asset.adamId].name);
  assert.match(await page.getAttribute(`${row} img.app-icon`, 'src'), /^data:image\/svg\+xml,/);
  assert.ok((await page.textContent(row)).includes(asset.adamId), 'the adam id stays visible');

  await page.evaluate((adamId) => window.vppConsole.setAppMetadata({ [adamId]: { name: 'Renamed by the host', iconUrl: 'javascript:alert(1)' } }), asset.adamId);
  await page.waitForFunction((sel) => document.querySelector(`${sel} .app-name`)?.textContent === 'Renamed by the host', row, WAIT);
  assert.equal(await page.locator(`${row} img.app-icon`).count(), 0, 'an icon URL that is not https, http or data:image is not shown');
  await page.evaluate(({ adamId, meta }) => window.vppConsole.setAppMetadata({ [adamId]: meta }),
    { adamId: asset.adamId, meta: { name: results[asset.adamId].name, iconUrl: results[asset.adamId].artwork.url } });
  assert.deepEqual(problems, []);
});

test('the assignments table pages through an app of a large account with Next and Previous', { skip }, async () => {
  const asset = org().assets.filter((a) => a.productType === 'App').sort((a, b) => b.assignedCount - a.assignedCount)[0];
  const expected = org().assignments.filter((a) => a.adamId === asset.adamId && a.pricingParam === asset.pricingParam)
    .map((a) => a.serialNumber ?? a.clientUserId).sort();
  assert.ok(expected.length > 100, `${expected.length} assignments: at least three pages`);
  await page.click(`#app-counts [aria-label="Assignments of ${asset.adamId} ${asset.pricingParam}"]`);
  await page.waitForSelector('#assignments tbody tr', WAIT);
  const rows = () => page.locator('#assignments tbody tr').evaluateAll((trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  const shown = async () => (await rows()).map(([serial, user]) => (serial === '—' ? user : serial));

  const first = await shown();
  assert.equal(first.length, 50, 'one page, not every row');
  assert.equal(await page.textContent('#assignments-more'), `1–50 of ${expected.length}`);
  assert.equal(await page.isDisabled('#assignments-prev'), true);
  const [row] = await rows();
  assert.equal(row[2], 'Another MDM', 'the simulator seeded them');
  assert.notEqual(row[3], '—', 'confirmed by the first sync');

  const seen = [...first];
  while (!(await page.isDisabled('#assignments-next'))) {
    const before = await page.textContent('#assignments-more');
    await page.click('#assignments-next');
    await page.waitForFunction((text) => document.querySelector('#assignments-more').textContent !== text, before, WAIT);
    seen.push(...(await shown()));
  }
  assert.deepEqual([...seen].sort(), expected, 'every assignment of the app once, over the pages');
  assert.match(await page.textContent('#assignments-more'), new RegExp(`–${expected.length} of ${expected.length}$`));

  while (!(await page.isDisabled('#assignments-prev'))) await page.click('#assignments-prev');
  assert.equal(await page.textContent('#assignments-more'), `1–50 of ${expected.length}`);
  assert.deepEqual(await shown(), first, 'Previous leads back to the first page');
});

test('Export CSV downloads every assignment and every app of the account, built page by page', { skip }, async () => {
  const assignments = await download('#export-assignments');
  assert.equal(assignments.name, 'assignments-high.csv');
  const [header, ...lines] = parseCsv(assignments.text);
  assert.deepEqual(header, ['accountId', 'adamId', 'appName', 'pricingParam', 'serialNumber', 'clientUserId', 'assignedBy', 'confirmedSince', 'policyId']);
  const key = (adamId, pricing, serial, user) => `${adamId}|${pricing}|${serial ?? ''}|${user ?? ''}`;
  const expected = org().assignments.map((a) => key(a.adamId, a.pricingParam, a.serialNumber, a.clientUserId)).sort();
  assert.deepEqual(lines.map((l) => key(l[1], l[3], l[4] || null, l[5] || null)).sort(), expected);
  assert.ok(expected.length > 1000, `${expected.length} rows: more than one engine page`);
  assert.ok(lines.every((l) => l[0] === 'high' && l[2].length > 0 && l[6] === 'other'));

  const apps = await download('#export-apps');
  assert.equal(apps.name, 'app-licenses-high.csv');
  const [appHeader, ...appLines] = parseCsv(apps.text);
  assert.deepEqual(appHeader, ['accountId', 'adamId', 'appName', 'pricingParam', 'productType', 'purchased', 'usedByUs', 'usedByOthers', 'pending', 'available']);
  assert.equal(appLines.length, org().assets.length);
  for (const asset of org().assets) {
    const line = appLines.find((l) => l[1] === asset.adamId && l[3] === asset.pricingParam);
    const assigned = org().assignments.filter((a) => a.adamId === asset.adamId && a.pricingParam === asset.pricingParam).length;
    assert.equal(Number(line[7]), assigned, `used by others of ${asset.adamId}`);
    assert.equal(line[5], asset.totalCount >= 2147483647 ? 'unlimited' : String(asset.totalCount));
  }
  assert.deepEqual(problems, []);
});
