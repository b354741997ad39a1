import type { PersistOp, StoredRecord } from 'vpp-license-engine';
import type { Store } from './store.js';

/** A Store kept in memory (as JSON text, like the durable stores: values are copies). No token hooks: nothing is at rest. */
export declare class MemoryStore implements Store {
  /** Throws a TypeError (and changes nothing) when any op is malformed or a value is not JSON. */
  apply(ops: readonly PersistOp[]): void;
  load(): StoredRecord[];
}
