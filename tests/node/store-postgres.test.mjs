// The Store contract (tests/stores/contract.mjs) on PostgresStore, each case in a fresh table, against the real
// server that scripts/test.sh starts (scripts/postgres.sh) and names in VPP_PG_URL. Skipped only when VPP_PG_URL
// and CI are both unset; under CI a missing VPP_PG_URL fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { PostgresStore } from '../../host-shim/node/index.js';
import { runStoreContract } from '../stores/contract.mjs';
import { adminPool, pgSkip as skip, pgUrl as url } from './postgres-support.mjs';

const pg = createRequire(import.meta.url)('pg');

let tables = 0;
function makePlace() {
  const table = `vpp_contract_${process.pid}_${(tables += 1)}`;
  const pool = adminPool();
  return {
    durable: true,
    table,
    open: (hooks) => PostgresStore.connect({ connectionString: url, table, ...hooks }),
    close: (store) => store.close(),
    // A trigger on the table: the adapter's INSERT of `key` raises inside its transaction.
    failWritesTo: async (key) => {
      await pool.query(`CREATE FUNCTION "${table}_fail"() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN IF NEW.key = ${pg.Client.prototype.escapeLiteral(key)} THEN RAISE EXCEPTION 'injected write failure'; END IF; RETURN NEW; END $$`);
      await pool.query(`CREATE TRIGGER fail_write BEFORE INSERT OR UPDATE ON "${table}" FOR EACH ROW EXECUTE FUNCTION "${table}_fail"()`);
    },
    cleanup: async () => {
      await pool.query(`DROP TABLE IF EXISTS "${table}"`);
      await pool.query(`DROP FUNCTION IF EXISTS "${table}_fail"()`);
    },
  };
}

runStoreContract('PostgreSQL', makePlace, { test, capabilities: { durable: true, failWritesTo: true }, skip });

test('PostgreSQL store: one table of key and JSON text; a pool passed in stays open after close()', { skip }, async () => {
  const place = makePlace();
  const pool = new pg.Pool({ connectionString: url, max: 3 });
  try {
    const store = await PostgresStore.connect({ pool, table: place.table });
    await store.apply([{ op: 'put', key: 'account/a', value: { name: 'Ä' } }]);
    await store.close();
    const { rows } = await pool.query(`SELECT key, value FROM "${place.table}"`);
    assert.deepEqual(rows, [{ key: 'account/a', value: '{"name":"Ä"}' }]);
  } finally {
    await pool.end();
    await place.cleanup();
  }
});

test('PostgreSQL store: connect validates its options', { skip }, async () => {
  await assert.rejects(PostgresStore.connect({}), /exactly one of connectionString and pool/);
  await assert.rejects(PostgresStore.connect({ connectionString: url, table: 'x; DROP TABLE y' }), /plain SQL identifier/);
  await assert.rejects(PostgresStore.connect({ connectionString: url, protect: (s) => s }), /both protect and unprotect/);
});
