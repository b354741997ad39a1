// Apps and Books simulator, standalone: the CLI prints its URL and sTokens, serves, and stops on SIGINT.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

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

test('the CLI refuses a non-loopback host and unknown options with exit code 2', async () => {
  for (const args of [['--host', '0.0.0.0'], ['--bogus']]) {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (c) => { err += c; });
    const [code] = await once(child, 'exit');
    assert.equal(code, 2, args.join(' '));
    assert.match(err, /usage:/);
  }
});
