// Apps and Books simulator, standalone: the CLI prints its URL and sTokens, serves, and stops on SIGINT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { call, receiver, subscribe } from './simulator-support.mjs';

const CLI = fileURLToPath(new URL('../../host-shim/simulator/cli.js', import.meta.url));

test('the CLI prints the base URL and one sToken per organization, serves them, and exits on SIGINT', { timeout: 15_000 }, async () => {
  const child = spawn(process.execPath, [CLI, '--port', '0', '--seed', '3', '--orgs', '2', '--apps', '3', '--devices', '20', '--users', '5'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8');
  const ready = new Promise((resolve) => child.stdout.on('data', (chunk) => {
    out += chunk;
    if ((out.match(/sToken: /g) ?? []).length === 2) resolve();
  }));
  await ready;
  const url = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)[1];
  const tokens = [...out.matchAll(/sToken: (\S+)/g)].map((m) => m[1]);
  assert.match(out, new RegExp(`service config: ${url}/mdm/v2/service/config`));
  for (const token of tokens) {
    const res = await fetch(`${url}/mdm/v2/assets`, { headers: { Authorization: `Bearer ${token}` } });
    assert.equal(res.status, 200);
    assert.equal((await res.json()).assets.length, 5, '3 apps and 2 books');
  }
  child.kill('SIGINT');
  const [code] = await once(child, 'exit');
  assert.equal(code, 0);
});

test('the CLI refuses a non-loopback host, unknown options and bad values with exit code 2', async () => {
  for (const args of [['--host', '0.0.0.0'], ['--bogus'], ['--port', '0', '--phantom-fraction', '2'], ['--port', '0', '--flood-spread-ms', 'x']]) {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => { err += c; });
    const [code] = await once(child, 'exit');
    assert.equal(code, 2, args.join(' '));
    assert.match(err, /usage:/);
  }
});

test('--phantom-fraction and --flood-spread-ms switch the field failure modes on for every organization', { timeout: 20_000 }, async (t) => {
  const child = spawn(process.execPath, [CLI, '--port', '0', '--apps', '3', '--free-apps', '3', '--books', '0', '--devices', '5', '--users', '0',
    '--event-delay-ms', '10', '--phantom-fraction', '1', '--flood-spread-ms', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => child.kill('SIGINT'));
  let out = '';
  child.stdout.setEncoding('utf8');
  await new Promise((resolve) => child.stdout.on('data', (chunk) => {
    out += chunk;
    if (/sToken: \S+\n/.test(out)) resolve();
  }));
  const sim = { url: /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out)[1] };
  const token = /sToken: (\S+)/.exec(out)[1];
  const hook = await receiver(t);
  await subscribe(sim, token, hook.url);
  const assets = (await call(sim, '/assets', { token })).body.assets.filter((a) => a.deviceAssignable).slice(0, 2)
    .map(({ adamId, pricingParam }) => ({ adamId, pricingParam }));
  assert.equal(assets.length, 2);
  const serialNumbers = ['CLIPHANTOM01', 'CLIPHANTOM02'];
  const { eventId } = (await call(sim, '/assets/associate', { token, method: 'POST', body: { assets, serialNumbers } })).body;
  let status;
  do {
    await new Promise((resolve) => setTimeout(resolve, 20));
    status = (await call(sim, '/status', { token, query: { eventId } })).body;
  } while (status.eventStatus === 'PENDING');
  assert.deepEqual([status.eventStatus, status.numCompleted], ['COMPLETE', 4]);
  for (const serialNumber of serialNumbers) {
    assert.deepEqual((await call(sim, '/assignments', { token, query: { serialNumber } })).body.assignments, [], 'a phantom');
  }
  while (new Set(hook.ofType('ASSET_MANAGEMENT').map((n) => n.notificationId)).size < 2) await new Promise((resolve) => setTimeout(resolve, 20));
  const perApp = hook.ofType('ASSET_MANAGEMENT').map((n) => n.notification.assignments.map((a) => a.adamId));
  assert.ok(perApp.every((adamIds) => adamIds.length === 2 && adamIds[0] === adamIds[1]), 'a flood: one notification per app');
});
