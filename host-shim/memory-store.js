// In-memory Store (see store.d.ts): for tests, demos and hosts that keep nothing across restarts.
// Values are kept as JSON text, as the durable stores keep them: copies, never shared, JSON only.
import { toJson, validateOps } from './protect.js';

const NAME = 'MemoryStore';

export class MemoryStore {
  #records = new Map();

  /** Applies one persist output's ops in order, all or nothing (a malformed op throws a TypeError first). */
  apply(ops) {
    validateOps(ops, NAME);
    const changes = ops.map((op, index) => ({ key: op.key, json: op.op === 'put' ? toJson(op.value, index, NAME) : null }));
    for (const { key, json } of changes) {
      if (json === null) this.#records.delete(key);
      else this.#records.set(key, json);
    }
  }

  /** Every stored record, as Engine.restore takes them. */
  load() {
    return Array.from(this.#records, ([key, json]) => ({ key, value: JSON.parse(json) }));
  }
}
