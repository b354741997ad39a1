// PostgreSQL Store (see ../store.d.ts) for production backends, with the npm package pg (an optional dependency
// of vpp-license-engine). One table (key TEXT PRIMARY KEY, value TEXT holding JSON); each apply() is one
// transaction (BEGIN … COMMIT), so a batch is all or nothing.
//
// loadAccount reads one account's records by key ranges: prefixes compare in the "C" collation (bytewise, whatever the
// database's collation), through an index `<table>_key_c` on (key COLLATE "C"), and policies (which name their
// account only in their value) through a partial expression index `<table>_policies` on the value's accountId; both
// are created on the first loadAccount.
//
// It is also a LeaseStore, for several backends on one database: two more tables, created on first use,
// `<table>_leases (account_id PRIMARY KEY, holder, expires_at)` and `<table>_holders (holder PRIMARY KEY,
// expires_at)`, and a partial index `<table>_accounts` of the `account/<id>` keys. Every expiry is decided by the DATABASE clock (now()), never by an instance's clock, and each
// lease change is one atomic statement. applyFenced checks the leases inside the transaction that writes, with
// the lease rows locked (FOR SHARE) until it commits, so that no instance writes after another took the lease.
//
// Connections die (server restart, failover, pg_terminate_backend): every error of the pool connect() creates and of
// each connection a transaction checks out is handled here, so none reaches Node as an unhandled 'error' event. A
// dropped connection fails the one call that used it (the Driver retries writes); the pool connects anew.
import { createRequire } from 'node:module';
import { accountsOfOps, fenceOps, touchedAccounts } from '../lease-fence.js';
import { checkAccountIds, checkHolder, checkTtl, loadAccountArgs, loadArgs } from '../lease-store-checks.js';
import { ACCOUNT_PREFIX, accountKeyRanges, prefixEnd } from '../record-accounts.js';
import { decodeJsonRecords, decodeRecords, decodeStored, encodeOps, netEffect } from '../record-encoding.js';
import { serialQueue } from '../serial-queue.js';
import { tokenHooks } from '../token-protection.js';

const NAME = 'PostgresStore';
export const DEFAULT_TABLE = 'vpp_records';
/**
 * Suffixes of the lease tables' names, of the index of the account keys that leaseStates reads, and of the indexes
 * loadAccount reads through.
 */
const LEASES_SUFFIX = '_leases';
const HOLDERS_SUFFIX = '_holders';
const ACCOUNTS_INDEX_SUFFIX = '_accounts';
const KEY_C_INDEX_SUFFIX = '_key_c';
const BY_VALUE_INDEX_SUFFIX = '_policies';
/** PostgreSQL names have at most 63 bytes: the lease tables and those indexes need a records table name this short. */
const MAX_LEASING_TABLE_LENGTH = 63 - Math.max(LEASES_SUFFIX.length, HOLDERS_SUFFIX.length, ACCOUNTS_INDEX_SUFFIX.length,
  KEY_C_INDEX_SUFFIX.length, BY_VALUE_INDEX_SUFFIX.length);
/** The condition selecting `account/<id>` keys; the partial index has the same one, so lease rounds read only those. */
const ACCOUNT_KEYS = `left(key, ${ACCOUNT_PREFIX.length}) = '${ACCOUNT_PREFIX}'`;
/** SQLSTATEs after which PostgreSQL rolled a transaction back and running it again may succeed. */
const RETRYABLE = new Set(['40P01', '40001']);
const TRANSACTION_ATTEMPTS = 3;
/** `now() + $n milliseconds`, in SQL. */
const expiresIn = (param) => `now() + ${param}::bigint * interval '1 millisecond'`;
/** The pool connect() creates: a connection attempt gives up after 10 s (an unreachable host), TCP keepalive on. */
const OWNED_POOL_OPTIONS = { connectionTimeoutMillis: 10_000, keepAlive: true };

/** A string as an SQL literal (the engine's prefixes and field names: no quote in them, but never trusted blindly). */
const literal = (text) => `'${text.replaceAll("'", "''")}'`;
/** The records under a byValue prefix, in SQL (the partial index has the same condition). */
const byValuePrefixCondition = ({ prefix }) => `left(key, ${[...prefix].length}) = ${literal(prefix)}`;
/** The account id in the value of such a record, in SQL (the indexed expression). */
const byValueExpression = ({ field }) => `value::json ->> ${literal(field)}`;
/** Such a record's account id, for loadAccount: `<condition> = $n` uses the partial index. */
const byValueCondition = (byValue) => `${byValuePrefixCondition(byValue)} AND (${byValueExpression(byValue)})`;

