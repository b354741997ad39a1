// The Store contract (tests/stores/contract.mjs) on SqliteStore, each case in a fresh temporary file; and what
// only SQLite has (WAL mode, the file's table, the missing-module error).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteStore } from '../../host-shim/node/index.js';
import { runStoreContract } from '../stores/contract.mjs';

const Database = createRequire(import.meta.url)('better-sqlite3');

function makePlace() {
  const dir = mkdtempSync(path.join(tmpdir(), 'vpp-sqlite-store-'));
  const file = path.join(dir, 'records.db');
  return {
    durable: true,
    file,
    open: (hooks) => SqliteStore.open(file, hooks),
    close: (store) => store.close(),
    // A trigger in the file itself: the adapter's INSERT of `key` aborts inside its transaction.
    failWritesTo: (key) => {
      const db = new Database(file);
      try {
        db.prepare(`CREATE TRIGGER fail_write BEFORE INSERT ON vpp_records WHEN NEW.key = ${db.prepare('SELECT quote(?) AS q').get(key).q}
                    BEGIN SELECT RAISE(ABORT, 'injected write failure'); END`).run();
      } finally {
        db.close();
      }
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

runStoreContract('SQLite', makePlace, { test, capabilities: { durable: true, failWritesTo: true } });

test('SQLite store: the file is in WAL mode with one table of key and JSON text', async () => {
  const place = makePlace();
  try {
    const store = SqliteStore.open(place.file);
    await store.apply([{ op: 'put', key: 'account/a', value: { name: 'A' } }]);
    await store.close();
    const db = new Database(place.file, { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.deepEqual(db.prepare('SELECT key, value FROM vpp_records').all(), [{ key: 'account/a', value: '{"name":"A"}' }]);
    } finally {
      db.close();
    }
  } finally {
    place.cleanup();
  }
});

test('SQLite store: open validates its arguments', () => {
  assert.throws(() => SqliteStore.open(''), TypeError);
  assert.throws(() => SqliteStore.open('/tmp/x.db', { protect: (s) => s }), /both protect and unprotect/);
});
