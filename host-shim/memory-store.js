// In-memory Store (see store.d.ts): for tests, demos and hosts that keep nothing across restarts.

export class MemoryStore {
  #records = new Map();

  /** Applies one persist output's ops in order, all or nothing; values are copied, never shared. */
  apply(ops) {
    if (!Array.isArray(ops)) throw new TypeError('MemoryStore.apply: ops must be an array');
    const changes = ops.map((op, index) => {
      if (typeof op?.key !== 'string') throw new TypeError(`MemoryStore.apply: op ${index} has no string key`);
      if (op.op === 'put') return { key: op.key, put: true, value: structuredClone(op.value) };
      if (op.op === 'delete') return { key: op.key, put: false };
      throw new TypeError(`MemoryStore.apply: op ${index} has unknown op ${JSON.stringify(op.op)}`);
    });
    for (const { key, put, value } of changes) {
      if (put) this.#records.set(key, value);
      else this.#records.delete(key);
    }
  }

  /** Every stored record, as Engine.restore takes them. */
  load() {
    return Array.from(this.#records, ([key, value]) => ({ key, value: structuredClone(value) }));
  }
}