/**
 * The statement of loadAccount: the keys by the primary key, each prefix as a range in the "C" collation (the
 * `<table>_key_c` index), each byValue prefix through its partial index; UNION ALL, so one snapshot.
 */
export function accountQuery(table, ranges, accountId) {
  const values = [ranges.keys];
  const param = (value) => `$${values.push(value)}`;
  const parts = [`SELECT key, value FROM "${table}" WHERE key = ANY($1::text[])`];
  for (const prefix of ranges.prefixes) {
    parts.push(`SELECT key, value FROM "${table}" WHERE key COLLATE "C" >= ${param(prefix)} AND key COLLATE "C" < ${param(prefixEnd(prefix))}`);
  }
  for (const byValue of ranges.byValue) parts.push(`SELECT key, value FROM "${table}" WHERE ${byValueCondition(byValue)} = ${param(accountId)}`);
  return { text: parts.join('\nUNION ALL '), values };
}

function loadPg() {
  try {
    return createRequire(import.meta.url)('pg');
  } catch (error) {
    if (error?.code !== 'MODULE_NOT_FOUND') throw error;
    throw new Error(`${NAME} needs the npm package pg: run 'npm install pg'`, { cause: error });
  }
}

/**
 * What PostgreSQL answers a CREATE … IF NOT EXISTS when another connection created the same object at the same
 * moment, instead of skipping it: a unique violation on its catalog (23505), the relation (42P07) or, for a table,
 * its row type (42710, "type … already exists").
 */
const CREATED_MEANWHILE = new Set(['23505', '42P07', '42710']);

/** Runs a CREATE … IF NOT EXISTS, once more when another connection created the same object at the same moment. */
async function createIfMissing(pool, statement) {
  const create = () => pool.query(statement);
  try {
    await create();
  } catch (error) {
    if (!CREATED_MEANWHILE.has(error?.code)) throw error;
    await create();
  }
}

export class PostgresStore {
  #pool;
  #ownsPool;
  #table;
  #hooks;
  #queue = serialQueue();
  /** Creates the lease tables once, on the first lease call. */
  #leaseTables;
  /** Creates the indexes of loadAccount once, on its first call. */
  #accountIndexes;

  /**
   * Connects (through `pool`, or a new pool on `connectionString`) and creates the table if it is missing.
   * Options: `{ connectionString | pool, table = 'vpp_records', protect, unprotect, onError }`. `onError` gets the
   * errors of idle connections of the pool created here (the pool has dropped them already; default: ignored).
   */
  static async connect({ connectionString, pool, table = DEFAULT_TABLE, onError = () => {}, ...hookOptions } = {}) {
    if ((connectionString === undefined) === (pool === undefined)) {
      throw new TypeError(`${NAME}.connect: pass exactly one of connectionString and pool`);
    }
    if (typeof table !== 'string' || !/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(table)) {
      throw new TypeError(`${NAME}.connect: table must be a plain SQL identifier, got ${JSON.stringify(table)}`);
    }
    if (typeof onError !== 'function') throw new TypeError(`${NAME}.connect: onError must be a function`);
    const hooks = tokenHooks(hookOptions, NAME);
    const ownsPool = pool === undefined;
    const usedPool = pool ?? new (loadPg().Pool)({ connectionString, ...OWNED_POOL_OPTIONS });
    // Without a listener, an idle connection the server ends would be an unhandled 'error' event: the process exits.
    // (A pool passed in is the caller's: it needs its own listener, as pg requires.)
    if (ownsPool) {
      usedPool.on('error', (error) => {
        try {
          onError(error);
        } catch {
          // a throwing onError must not become the unhandled error this listener is here to prevent
        }
      });
    }
    try {
      await createIfMissing(usedPool, `CREATE TABLE IF NOT EXISTS "${table}" (key TEXT PRIMARY KEY, value TEXT NOT NULL)`);
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
      const encoded = await encodeOps(ops, this.#hooks, NAME);
      await this.#transaction((client) => this.#write(client, encoded));
    });
  }

