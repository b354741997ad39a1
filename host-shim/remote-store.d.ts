import type { PersistOp } from 'vpp-license-engine';
import type { LeaseState, LeaseStore, LoadAccountOptions, LoadedRecords, LoadOptions } from './store.js';

export interface RemoteStoreOptions {
  /** Where the backend mounts its store relay (`createStoreRelay`), e.g. `https://mdm.example.com/store-relay`. */
  baseUrl: string;
  /** Default globalThis.fetch (same-origin cookies go with it; pass your own for another policy). */
  fetch?: typeof globalThis.fetch;
  /** Sent with every call (a CSRF token, say). */
  headers?: Record<string, string>;
  /** The longest one call may take, answer included (default 60000). */
  timeoutMs?: number;
}

/** A rejection of a RemoteStore call: the relay's status (null when it did not answer) and its error code. */
export interface RemoteStoreError extends Error {
  /** The relay's code (`NOT_AUTHORIZED`, `STORE_FAILED`, `STORE_UNAVAILABLE`, …), or `STORE_RELAY_UNREACHABLE`, `STORE_RELAY_TIMEOUT`, `UNFENCED_APPLY`. */
  code: string;
  status: number | null;
}

/**
 * A LeaseStore reached through a backend's store relay: give it to a browser console's LeaseKeeper
 * (`new LeaseKeeper({ store: new RemoteStore({ baseUrl }) })`) and the Driver `keeper.store`, so that the console's
 * engine drives only accounts whose lease it holds on the backend's store. Arguments are checked before anything is
 * sent (TypeError / RangeError); failures reject with a RemoteStoreError. `apply` is refused (`UNFENCED_APPLY`).
 */
export declare class RemoteStore implements LeaseStore {
  constructor(options: RemoteStoreOptions);
  /** Always rejects: write through a LeaseKeeper (`keeper.store` calls applyFenced). */
  apply(ops: readonly PersistOp[]): Promise<never>;
  load<O extends LoadOptions = {}>(options?: O): Promise<LoadedRecords<O>>;
  loadAccount<O extends LoadAccountOptions = {}>(accountId: string, options?: O): Promise<LoadedRecords<O>>;
  heartbeat(holder: string, ttlMs: number): Promise<number>;
  leaseStates(): Promise<LeaseState[]>;
  acquireLeases(holder: string, accountIds: readonly string[], ttlMs: number): Promise<string[]>;
  releaseLeases(holder: string, accountIds: readonly string[]): Promise<void>;
  leave(holder: string): Promise<void>;
  applyFenced(holder: string, ops: readonly PersistOp[]): Promise<{ skipped: string[] }>;
}
