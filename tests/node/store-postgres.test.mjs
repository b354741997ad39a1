// The Store contract (tests/stores/contract.mjs) on PostgresStore, each case in a fresh table, against the real
// server that scripts/test.sh starts (scripts/postgres.sh) and names in VPP_PG_URL. Skipped only when VPP_PG_URL
// and CI are both unset; under CI a missing VPP_PG_URL fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { PostgresStore } from '../../host-shim/node/index.js';
import { accountQuery } from '../../host-shim/node/postgres-store.js';
import { accountKeyRanges } from '../../host-shim/record-accounts.js';
import { contractCases, runCase, runStoreContract } from '../stores/contract.mjs';
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

test('PostgreSQL store: a transaction PostgreSQL aborts as a deadlock is run again, up to 3 attempts', { skip }, async () => {
  const place = makePlace();
  const pool = adminPool();
  const seq = `${place.table}_attempts`;
  const store = await place.open();
  try {
    // The first `failures` inserts fail with SQLSTATE 40P01, as after PostgreSQL's deadlock detector chose this
    // transaction; a sequence counts them (nextval is not rolled back with the transaction).
    await pool.query(`CREATE SEQUENCE "${seq}"`);
    await pool.query(`CREATE TABLE "${seq}_limit" (failures INT)`);
    await pool.query(`INSERT INTO "${seq}_limit" VALUES (2)`);
    await pool.query(`CREATE FUNCTION "${place.table}_fail"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF nextval('"${seq}"') <= (SELECT failures FROM "${seq}_limit") THEN
        RAISE EXCEPTION 'injected deadlock' USING ERRCODE = 'deadlock_detected'; END IF; RETURN NEW; END $$`);
    await pool.query(`CREATE TRIGGER fail_write BEFORE INSERT OR UPDATE ON "${place.table}" FOR EACH ROW EXECUTE FUNCTION "${place.table}_fail"()`);
    await store.apply([{ op: 'put', key: 'a', value: 1 }]);
    assert.deepEqual(await store.load(), [{ key: 'a', value: 1 }], 'two deadlocks, then the third attempt commits');
    await pool.query(`ALTER SEQUENCE "${seq}" RESTART`);
    await pool.query(`UPDATE "${seq}_limit" SET failures = 3`);
    await assert.rejects(store.apply([{ op: 'put', key: 'a', value: 2 }]), { code: '40P01' });
    assert.deepEqual(await store.load(), [{ key: 'a', value: 1 }], 'three deadlocks: rejected, nothing written');
  } finally {
    await store.close();
    await pool.query(`DROP TABLE IF EXISTS "${seq}_limit"`);
    await place.cleanup();
    await pool.query(`DROP SEQUENCE IF EXISTS "${seq}"`);
  }
});

test('PostgreSQL store: loadAccount is right whatever the collation of the keys (a table whose keys collate with ICU)', { skip }, async (t) => {
  const pool = adminPool();
  const { rows } = await pool.query("SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'");
  if (rows.length === 0) {
    t.skip('no ICU collation in this PostgreSQL');
    return;
  }
  // Under ICU 'A' and 'a' differ only at the third level: 'scope/A/…' sorts between 'scope/a/' and 'scope/a0', so a
  // range in the column's collation would give account a the records of account A.
  const c = contractCases.find((x) => x.name.startsWith('loadAccount returns the account\'s records'));
  await runCase(c, async () => {
    const place = makePlace();
    await pool.query(`CREATE TABLE "${place.table}" (key TEXT COLLATE "und-x-icu" PRIMARY KEY, value TEXT NOT NULL)`);
    return place;
  });
});

test('PostgreSQL store: loadAccount reads through indexes — the primary key, (key COLLATE "C") and the policies\' account ids — never every record', { skip }, async () => {
  const place = makePlace();
  const pool = adminPool();
  const store = await place.open();
  try {
    const ops = [];
    for (let a = 0; a < 100; a += 1) {
      ops.push({ op: 'put', key: `account/acc${a}`, value: { accountId: `acc${a}` } });
      for (let p = 0; p < 5; p += 1) ops.push({ op: 'put', key: `policy/pol${a}-${p}`, value: { accountId: `acc${a}` } });
      for (let i = 0; i < 200; i += 1) ops.push({ op: 'put', key: `asg/acc${a}/d/S${i}`, value: { i } });
    }
    for (let i = 0; i < 1000; i += 1) ops.push({ op: 'put', key: `device/S${i}`, value: {} });
    await store.apply(ops);
    assert.equal((await store.loadAccount('acc42')).length, 1 + 5 + 200 + 1000, 'the first call creates the indexes');
    await pool.query(`ANALYZE "${place.table}"`);
    const { text, values } = accountQuery(place.table, accountKeyRanges('acc42'), 'acc42');
    const plan = (await pool.query(`EXPLAIN ${text}`, values)).rows.map((r) => r['QUERY PLAN']).join('\n');
    assert.doesNotMatch(plan, /Seq Scan/, plan);
    assert.match(plan, new RegExp(`${place.table}_key_c`), plan);
    assert.match(plan, new RegExp(`${place.table}_policies`), plan);
    assert.match(plan, new RegExp(`${place.table}_pkey`), plan);
  } finally {
    await store.close();
    await place.cleanup();
  }
});
