// The license usage reports as CSV (host-shim/report-csv.js): RFC 4180 escaping with the formula guard, and the
// assignment report streamed page by page — every row exactly once, across accounts — from the BUILT package's
// engine synced with the simulator over HTTP (real time, a few seconds). Run scripts/build-pkg.sh first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Engine } from '../../pkg/vpp_license_engine.node.mjs';
import { Driver, MemoryStore, appReportCsv, assignmentReportCsv, createFetchTransport, csvField, csvLine } from '../../pkg/host-shim/index.js';
import { startSimulator } from '../../host-shim/simulator/index.js';
import { parseCsv } from './csv-support.mjs';

async function collect(chunks) {
  const parts = [];
  for await (const chunk of chunks) parts.push(chunk);
  return parts;
}

test('fields with commas, quotes and line breaks are quoted with doubled quotes, and lines end in CRLF', () => {
  assert.equal(csvField('plain'), 'plain');
  assert.equal(csvField('a,b'), '"a,b"');
  assert.equal(csvField('say "hi"'), '"say ""hi"""');
  assert.equal(csvField('two\nlines'), '"two\nlines"');
  assert.equal(csvField('cr\rlf'), '"cr\rlf"');
  assert.equal(csvField(null), '');
  assert.equal(csvField(undefined), '');
  assert.equal(csvField(42), '42');
  assert.equal(csvField(true), 'true');
  assert.equal(csvLine(['a', 'b,c', null, 3]), 'a,"b,c",,3\r\n');
  const tricky = ['x"y', 'p,q', 'l1\r\nl2', '', 'é ✓'];
  assert.deepEqual(parseCsv(csvLine(tricky)), [tricky]);
});

test('text that a spreadsheet would run as a formula gets a leading apostrophe unless the guard is off', () => {
  for (const text of ['=1+2', '+1', '-1', '@SUM(A1)', '\tx', '\rx']) {
    assert.equal(parseCsv(csvLine([text]))[0][0], `'${text}`, JSON.stringify(text));
  }
  assert.equal(csvField('=HYPERLINK("http://x","y")'), '"\'=HYPERLINK(""http://x"",""y"")"');
  assert.equal(csvField('a=b'), 'a=b', 'only a leading sign is a formula');
  assert.equal(csvField(-5), '-5', 'numbers stay numbers');
  assert.equal(csvField('=1+2', { guardFormulas: false }), '=1+2');
});

test('the assignment CSV follows the report cursor to the end, one chunk per page, with the app filter and names', async () => {
  const rows = Array.from({ length: 7 }, (_, i) => ({
    accountId: i < 4 ? 'a1' : 'a2', adamId: '100', pricingParam: 'STDQ', serialNumber: `S${i}`, clientUserId: null,
    ours: i % 2 === 0, confirmedSince: i === 3 ? null : Date.UTC(2026, 0, 1, 0, 0, i), policyId: i % 2 === 0 ? 'p1' : null,
  }));
  const queries = [];
  const engine = {
    assignmentReport(accountId, query) {
      queries.push({ accountId, ...query });
      const from = query.after == null ? 0 : Number(query.after);
      const next = from + query.limit < rows.length ? String(from + query.limit) : null;
      return { rows: rows.slice(from, from + query.limit), next, total: rows.length };
    },
  };
  const chunks = await collect(assignmentReportCsv(engine, null, { pageSize: 3, adamId: '100', pricingParam: 'STDQ', appName: () => 'Keynote, "pro"' }));
  assert.equal(chunks.length, 1 + 3, 'the header, then one chunk per page');
  assert.deepEqual(queries.map((q) => q.after), [null, '3', '6']);
  assert.ok(queries.every((q) => q.accountId === null && q.limit === 3 && q.adamId === '100' && q.pricingParam === 'STDQ'));
  const [header, ...lines] = parseCsv(chunks.join(''));
  assert.deepEqual(header, ['accountId', 'adamId', 'appName', 'pricingParam', 'serialNumber', 'clientUserId', 'assignedBy', 'confirmedSince', 'policyId']);
  assert.deepEqual(lines.map((l) => l[4]), rows.map((r) => r.serialNumber));
  assert.deepEqual(lines[0], ['a1', '100', 'Keynote, "pro"', 'STDQ', 'S0', '', 'us', '2026-01-01T00:00:00.000Z', 'p1']);
  assert.deepEqual(lines[3].slice(6), ['other', '', '']);
});

