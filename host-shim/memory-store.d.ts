import type { PersistOp, StoredRecord } from 'vpp-license-engine';
import type { Store } from './store.js';

/** A Store kept in memory; values are deep-copied (structuredClone) on the way in and out. */
export declare class MemoryStore implements Store {
  /** Throws a TypeError (and changes nothing) when any op is malformed. */
  apply(ops: readonly PersistOp[]): void;
  load(): StoredRecord[];
}
