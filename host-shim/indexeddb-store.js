// IndexedDB Store (see store.d.ts) for browsers: one database, one object store `records` (key → the value as
// JSON text); each apply() is one readwrite transaction, so a batch is all or nothing. loadAccount reads key ranges.
import { loadAccountArgs, loadArgs } from './lease-store-checks.js';
import { accountKeyRanges, prefixEnd } from './record-accounts.js';
import { decodeStored, encodeOps } from './record-encoding.js';
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

/** The `[key, json]` rows of one key range of `records`: keys and values read in one go each. */
function readRange(records, range) {
  return Promise.all([settle(records.getAllKeys(range)), settle(records.getAll(range))])
    .then(([keys, values]) => keys.map((key, i) => [key, values[i]]));
}

export class IndexedDbStore {
  #db;
  #hooks;
  #keyRange;
  #queue = serialQueue();

  /**
   * Opens (creating if needed) the IndexedDB database `name`. Options: `{ protect, unprotect, indexedDB,
   * IDBKeyRange }` (token hooks; an IDBFactory other than `globalThis.indexedDB`, and its IDBKeyRange).
   */
  static async open(name, { indexedDB = globalThis.indexedDB, IDBKeyRange = globalThis.IDBKeyRange, ...hookOptions } = {}) {
    if (typeof name !== 'string' || name === '') throw new TypeError(`${NAME}.open: name must be a non-empty string`);
    const hooks = tokenHooks(hookOptions, NAME);
    if (!indexedDB) throw new Error(`${NAME}.open: IndexedDB is not available here`);
    const request = indexedDB.open(name, 1);
    request.onupgradeneeded = () => request.result.createObjectStore(OBJECT_STORE);
    request.onblocked = () => {}; // an older version open elsewhere: wait for it to close
    return new IndexedDbStore(await settle(request), hooks, IDBKeyRange);
  }

  constructor(db, hooks, keyRange = globalThis.IDBKeyRange) {
    this.#db = db;
    this.#hooks = hooks;
    this.#keyRange = keyRange;
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

  /** Every stored record, as Engine.restore takes them (`{ json: true }`: as `{ key, json }`, the text kept). */
  load(options) {
    return this.#queue(async () => {
      const { json } = loadArgs(options, `${NAME}.load`);
      const transaction = this.#db.transaction(OBJECT_STORE, 'readonly');
      const records = transaction.objectStore(OBJECT_STORE);
      const [keys, values] = await Promise.all([settle(records.getAllKeys()), settle(records.getAll())]);
      return decodeStored(keys.map((key, i) => ({ key, value: values[i] })), this.#hooks, NAME, { json });
    });
  }

  /**
   * One account's records and, unless `{ shared: false }`, the records of no account (what `Engine.adopt` keeps), in
   * one readonly transaction: a get per key and a key range per prefix (`accountKeyRanges`). Policies name their
   * account only in their value, which IndexedDB cannot index here (values are JSON text): the policy range is read
   * and filtered.
   */
  loadAccount(accountId, options) {
    return this.#queue(async () => {
      const { shared, json } = loadAccountArgs(accountId, options, `${NAME}.loadAccount`);
      const ranges = accountKeyRanges(accountId, shared);
      const range = (prefix) => this.#keyRange.bound(prefix, prefixEnd(prefix), false, true);
      const transaction = this.#db.transaction(OBJECT_STORE, 'readonly');
      const records = transaction.objectStore(OBJECT_STORE);
      const reads = [
        ...ranges.keys.map((key) => settle(records.get(key)).then((json) => (json === undefined ? [] : [[key, json]]))),
        ...ranges.prefixes.map((prefix) => readRange(records, range(prefix))),
        ...ranges.byValue.map(({ prefix, field }) => readRange(records, range(prefix))
          .then((rows) => rows.filter(([, json]) => JSON.parse(json)?.[field] === accountId))),
      ];
      const rows = (await Promise.all(reads)).flat();
      return decodeStored(rows.map(([key, value]) => ({ key, value })), this.#hooks, NAME, { json });
    });
  }

  /** Waits for pending applies, then closes the database connection. */
  close() {
    return this.#queue(() => this.#db.close());
  }
}