test('the CSV of every account lists each assignment the simulator holds exactly once, in pages', { timeout: 30_000 }, async (t) => {
  const sim = await startSimulator({ port: 0, seed: 3, pageSize: 100 });
  t.after(() => sim.close());
  const orgs = [1, 2].map((i) => sim.addOrganization({ orgName: `ORG${i}`, apps: 3, books: 0, devices: 60, users: 0, assignedFraction: 0.5 }));
  const engine = new Engine({ mdmInfo: { id: 'csv-mdm', name: 'CSV MDM', metadata: 't' }, serviceConfigUrl: sim.serviceConfigUrl, seed: 1 }, Date.now());
  t.after(() => engine.free());
  const synced = new Set();
  let done;
  const allSynced = new Promise((resolve) => { done = resolve; });
  const driver = new Driver({
    engine,
    store: new MemoryStore(),
    transport: createFetchTransport({ timeoutMs: 5000 }),
    onEvent(event) {
      if (event.type === 'syncCompleted' && event.kind === 'full') synced.add(event.accountId);
      if (synced.size === 2) done();
    },
  });
  driver.start();
  orgs.forEach((org, i) => driver.input({ type: 'addAccount', accountId: `a${i + 1}`, name: `Account ${i + 1}`, token: org.token }));
  await allSynced;
  driver.stop();

  const expected = orgs.flatMap((org, i) => org.assignments.map((a) => `a${i + 1}|${a.adamId}|${a.pricingParam}|${a.serialNumber ?? ''}|${a.clientUserId ?? ''}`)).sort();
  assert.ok(expected.length > 100, `${expected.length} assignments`);
  const chunks = await collect(assignmentReportCsv(engine, null, { pageSize: 37 }));
  assert.equal(chunks.length, 1 + Math.ceil(expected.length / 37));
  const [, ...lines] = parseCsv(chunks.join(''));
  const listed = lines.map((l) => `${l[0]}|${l[1]}|${l[3]}|${l[4]}|${l[5]}`);
  assert.equal(new Set(listed).size, listed.length, 'no row twice');
  assert.deepEqual([...listed].sort(), expected);
  assert.ok(lines.every((l) => l[6] === 'other' && !Number.isNaN(Date.parse(l[7]))), 'another MDM assigned them; confirmed by the sync');

  // Bad input: a typed error, and the report reads the same afterwards.
  const before = JSON.stringify(engine.assignmentReport(null, { limit: 10_000 }));
  for (const [call, code] of [
    [() => engine.assignmentReport(null, { after: 'not a cursor' }), 'INVALID_INPUT'],
    [() => engine.assignmentReport(null, { limit: 0 }), 'INVALID_INPUT'],
    [() => engine.assignmentReport(null, { limit: 1.5 }), 'INVALID_INPUT'],
    [() => engine.assignmentReport(null, { pricingParam: 'FREE' }), 'INVALID_INPUT'],
    [() => engine.assignmentReport(null, { sort: 'name' }), 'INVALID_INPUT'],
    [() => engine.assignmentReport(7, {}), 'INVALID_INPUT'],
    [() => engine.assignmentReport('a2', { after: engine.assignmentReport('a1', { limit: 1 }).next }), 'INVALID_INPUT'],
    [() => engine.assignmentReport('nope'), 'UNKNOWN_ACCOUNT'],
    [() => engine.appReport('nope'), 'UNKNOWN_ACCOUNT'],
    [() => engine.appReport({}), 'INVALID_INPUT'],
  ]) {
    assert.throws(call, (error) => error instanceof Error && error.code === code, String(call));
  }
  assert.equal(JSON.stringify(engine.assignmentReport(null, { limit: 10_000 })), before);

  const [appHeader, ...apps] = parseCsv((await collect(appReportCsv(engine, null))).join(''));
  assert.equal(appHeader.length, 10);
  assert.equal(apps.length, 2 * 3);
  const othersUsed = apps.reduce((sum, l) => sum + Number(l[7]), 0);
  assert.equal(othersUsed, expected.length);
});
