import type { PersistOp } from 'vpp-license-engine';
import type { LeaseState, LeaseStore, LoadAccountOptions, LoadedRecords, LoadOptions } from './store.js';

/**
 * A Store kept in memory (as JSON text, like the durable stores: values are copies). No token hooks: nothing is at
 * rest. Also a LeaseStore on its own clock, so that several LeaseKeepers in one process can share it (tests).
 */
export declare class MemoryStore implements LeaseStore {
  /** `now`: the clock that expires leases (Unix ms). Default Date.now. */
  constructor(options?: { now?: () => number });
  /** Throws a TypeError (and changes nothing) when any op is malformed or a value is not JSON. */
  apply(ops: readonly PersistOp[]): void;
  load<O extends LoadOptions = {}>(options?: O): LoadedRecords<O>;
  /** Walks every key (a Map has no order): for tests and demos. */
  loadAccount<O extends LoadAccountOptions = {}>(accountId: string, options?: O): LoadedRecords<O>;
  applyFenced(holder: string, ops: readonly PersistOp[]): { skipped: string[] };
  heartbeat(holder: string, ttlMs: number): number;
  leaseStates(): LeaseState[];
  acquireLeases(holder: string, accountIds: readonly string[], ttlMs: number): string[];
  releaseLeases(holder: string, accountIds: readonly string[]): void;
  leave(holder: string): void;
}
