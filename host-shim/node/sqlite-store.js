// SQLite Store (see ../store.d.ts): the embedded default for Node. One file, one table
// (key TEXT PRIMARY KEY, value TEXT holding JSON), WAL mode; each apply() is one transaction.
// Needs the npm package better-sqlite3 (an optional dependency of vpp-license-engine).
import { createRequire } from 'node:module';
import { decodeRecord, encodeOps } from '../record-encoding.js';
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

  /** Every stored record, as Engine.restore takes them. */
  load() {
    return this.#queue(() => Promise.all(this.#all.all().map(({ key, value }) => decodeRecord(key, value, this.#hooks, NAME))));
  }

  /** Waits for pending applies, then closes the database. */
  close() {
    return this.#queue(() => this.#db.close());
  }
}
