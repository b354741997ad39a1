import type { PersistOp, StoredRecord, StoredRecordJson } from 'vpp-license-engine';

/**
 * Durable storage for the engine's state, written by the Driver and read back at start-up.
 * Implementations: MemoryStore and IndexedDbStore (`vpp-license-engine/host`); SqliteStore and PostgresStore
 * (`vpp-license-engine/node`).
 */
export interface Store {
  /**
   * Applies the ops of ONE `persist` output, in order and atomically (all or none). The Driver calls it
   * one output at a time, in output order, and sends no later request until it has settled.
   * A rejection (or throw) must leave the store unchanged: the Driver calls it again with the same ops (capped
   * exponential backoff) until it resolves, and applies nothing later meanwhile. A call whose outcome was lost (the
   * connection died during the commit) may thus be applied twice: harmless, the ops are puts and deletes of records.
   */
  apply(ops: readonly PersistOp[]): void | Promise<void>;
  /**
   * Every stored record, for `Engine.restore(config, records, now)`. Order carries no meaning. With `{ json: true }`
   * a record may come as `{ key, json }`, its value the JSON text the store kept, which the engine reads without an
   * object per record (every adapter here gives all but the account records so: a large store restores several
   * times faster); a store that keeps objects may ignore the option. Throws (or rejects with) a TypeError for other
   * options.
   */
  load<O extends LoadOptions = {}>(options?: O): LoadedRecords<O> | Promise<LoadedRecords<O>>;
  /**
   * One account's records and the records of no account (device and user facts, settings): what
   * `Engine.adopt(accountId, records, now)` keeps, for an instance taking the account over (LeaseKeeper). With
   * `{ shared: false }`, the account's own records alone: an engine adopting several accounts in a row needs the
   * records of no account (in a fleet, thousands of device facts) with the first adoption only, since it keeps only
   * the facts it lacks and it is told every fact and setting since it started. The engine says where they are
   * (`accountKeyRanges(accountId, shared)`: exact keys, key prefixes, and policies, which name their account only in
   * their value); adapters read those by key and key range, not every record, in one snapshot, and issued after
   * applies it sees them all, as load does. Tokens are unprotected as by load. Order carries no meaning; an unknown
   * account gives the records of no account alone, or nothing with `{ shared: false }` (adopt then refuses it:
   * UNKNOWN_ACCOUNT). Throws (or rejects with) a TypeError for an accountId that is not a string or other options.
   */
  loadAccount<O extends LoadAccountOptions = {}>(accountId: string, options?: O): LoadedRecords<O> | Promise<LoadedRecords<O>>;
}

/** Options of `Store.load`. */
export interface LoadOptions {
  /** Whether records may come as `{ key, json }` (their value as the JSON text stored) for the engine; default false. */
  json?: boolean;
}

/** Options of `Store.loadAccount`. */
export interface LoadAccountOptions extends LoadOptions {
  /** Whether the records of no account (device and user facts, settings) come too; default true. */
  shared?: boolean;
}

/** The records `load` and `loadAccount` give for `options`: with `{ json: true }`, some may be JSON text. */
export type LoadedRecords<O extends LoadOptions> = O extends { json: true } ? Array<StoredRecord | StoredRecordJson> : StoredRecord[];

/**
 * Protection of sTokens at rest, for the durable stores: the `token` field of `account/<id>` records goes through
 * `protect` on write and `unprotect` on load; no other field. Both or neither; they may be async. Default: identity
 * (tokens stored in plain text). In Node, `aesGcmProtector(key)` from `vpp-license-engine/node` gives both.
 */
export interface TokenHooks {
  protect?: (plaintext: string) => string | Promise<string>;
  unprotect?: (stored: string) => string | Promise<string>;
}

/** One account of a LeaseStore and who holds its lease now. */
export interface LeaseState {
  accountId: string;
  /** The holder of the account's live lease; null when it is free or expired. */
  holder: string | null;
  /**
   * How long until that lease expires, in ms by the STORE's clock as it answered (so no clock skew; rounded up,
   * above 0); null when it is free or expired. A LeaseKeeper plans a round at the expiry of a lease another instance
   * did not renew in time.
   */
  expiresInMs: number | null;
}

/**
 * The optional capability of a Store shared by several backend instances (PostgresStore; MemoryStore for tests):
 * a lease per account with an expiry, decided by the STORE's clock, so that one instance at a time drives an
 * account. `LeaseKeeper` (`vpp-license-engine/host`) uses it; hosts rarely call it themselves. Holders are
 * instance ids (unique per process). Leases are kept next to the records (PostgreSQL: the tables
 * `<table>_leases` and `<table>_holders`).
 */
export interface LeaseStore extends Store {
  /** Marks `holder` live until the store's now + ttlMs; resolves with how many holders are live, itself included. */
  heartbeat(holder: string, ttlMs: number): number | Promise<number>;
  /**
   * Every account the store has records of (the keys `account/<id>`), with the holder of its live lease and how long
   * until that lease expires by the store's clock.
   */
  leaseStates(): LeaseState[] | Promise<LeaseState[]>;
  /**
   * In ONE atomic statement: takes the lease of each account in `accountIds` that is free or expired, and renews
   * those `holder` holds, until the store's now + ttlMs. Resolves with the ids `holder` holds afterwards; the
   * others are held by someone else. Concurrent calls for one account: exactly one holder wins.
   */
  acquireLeases(holder: string, accountIds: readonly string[], ttlMs: number): string[] | Promise<string[]>;
  /** Ends `holder`'s leases of these accounts, so that another instance may take them at once. Others' are untouched. */
  releaseLeases(holder: string, accountIds: readonly string[]): void | Promise<void>;
  /** Ends `holder`'s presence and every lease it holds (a graceful stop). */
  leave(holder: string): void | Promise<void>;
  /**
   * `apply` for an instance that holds leases. In the same transaction, the ops of accounts whose lease `holder`
   * does not hold now (store clock) are LEFT OUT, and the other ops (those accounts' and the records of no account:
   * device and user facts, settings) are applied, atomically and in order. Resolves with the accounts left out: the
   * caller must stop driving them at once (LeaseKeeper releases them). An op's account comes from its key
   * (`account/<id>`, `<prefix>/<enc(id)>/…`) or, for `policy/<id>`, from the value (stored value for a delete).
   * Rejects, writing nothing, on a malformed op or a failed write, as apply does.
   */
  applyFenced(holder: string, ops: readonly PersistOp[]): { skipped: string[] } | Promise<{ skipped: string[] }>;
}
