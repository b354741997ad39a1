import type { PersistOp, StoredRecord } from 'vpp-license-engine';

/**
 * Durable storage for the engine's state, written by the Driver and read back at start-up.
 * Implementations: MemoryStore and IndexedDbStore (`vpp-license-engine/host`); SqliteStore and PostgresStore
 * (`vpp-license-engine/node`).
 */
export interface Store {
  /**
   * Applies the ops of ONE `persist` output, in order and atomically (all or none). The Driver calls it
   * one output at a time, in output order, and sends no later request until it has settled.
   * A rejection (or throw) halts the Driver: restart from `load()` with `Engine.restore`.
   */
  apply(ops: readonly PersistOp[]): void | Promise<void>;
  /** Every stored record, for `Engine.restore(config, records, now)`. Order carries no meaning. */
  load(): StoredRecord[] | Promise<StoredRecord[]>;
}

/**
 * Protection of sTokens at rest, for the durable stores: the `token` field of `account/<id>` records goes through
 * `protect` on write and `unprotect` on load; no other field. Both or neither; they may be async. Default: identity
 * (tokens stored in plain text). In Node, `aesGcmProtector(key)` from `vpp-license-engine/node` gives both.
 */
export interface TokenHooks {
  protect?: (plaintext: string) => string | Promise<string>;
  unprotect?: (stored: string) => string | Promise<string>;
}
