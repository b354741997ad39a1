// PostgreSQL Store (see ../store.d.ts) for production backends, with the npm package pg (an optional dependency
// of vpp-license-engine). One table (key TEXT PRIMARY KEY, value TEXT holding JSON); each apply() is one
// transaction (BEGIN … COMMIT), so a batch is all or nothing.
import { createRequire } from 'node:module';
import { decodeRecord, encodeOps, netEffect, serialQueue, tokenHooks } from '../protect.js';

const NAME = 'PostgresStore';
export const DEFAULT_TABLE = 'vpp_records';

function loadPg() {
  try {
    return createRequire(import.meta.url)('pg');
  } catch (error) {
    if (error?.code !== 'MODULE_NOT_FOUND') throw error;
    throw new Error(`${NAME} needs the npm package pg: run 'npm install pg'`, { cause: error });
  }
}

export class PostgresStore {
  #pool;
  #ownsPool;
  #table;
  #hooks;
  #queue = serialQueue();

  /**
   * Connects (through `pool`, or a new pool on `connectionString`) and creates the table if it is missing.
   * Options: `{ connectionString | pool, table = 'vpp_records', protect, unprotect }`.
   */
  static async connect({ connectionString, pool, table = DEFAULT_TABLE, ...hookOptions } = {}) {
    if ((connectionString === undefined) === (pool === undefined)) {
      throw new TypeError(`${NAME}.connect: pass exactly one of connectionString and pool`);
    }
    if (typeof table !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(table)) {
      throw new TypeError(`${NAME}.connect: table must be a plain SQL identifier, got ${JSON.stringify(table)}`);
    }
    const hooks = tokenHooks(hookOptions, NAME);
    const ownsPool = pool === undefined;
    const usedPool = pool ?? new (loadPg().Pool)({ connectionString });
    try {
      await usedPool.query(`CREATE TABLE IF NOT EXISTS "${table}" (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
    } catch (error) {
      if (ownsPool) await usedPool.end().catch(() => {});
      throw error;
    }
    return new PostgresStore(usedPool, ownsPool, table, hooks);
  }

  constructor(pool, ownsPool, table, hooks) {
    this.#pool = pool;
    this.#ownsPool = ownsPool;
    this.#table = table;
    this.#hooks = hooks;
  }

  /** Applies one persist output's ops in one transaction: all or nothing; calls commit in call order. */
  apply(ops) {
    return this.#queue(async () => {
      // Only the net effect reaches the server (each key's last op): the same end state as every op in
      // order, in two statements whatever the batch size.
      const { deletes, puts } = netEffect(await encodeOps(ops, this.#hooks, NAME));
      const client = await this.#pool.connect();
      let broken;
      try {
        await client.query('BEGIN');
        if (deletes.length > 0) await client.query(`DELETE FROM "${this.#table}" WHERE key = ANY($1::text[])`, [deletes]);
        if (puts.length > 0) {
          await client.query(
            `INSERT INTO "${this.#table}" (key, value) SELECT * FROM unnest($1::text[], $2::text[])
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
            [puts.map((p) => p.key), puts.map((p) => p.json)],
          );
        }
        await client.query('COMMIT');
      } catch (error) {
        await client.query('ROLLBACK').catch((rollbackError) => { broken = rollbackError; });
        throw error;
      } finally {
        client.release(broken);
      }
    });
  }

  /** Every stored record, as Engine.restore takes them. */
  load() {
    return this.#queue(async () => {
      const { rows } = await this.#pool.query(`SELECT key, value FROM "${this.#table}"`);
      return Promise.all(rows.map(({ key, value }) => decodeRecord(key, value, this.#hooks, NAME)));
    });
  }

  /** Waits for pending applies; ends the pool if connect() created it (a pool passed in stays open). */
  close() {
    return this.#queue(async () => {
      if (this.#ownsPool) await this.#pool.end();
    });
  }
}
