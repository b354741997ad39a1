// IndexedDB Store (see store.d.ts) for browsers: one database, one object store `records` (key → the value as
// JSON text); each apply() is one readwrite transaction, so a batch is all or nothing.
import { decodeRecord, encodeOps } from './record-encoding.js';
import { serialQueue } from './serial-queue.js';
import { tokenHooks } from './token-protection.js';

const NAME = 'IndexedDbStore';
const OBJECT_STORE = 'records';

/** Resolves with an IDBRequest's result, rejects with its error. */
function settle(request) {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/** Resolves once a transaction commits; rejects if it aborts (nothing it wrote is kept). */
function committed(transaction) {
  return new Promise((resolve, reject) => {
    transaction.oncomplete = () => resolve();
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error ?? new Error(`${NAME}: transaction aborted`));
  });
}

export class IndexedDbStore {
  #db;
  #hooks;
  #queue = serialQueue();

  /**
   * Opens (creating if needed) the IndexedDB database `name`. Options: `{ protect, unprotect, indexedDB }`
   * (token hooks; an IDBFactory other than `globalThis.indexedDB`).
   */
  static async open(name, { indexedDB = globalThis.indexedDB, ...hookOptions } = {}) {
    if (typeof name !== 'string' || name === '') throw new TypeError(`${NAME}.open: name must be a non-empty string`);
    const hooks = tokenHooks(hookOptions, NAME);
    if (!indexedDB) throw new Error(`${NAME}.open: IndexedDB is not available here`);
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(OBJECT_STORE);
    request.onblocked = () => {}; // an older version open elsewhere: wait for it to close
    return new IndexedDbStore(await settle(request), hooks);
  }

  constructor(db, hooks) {
    this.#db = db;
    this.#hooks = hooks;
  }

  /** Applies one persist output's ops in order, in one transaction: all or nothing; calls commit in call order. */
  apply(ops) {
    return this.#queue(async () => {
      // Encode (and run the protect hook) first: a transaction commits by itself at the first await outside it.
      const encoded = await encodeOps(ops, this.#hooks, NAME);
      const transaction = this.#db.transaction(OBJECT_STORE, 'readwrite', { durability: 'strict' });
      const done = committed(transaction);
      const records = transaction.objectStore(OBJECT_STORE);
      try {
        for (const { key, json } of encoded) {
          if (json === null) records.delete(key);
          else records.put(json, key);
        }
      } catch (error) {
        transaction.abort();
        await done.catch(() => {});
        throw error;
      }
      await done;
    });
  }

  /** Every stored record, as Engine.restore takes them. */
  load() {
    return this.#queue(async () => {
      const transaction = this.#db.transaction(OBJECT_STORE, 'readonly');
      const records = transaction.objectStore(OBJECT_STORE);
      const [keys, values] = await Promise.all([settle(records.getAllKeys()), settle(records.getAll())]);
      return Promise.all(keys.map((key, i) => decodeRecord(key, values[i], this.#hooks, NAME)));
    });
  }

  /** Waits for pending applies, then closes the database connection. */
  close() {
    return this.#queue(() => this.#db.close());
  }
}
