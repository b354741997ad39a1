import type { PersistOp } from 'vpp-license-engine';
import type { LoadAccountOptions, LoadedRecords, LoadOptions, Store, TokenHooks } from './store.js';

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
  load<O extends LoadOptions = {}>(options?: O): Promise<LoadedRecords<O>>;
  /**
   * One readonly transaction: a get per key and a key range per prefix; the policy range (values are JSON text,
   * which IndexedDB cannot index) is read and filtered. Needs the engine initialised (`await init()`).
   */
  loadAccount<O extends LoadAccountOptions = {}>(accountId: string, options?: O): Promise<LoadedRecords<O>>;
  close(): Promise<void>;
}
