import type { PersistOp, StoredRecord } from 'vpp-license-engine';
import type { LoadAccountOptions, Store, TokenHooks } from './store.js';

export interface IndexedDbStoreOptions extends TokenHooks {
  /** An IDBFactory; default `globalThis.indexedDB`. (Typed structurally: no DOM lib needed.) */
  indexedDB?: { open(name: string, version?: number): unknown };
  /** That IndexedDB's IDBKeyRange (for loadAccount); default `globalThis.IDBKeyRange`. */
  IDBKeyRange?: { bound(lower: unknown, upper: unknown, lowerOpen?: boolean, upperOpen?: boolean): unknown };
}

/** A Store in one IndexedDB database (browsers): object store `records`, key → value as JSON text. */
export declare class IndexedDbStore implements Store {
  static open(name: string, options?: IndexedDbStoreOptions): Promise<IndexedDbStore>;
  /** One readwrite transaction per call; calls commit in call order. Rejects (changing nothing) on a malformed op or an aborted transaction. */
  apply(ops: readonly PersistOp[]): Promise<void>;
  load(): Promise<StoredRecord[]>;
  /**
   * One readonly transaction: a get per key and a key range per prefix; the policy range (values are JSON text,
   * which IndexedDB cannot index) is read and filtered. Needs the engine initialised (`await init()`).
   */
  loadAccount(accountId: string, options?: LoadAccountOptions): Promise<StoredRecord[]>;
  close(): Promise<void>;
}
