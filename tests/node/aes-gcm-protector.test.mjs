// aesGcmProtector: the ready token protection hooks for Node, alone and through a store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteStore, aesGcmProtector } from '../../host-shim/node/index.js';

const MARKER = 'secret-stoken-marker';
const TOKEN = `${MARKER}-0123456789abcdef ü`;

test('protect gives a v1 value that differs each time and unprotect round-trips it', () => {
  const { protect, unprotect } = aesGcmProtector(randomBytes(32));
  const a = protect(TOKEN);
  const b = protect(TOKEN);
  assert.match(a, /^v1:[A-Za-z0-9+/]+=*$/);
  assert.notEqual(a, b, 'a random IV per value');
  assert.ok(!a.includes(MARKER) && !Buffer.from(a.slice(3), 'base64').includes(MARKER));
  assert.equal(unprotect(a), TOKEN);
  assert.equal(unprotect(b), TOKEN);
  assert.equal(unprotect(protect('')), '');
});

test('unprotect refuses a wrong key, a tampered value and an unprotected one, without echoing the value', () => {
  const key = randomBytes(32);
  const stored = aesGcmProtector(key).protect(TOKEN);
  const other = aesGcmProtector(randomBytes(32));
  assert.throws(() => other.unprotect(stored), /authentication failed/);
  const bytes = Buffer.from(stored.slice(3), 'base64');
  bytes[bytes.length - 1] ^= 1;
  assert.throws(() => aesGcmProtector(key).unprotect(`v1:${bytes.toString('base64')}`), /authentication failed/);
  assert.throws(() => aesGcmProtector(key).unprotect('v1:AAAA'), /truncated/);
  assert.throws(() => aesGcmProtector(key).unprotect(TOKEN), (error) => {
    assert.match(error.message, /not a v1 protected value/);
    assert.ok(!error.message.includes(MARKER));
    return true;
  });
});

test('the key must be 32 bytes, and a later change to the caller\'s buffer does not matter', () => {
  assert.throws(() => aesGcmProtector(randomBytes(16)), /32 bytes/);
  assert.throws(() => aesGcmProtector('0'.repeat(32)), /32 bytes/);
  const key = randomBytes(32);
  const protector = aesGcmProtector(key);
  const stored = protector.protect(TOKEN);
  key.fill(0);
  assert.equal(protector.unprotect(stored), TOKEN);
});

test('through SqliteStore, the token is not in the database file, and comes back with the key', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'vpp-aes-store-'));
  try {
    const file = path.join(dir, 'records.db');
    const key = randomBytes(32);
    const record = { accountId: 'hq', name: 'Headquarters', token: TOKEN };
    const store = SqliteStore.open(file, aesGcmProtector(key));
    await store.apply([{ op: 'put', key: 'account/hq', value: record }]);
    await store.close();
    for (const f of readdirSync(dir)) {
      assert.ok(!readFileSync(path.join(dir, f)).includes(MARKER), `${f} holds the token`);
    }
    assert.ok(readFileSync(file).includes('Headquarters'), 'the rest of the record is stored as given');
    const reopened = SqliteStore.open(file, aesGcmProtector(key));
    assert.deepEqual(await reopened.load(), [{ key: 'account/hq', value: record }]);
    await reopened.close();
    const wrongKey = SqliteStore.open(file, aesGcmProtector(randomBytes(32)));
    await assert.rejects(wrongKey.load(), /authentication failed/);
    await wrongKey.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
