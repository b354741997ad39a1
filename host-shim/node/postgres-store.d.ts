import type { PersistOp } from 'vpp-license-engine';
import type { LeaseState, LeaseStore, LoadAccountOptions, LoadedRecords, LoadOptions, TokenHooks } from '../store.js';

export declare const DEFAULT_TABLE: 'vpp_records';

/** A `pg` Pool (or anything with its `query`, `connect` and `end`). */
export interface PgPoolLike {
  query(text: string, values?: unknown[]): Promise<{ rows: any[] }>;
  /** pg's Pool also takes a callback, called as it hands the connection over (the store then listens for its errors at once). */
  connect(): Promise<{ query(text: string, values?: unknown[]): Promise<unknown>; release(error?: unknown): void; on?(event: 'error', listener: (error: unknown) => void): unknown; removeListener?(event: 'error', listener: (error: unknown) => void): unknown }>;
  end(): Promise<void>;
}

export interface PostgresStoreOptions extends TokenHooks {
  /**
   * e.g. `postgres://user@host:5432/db`; a pool is created (and ended by close()), with a 10 s connection timeout,
   * TCP keepalive and an `'error'` listener (see onError).
   */
  connectionString?: string;
  /**
   * Your own `pg.Pool`; close() leaves it open. Pass exactly one of connectionString and pool. Give it an `'error'`
   * listener (pg requires one of every pool): without it, an idle connection the server ends exits the process.
   */
  pool?: PgPoolLike;
  /**
   * Errors of idle connections of the pool created from connectionString (the server ended them: restart, failover;
   * the pool has discarded them and connects again on the next call). Default: ignored.
   */
  onError?: (error: unknown) => void;
  /**
   * A plain SQL identifier; default `vpp_records`. Created if missing: `(key TEXT PRIMARY KEY, value TEXT)`. The
   * lease methods add the tables `<table>_leases` and `<table>_holders` and a partial index `<table>_accounts` of the
   * `account/…` keys on first use, loadAccount the indexes `<table>_key_c` and `<table>_policies` (then `table` has at
   * most 54 characters).
   */
  table?: string;
}

/**
 * A Store in one PostgreSQL table (npm `pg`, an optional dependency: install it to use this). Also a LeaseStore for
 * several backends on one database: leases expire by the database clock, each change is one statement, and
 * applyFenced checks the leases with their rows locked inside the writing transaction. A connection the server ends
 * fails the call using it (the Driver retries writes), never the process.
 */
export declare class PostgresStore implements LeaseStore {
  static connect(options: PostgresStoreOptions): Promise<PostgresStore>;
  /** One transaction per call; calls commit in call order. Rejects (changing nothing) on a malformed op or a failed write. */
  apply(ops: readonly PersistOp[]): Promise<void>;
  load<O extends LoadOptions = {}>(options?: O): Promise<LoadedRecords<O>>;
  /**
   * One statement: the primary key for the keys, an index on (key COLLATE "C") for the prefix ranges (correct whatever
   * the database's collation) and a partial index on the account id of policy values; both indexes are created on the
   * first call (`<table>_key_c`, `<table>_policies`; then `table` has at most 54 characters).
   */
  loadAccount<O extends LoadAccountOptions = {}>(accountId: string, options?: O): Promise<LoadedRecords<O>>;
  applyFenced(holder: string, ops: readonly PersistOp[]): Promise<{ skipped: string[] }>;
  heartbeat(holder: string, ttlMs: number): Promise<number>;
  /** `expiresInMs` is computed by the database from its now(): no instance's clock is involved. */
  leaseStates(): Promise<LeaseState[]>;
  acquireLeases(holder: string, accountIds: readonly string[], ttlMs: number): Promise<string[]>;
  releaseLeases(holder: string, accountIds: readonly string[]): Promise<void>;
  leave(holder: string): Promise<void>;
  close(): Promise<void>;
}
