// SQLite Store (see ../store.d.ts): the embedded default for Node. One file, one table
// (key TEXT PRIMARY KEY, value TEXT holding JSON), WAL mode; each apply() is one transaction. loadAccount reads key
// ranges of the primary key (SQLite compares TEXT bytewise, so a prefix is one range).
// Needs the npm package better-sqlite3 (an optional dependency of vpp-license-engine).
import { createRequire } from 'node:module';
import { loadAccountArgs, loadArgs } from '../lease-store-checks.js';
import { accountKeyRanges, prefixEnd } from '../record-accounts.js';
import { decodeJsonRecords, decodeRecords, decodeStored, encodeOps } from '../record-encoding.js';
import { serialQueue } from '../serial-queue.js';
import { tokenHooks } from '../token-protection.js';

const NAME = 'SqliteStore';
const TABLE = 'vpp_records';

function loadBetterSqlite3() {
  try {
    return createRequire(import.meta.url)('better-sqlite3');
  } catch (error) {
    if (error?.code !== 'MODULE_NOT_FOUND') throw error;
    throw new Error(`${NAME} needs the npm package better-sqlite3: run 'npm install better-sqlite3'`, { cause: error });
  }
}

export class SqliteStore {
  #db;
  #hooks;
  #queue = serialQueue();
  #put;
  #delete;
  #all;
  #allJson;
  #get;
  #range;
  #rangeWhere;

  /** Opens (creating if needed) the database file at `path`. Options: `{ protect, unprotect }` (token hooks). */
  static open(path, options = {}) {
    if (typeof path !== 'string' || path === '') throw new TypeError(`${NAME}.open: path must be a non-empty string`);
    const hooks = tokenHooks(options, NAME);
    const Database = loadBetterSqlite3();
    return new SqliteStore(new Database(path), hooks);
  }

  constructor(db, hooks) {
    this.#db = db;
    this.#hooks = hooks;
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(`CREATE TABLE IF NOT EXISTS ${TABLE} (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID`);
    this.#put = db.prepare(`INSERT INTO ${TABLE} (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`);
    this.#delete = db.prepare(`DELETE FROM ${TABLE} WHERE key = ?`);
    this.#all = db.prepare(`SELECT key, value FROM ${TABLE}`);
    this.#allJson = db.prepare(`SELECT key, value AS json FROM ${TABLE}`);
    this.#get = db.prepare(`SELECT key, value FROM ${TABLE} WHERE key = ?`);
    this.#range = db.prepare(`SELECT key, value FROM ${TABLE} WHERE key >= ? AND key < ?`);
    this.#rangeWhere = db.prepare(`SELECT key, value FROM ${TABLE} WHERE key >= ? AND key < ? AND json_extract(value, ?) = ?`);
  }

  /** Applies one persist output's ops in order, in one transaction: all or nothing. */
  apply(ops) {
    return this.#queue(async () => {
      const encoded = await encodeOps(ops, this.#hooks, NAME);
      this.#db.transaction(() => {
        for (const { key, json } of encoded) {
          if (json === null) this.#delete.run(key);
          else this.#put.run(key, json);
        }
      })();
    });
  }

  /** Every stored record, as Engine.restore takes them (`{ json: true }`: as `{ key, json }`, the text kept). */
  load(options) {
    return this.#queue(() => {
      const { json } = loadArgs(options, `${NAME}.load`);
      // As JSON text the rows are selected in the records' shape ({ key, json }): no copy of 400,000 rows.
      return json ? decodeJsonRecords(this.#allJson.all(), this.#hooks, NAME) : decodeRecords(this.#all.all(), this.#hooks, NAME);
    });
  }

  /**
   * One account's records and, unless `{ shared: false }`, the records of no account (what `Engine.adopt` keeps), in
   * one read transaction: a lookup per key and a range scan per prefix (`accountKeyRanges`); the policy range is
   * filtered on the value's account id by SQLite (policies name their account only in their value).
   */
  loadAccount(accountId, options) {
    return this.#queue(() => {
      const { shared, json } = loadAccountArgs(accountId, options, `${NAME}.loadAccount`);
      const ranges = accountKeyRanges(accountId, shared);
      const rows = this.#db.transaction(() => {
        const found = [];
        const add = (list) => { for (const row of list) found.push(row); };
        for (const key of ranges.keys) add(this.#get.all(key));
        for (const prefix of ranges.prefixes) add(this.#range.all(prefix, prefixEnd(prefix)));
        for (const { prefix, field } of ranges.byValue) {
          add(this.#rangeWhere.all(prefix, prefixEnd(prefix), `$."${field}"`, accountId));
        }
        return found;
      })();
      return decodeStored(rows, this.#hooks, NAME, { json });
    });
  }

  /** Waits for pending applies, then closes the database. */
  close() {
    return this.#queue(() => this.#db.close());
  }
}
