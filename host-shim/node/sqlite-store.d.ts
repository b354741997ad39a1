import type { PersistOp } from 'vpp-license-engine';
import type { LoadAccountOptions, LoadedRecords, LoadOptions, Store, TokenHooks } from '../store.js';

/**
 * A Store in one SQLite file (npm `better-sqlite3`, an optional dependency: install it to use this).
 * One table `vpp_records (key TEXT PRIMARY KEY, value TEXT)` holding JSON, WAL mode.
 */
export declare class SqliteStore implements Store {
  /** Opens or creates the database file. Throws if better-sqlite3 is not installed. */
  static open(path: string, options?: TokenHooks): SqliteStore;
  /** One transaction per call; calls commit in call order. Rejects (changing nothing) on a malformed op. */
  apply(ops: readonly PersistOp[]): Promise<void>;
  load<O extends LoadOptions = {}>(options?: O): Promise<LoadedRecords<O>>;
  /** One read transaction: lookups and range scans of the primary key; the policy range filtered by SQLite on the account id. */
  loadAccount<O extends LoadAccountOptions = {}>(accountId: string, options?: O): Promise<LoadedRecords<O>>;
  /** Waits for pending applies, then closes the file. */
  close(): Promise<void>;
}
