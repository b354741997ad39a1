// The README's main command must keep working: run the demo until both accounts settle.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const demo = fileURLToPath(new URL('../../scripts/demo.mjs', import.meta.url));

test('the demo claims and syncs one location and reports the other as owned by another MDM', () => {
  const run = spawnSync(process.execPath, [demo, '--once'], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(run.status, 0, `demo exited with ${run.status}: ${run.stderr}`);
  assert.match(run.stdout, /Apps and Books simulator: http:\/\/127\.0\.0\.1:\d+/);
  assert.match(run.stdout, /"type":"syncCompleted","accountId":"high","kind":"full"/);
  assert.match(run.stdout, /"type":"ownershipLost","accountId":"annex","ownerName":"Rival MDM"/);
  assert.doesNotMatch(run.stdout, /"errorNumber":9646|9646:/, 'the engine stays under the rate limit');
});
