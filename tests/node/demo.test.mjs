// The README's main command must keep working: the demo starts the simulator and the console server, and
// `--check` fetches the console page, its config, the engine (with the right MIME types) and a token.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const demo = fileURLToPath(new URL('../../scripts/demo.mjs', import.meta.url));

test('the demo serves the console and prints its URL and the demo sTokens', () => {
  const run = spawnSync(process.execPath, [demo, '--check'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, `demo exited with ${run.status}: ${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /Apps and Books simulator: http:\/\/127\.0\.0\.1:\d+/);
  assert.match(run.stdout, /Console: http:\/\/127\.0\.0\.1:\d+\/console\//);
  assert.match(run.stdout, /sToken Springfield High: http:\/\/127\.0\.0\.1:\d+\/tokens\/springfield-high\.vpptoken\n {2}[A-Za-z0-9+/=]{40,}/);
  assert.match(run.stdout, /sToken Shelbyville Annex: /);
  assert.doesNotMatch(run.stdout, /check FAIL/);
  assert.match(run.stdout, /demo check passed/);
});

test('--once is kept as an alias of --check', () => {
  const run = spawnSync(process.execPath, [demo, '--once'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, `demo exited with ${run.status}: ${run.stdout}\n${run.stderr}`);
  assert.match(run.stdout, /demo check passed/);
});

test('the demo server serves only the console, pkg/, its JSON and the tokens', async (t) => {
  const { startDemo } = await import('../../scripts/demo-server.mjs');
  const demo = await startDemo();
  t.after(() => demo.close());
  const origin = new URL(demo.url).origin;
  const get = (pathname, init) => fetch(`${origin}${pathname}`, { redirect: 'manual', ...init });
  assert.equal((await get('/')).headers.get('location'), '/console/');
  for (const pathname of ['/pkg/..%2f..%2fREADME.md', '/console/%E0%A4%A', '/console/../scripts/demo.mjs', '/src/lib.rs', '/tokens/nope.vpptoken']) {
    assert.equal((await get(pathname)).status, 404, pathname);
  }
  assert.equal((await get('/console/', { method: 'POST' })).status, 405);
  const token = await get(`/tokens/${demo.accounts[1].file}`);
  assert.match(token.headers.get('content-disposition'), /attachment; filename="shelbyville-annex\.vpptoken"/);
  assert.equal(await token.text(), demo.accounts[1].token);
  const fixtures = await (await get('/demo-fixtures.json')).json();
  assert.deepEqual(fixtures.locations.map((l) => l.locationName), ['Springfield High', 'Shelbyville Annex']);
  assert.equal(fixtures.locations[0].serialNumbers.length, 50);
  assert.equal(demo.simulator.organization(demo.accounts[1].token).mdmInfo.name, 'Rival MDM');
  assert.equal(demo.simulator.organization(demo.accounts[0].token).serialNumbers.length, 600);
});
