import type { PersistOp, StoredRecord } from 'vpp-license-engine';
import type { Store, TokenHooks } from '../store.js';

export declare const DEFAULT_TABLE: 'vpp_records';

/** A `pg` Pool (or anything with its `query`, `connect` and `end`). */
export interface PgPoolLike {
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
  connect(): Promise<{ query(text: string, values?: unknown[]): Promise<unknown>; release(error?: unknown): void }>;
  end(): Promise<void>;
}

export interface PostgresStoreOptions extends TokenHooks {
  /** e.g. `postgres://user@host:5432/db`; a pool is created (and ended by close()). */
  connectionString?: string;
  /** Your own `pg.Pool`; close() leaves it open. Pass exactly one of connectionString and pool. */
  pool?: PgPoolLike;
  /** A plain SQL identifier; default `vpp_records`. Created if missing: `(key TEXT PRIMARY KEY, value TEXT)`. */
  table?: string;
}

/** A Store in one PostgreSQL table (npm `pg`, an optional dependency: install it to use this). */
export declare class PostgresStore implements Store {
  static connect(options: PostgresStoreOptions): Promise<PostgresStore>;
  /** One transaction per call; calls commit in call order. Rejects (changing nothing) on a malformed op or a failed write. */
  apply(ops: readonly PersistOp[]): Promise<void>;
  load(): Promise<StoredRecord[]>;
  close(): Promise<void>;
}
