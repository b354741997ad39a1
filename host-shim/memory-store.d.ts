import type { PersistOp, StoredRecord } from 'vpp-license-engine';
import type { LeaseState, LeaseStore, LoadAccountOptions } from './store.js';

/**
 * A Store kept in memory (as JSON text, like the durable stores: values are copies). No token hooks: nothing is at
 * rest. Also a LeaseStore on its own clock, so that several LeaseKeepers in one process can share it (tests).
 */
export declare class MemoryStore implements LeaseStore {
  /** `now`: the clock that expires leases (Unix ms). Default Date.now. */
  constructor(options?: { now?: () => number });
  /** Throws a TypeError (and changes nothing) when any op is malformed or a value is not JSON. */
  apply(ops: readonly PersistOp[]): void;
  load(): StoredRecord[];
  /** Walks every key (a Map has no order): for tests and demos. */
  loadAccount(accountId: string, options?: LoadAccountOptions): StoredRecord[];
  applyFenced(holder: string, ops: readonly PersistOp[]): { skipped: string[] };
  heartbeat(holder: string, ttlMs: number): number;
  leaseStates(): LeaseState[];
  acquireLeases(holder: string, accountIds: readonly string[], ttlMs: number): string[];
  releaseLeases(holder: string, accountIds: readonly string[]): void;
  leave(holder: string): void;
}