  /**
   * Like apply, for an instance that holds leases: in the same transaction, leaves out the ops of every account
   * whose lease `holder` does not hold (by the database clock) and resolves with those accounts' ids; the other
   * ops are written. The lease rows stay locked until the commit, so a lease cannot change hands mid-write.
   */
  applyFenced(holder, ops) {
    checkHolder(holder, `${NAME}.applyFenced`);
    return this.#queue(async () => {
      const encoded = await encodeOps(ops, this.#hooks, NAME);
      const { leases } = await this.#ensureLeaseTables();
      return this.#transaction(async (client) => {
        const { lookUp, complete } = accountsOfOps(ops);
        const stored = new Map();
        if (lookUp.length > 0) {
          const { rows } = await client.query(`SELECT key, value FROM "${this.#table}" WHERE key = ANY($1::text[])`, [lookUp]);
          for (const { key, value } of rows) stored.set(key, JSON.parse(value));
        }
        const accounts = complete(stored);
        const touched = touchedAccounts(accounts);
        const held = new Set();
        if (touched.length > 0) {
          const { rows } = await client.query(
            `SELECT account_id FROM "${leases}" WHERE account_id = ANY($1::text[]) AND holder = $2 AND expires_at > now()
             ORDER BY account_id FOR SHARE`,
            [touched, holder],
          );
          for (const { account_id: id } of rows) held.add(id);
        }
        const { keep, skipped } = fenceOps(accounts, held);
        await this.#write(client, encoded.filter((_, index) => keep[index]));
        return { skipped };
      });
    });
  }

  /** Marks `holder` live until the database's now + ttlMs; resolves with how many holders are live, itself included. */
  async heartbeat(holder, ttlMs) {
    checkHolder(holder, `${NAME}.heartbeat`);
    checkTtl(ttlMs, `${NAME}.heartbeat`);
    const { holders } = await this.#ensureLeaseTables();
    // Rows of holders gone for an hour are removed on the way; the count is of the others, as the statement sees
    // the table before its own upsert.
    const { rows } = await this.#pool.query(
      `WITH me AS (
         INSERT INTO "${holders}" (holder, expires_at) VALUES ($1, ${expiresIn('$2')})
         ON CONFLICT (holder) DO UPDATE SET expires_at = EXCLUDED.expires_at),
       gone AS (DELETE FROM "${holders}" WHERE expires_at < now() - interval '1 hour' AND holder <> $1)
       SELECT count(*)::int AS others FROM "${holders}" WHERE expires_at > now() AND holder <> $1`,
      [holder, ttlMs],
    );
    return rows[0].others + 1;
  }

  /**
   * Every account with records (`account/<id>`), the holder of its live lease and the milliseconds until that lease
   * expires by the database clock, rounded up (null, null when free or expired).
   */
  async leaseStates() {
    const { leases } = await this.#ensureLeaseTables();
    const { rows } = await this.#pool.query(
      `SELECT r.account_id, l.holder, ceil(extract(epoch FROM l.expires_at - now()) * 1000)::float8 AS expires_in_ms
       FROM (SELECT substr(key, ${ACCOUNT_PREFIX.length + 1}) AS account_id FROM "${this.#table}" WHERE ${ACCOUNT_KEYS}) r
       LEFT JOIN "${leases}" l ON l.account_id = r.account_id AND l.expires_at > now()`,
    );
    return rows.map(({ account_id: accountId, holder, expires_in_ms: expiresInMs }) => ({ accountId, holder, expiresInMs }));
  }

  /**
   * One statement: takes, until the database's now + ttlMs, the lease of each account that is free or expired,
   * and renews those `holder` holds; resolves with the ids `holder` holds afterwards.
   */
  async acquireLeases(holder, accountIds, ttlMs) {
    checkHolder(holder, `${NAME}.acquireLeases`);
    checkAccountIds(accountIds, `${NAME}.acquireLeases`);
    checkTtl(ttlMs, `${NAME}.acquireLeases`);
    if (accountIds.length === 0) return [];
    const { leases } = await this.#ensureLeaseTables();
    // Rows in account order, as applyFenced locks them: concurrent statements wait for each other, never deadlock.
    const { rows } = await this.#pool.query(
      `INSERT INTO "${leases}" AS l (account_id, holder, expires_at)
       SELECT id, $1, ${expiresIn('$3')} FROM (SELECT DISTINCT unnest($2::text[]) AS id) ids ORDER BY id
       ON CONFLICT (account_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
       WHERE l.holder = EXCLUDED.holder OR l.expires_at <= now()
       RETURNING l.account_id`,
      [holder, accountIds, ttlMs],
    );
    return rows.map((row) => row.account_id);
  }

  /** Ends `holder`'s leases of these accounts (other holders' leases are left alone). */
  async releaseLeases(holder, accountIds) {
    checkHolder(holder, `${NAME}.releaseLeases`);
    checkAccountIds(accountIds, `${NAME}.releaseLeases`);
    const { leases } = await this.#ensureLeaseTables();
    await this.#pool.query(`DELETE FROM "${leases}" WHERE holder = $1 AND account_id = ANY($2::text[])`, [holder, accountIds]);
  }

  /** Ends `holder`'s presence and every lease it holds. */
  async leave(holder) {
    checkHolder(holder, `${NAME}.leave`);
    const { leases, holders } = await this.#ensureLeaseTables();
    await this.#pool.query(
      `WITH gone AS (DELETE FROM "${holders}" WHERE holder = $1) DELETE FROM "${leases}" WHERE holder = $1`,
      [holder],
    );
  }

  /**
   * Runs `body(client)` between BEGIN and COMMIT on one pooled connection; ROLLBACK when it throws. A deadlock or
   * serialization failure (instances writing the same device or user records at once) runs it again, up to 3 times.
   */
  async #transaction(body) {
    for (let attempt = 1; ; attempt += 1) {
      try {
        return await this.#transactionOnce(body);
      } catch (error) {
        if (!RETRYABLE.has(error?.code) || attempt === TRANSACTION_ATTEMPTS) throw error;
      }
    }
  }

  async #transactionOnce(body) {
    const { client, failure, onConnectionError } = await this.#checkOut();
    let broken;
    try {
      await client.query('BEGIN');
      const result = await body(client);
      await client.query('COMMIT');
      return result;
    } catch (error) {
      broken = failure.error;
      if (broken === undefined) await client.query('ROLLBACK').catch((rollbackError) => { broken = rollbackError; });
      throw error;
    } finally {
      broken ??= failure.error;
      if (broken === undefined) client.removeListener?.('error', onConnectionError);
      client.release(broken);
    }
  }

  /**
   * Checks a connection out of the pool with an 'error' listener on it: pg-pool listens to a connection's errors
   * only while it is idle, so a connection the server ends while it is checked out (between two statements, or with
   * one running) would emit an unhandled 'error'. The listener is added in pg's callback, synchronously as the pool
   * hands the connection over: the rest of the network data being parsed then (a "terminating connection" message
   * right after the previous user's last answer) may be an error, and it must not find the connection without one.
   * `failure.error` is the connection's first error. The listener stays on a broken connection, which may emit again
   * as it closes; the pool then discards it.
   */
  #checkOut() {
    return new Promise((resolve, reject) => {
      let settled = false;
      const handOver = (error, client) => {
        if (settled) return;
        settled = true;
        if (error) {
          reject(error);
          return;
        }
        const failure = { error: undefined };
        const onConnectionError = (connectionError) => {
          failure.error ??= connectionError;
        };
        client.on?.('error', onConnectionError);
        resolve({ client, failure, onConnectionError });
      };
      // A pool whose connect() only returns a promise (not pg's) gets the listener a moment later.
      const promise = this.#pool.connect(handOver);
      if (typeof promise?.then === 'function') promise.then((client) => handOver(undefined, client), handOver);
    });
  }

  /**
   * Writes encoded ops on `client`. Only the net effect reaches the server (each key's last op): the same end
   * state as every op in order, in two statements whatever the batch size.
   */
  async #write(client, encoded) {
    const { deletes, puts } = netEffect(encoded);
    // In key order, so that concurrent transactions lock the rows they share in the same order.
    deletes.sort();
    puts.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    if (deletes.length > 0) await client.query(`DELETE FROM "${this.#table}" WHERE key = ANY($1::text[])`, [deletes]);
    if (puts.length > 0) {
      await client.query(
        `INSERT INTO "${this.#table}" (key, value) SELECT * FROM unnest($1::text[], $2::text[])
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value`,
        [puts.map((p) => p.key), puts.map((p) => p.json)],
      );
    }
  }

  #ensureLeaseTables() {
    if (this.#table.length > MAX_LEASING_TABLE_LENGTH) {
      return Promise.reject(new RangeError(`${NAME}: leases need a table name of at most ${MAX_LEASING_TABLE_LENGTH} characters`));
    }
    const names = { leases: `${this.#table}${LEASES_SUFFIX}`, holders: `${this.#table}${HOLDERS_SUFFIX}` };
    this.#leaseTables ??= (async () => {
      await createIfMissing(this.#pool, `CREATE TABLE IF NOT EXISTS "${names.leases}"
        (account_id TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL)`);
      await createIfMissing(this.#pool, `CREATE TABLE IF NOT EXISTS "${names.holders}" (holder TEXT PRIMARY KEY, expires_at TIMESTAMPTZ NOT NULL)`);
      // Every instance lists the accounts each round: through this index, not a scan of every record.
      await createIfMissing(this.#pool,
        `CREATE INDEX IF NOT EXISTS "${this.#table}${ACCOUNTS_INDEX_SUFFIX}" ON "${this.#table}" (key) WHERE ${ACCOUNT_KEYS}`);
      return names;
    })();
    // A failed creation is tried again on the next call.
    this.#leaseTables.catch(() => { this.#leaseTables = undefined; });
    return this.#leaseTables;
  }

  /**
   * One account's records and, unless `{ shared: false }`, the records of no account (what `Engine.adopt` keeps), in
   * one statement (one snapshot): the keys by the primary key, each prefix as a range of the "C"-collated key index,
   * the policies of the account through the index on their value's account id. Never a scan of every record.
   */
  loadAccount(accountId, options) {
    return this.#queue(async () => {
      const { shared, json } = loadAccountArgs(accountId, options, `${NAME}.loadAccount`);
      const ranges = accountKeyRanges(accountId, shared);
      await this.#ensureAccountIndexes(ranges);
      const { text, values } = accountQuery(this.#table, ranges, accountId);
      const { rows } = await this.#pool.query(text, values);
      return decodeStored(rows, this.#hooks, NAME, { json });
    });
  }

  /**
   * Creates, once, the indexes loadAccount reads through: (key COLLATE "C"), whose ranges are prefixes whatever the
   * database's collation, and a partial index of the account id in the value of the records that name their account
   * only there (policies). On a large existing table the first call builds them (writes wait meanwhile).
   */
  #ensureAccountIndexes(ranges) {
    if (this.#table.length > MAX_LEASING_TABLE_LENGTH) {
      return Promise.reject(new RangeError(`${NAME}: loadAccount needs a table name of at most ${MAX_LEASING_TABLE_LENGTH} characters`));
    }
    this.#accountIndexes ??= (async () => {
      await createIfMissing(this.#pool, `CREATE INDEX IF NOT EXISTS "${this.#table}${KEY_C_INDEX_SUFFIX}" ON "${this.#table}" (key COLLATE "C")`);
      for (const [index, byValue] of ranges.byValue.entries()) {
        const name = `${this.#table}${BY_VALUE_INDEX_SUFFIX}${index === 0 ? '' : index}`;
        await createIfMissing(this.#pool,
          `CREATE INDEX IF NOT EXISTS "${name}" ON "${this.#table}" ((${byValueExpression(byValue)})) WHERE ${byValuePrefixCondition(byValue)}`);
      }
    })();
    // A failed creation is tried again on the next call.
    this.#accountIndexes.catch(() => { this.#accountIndexes = undefined; });
    return this.#accountIndexes;
  }

  /** Every stored record, as Engine.restore takes them (`{ json: true }`: as `{ key, json }`, the text kept). */
  load(options) {
    return this.#queue(async () => {
      const { json } = loadArgs(options, `${NAME}.load`);
      const { rows } = await this.#pool.query(`SELECT key, value${json ? ' AS json' : ''} FROM "${this.#table}"`);
      return json ? decodeJsonRecords(rows, this.#hooks, NAME) : decodeRecords(rows, this.#hooks, NAME);
    });
  }

  /** Waits for pending applies; ends the pool if connect() created it (a pool passed in stays open). */
  close() {
    return this.#queue(async () => {
      if (this.#ownsPool) await this.#pool.end();
    });
  }
}
