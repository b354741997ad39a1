import type { PersistOp, StoredRecord } from 'vpp-license-engine';

/**
 * Durable storage for the engine's state, written by the Driver and read back at start-up.
 * Implementations: MemoryStore (here); SQLite, IndexedDB and PostgreSQL adapters follow the same shape.
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
