// In-memory Store (see store.d.ts): for tests, demos and hosts that keep nothing across restarts.
// Values are kept as JSON text, as the durable stores keep them: copies, never shared, JSON only.
// It is also a LeaseStore, on its own clock: several lease keepers in one process (tests of the lease logic).
import { accountsOfOps, fenceOps, touchedAccounts } from './lease-fence.js';
import { checkAccountIds, checkHolder, checkTtl, loadAccountArgs, loadArgs } from './lease-store-checks.js';
import { ACCOUNT_PREFIX, accountKeyRanges, inKeyRanges } from './record-accounts.js';
import { toJson, validateOps } from './record-encoding.js';

const NAME = 'MemoryStore';

export class MemoryStore {
  #records = new Map();
  #now;
  /** accountId → { holder, expiresAt } */
  #leases = new Map();
  /** holder → expiresAt */
  #holders = new Map();

  /** `now`: the clock of lease expiry (Unix ms; default Date.now). */
  constructor({ now = Date.now } = {}) {
    this.#now = () => now();
  }

  /** Applies one persist output's ops in order, all or nothing (a malformed op throws a TypeError first). */
  apply(ops) {
    this.#write(this.#encode(ops));
  }

  /** Every stored record, as Engine.restore takes them (`{ json: true }`: each as `{ key, json }`, the text kept). */
  load(options) {
    const record = storedRecord(loadArgs(options, `${NAME}.load`));
    return Array.from(this.#records, ([key, json]) => record(key, json));
  }

  /**
   * One account's records and, unless `{ shared: false }`, the records of no account (device and user facts,
   * settings): what `Engine.adopt(accountId, …)` keeps. Walks every key (a Map has no order: tests and demos).
   */
  loadAccount(accountId, options) {
    const args = loadAccountArgs(accountId, options, `${NAME}.loadAccount`);
    const ranges = accountKeyRanges(accountId, args.shared);
    const record = storedRecord(args);
    const records = [];
    for (const [key, json] of this.#records) {
      if (inKeyRanges(ranges, accountId, key, () => JSON.parse(json))) records.push(record(key, json));
    }
    return records;
  }

  /** Like apply, but leaves out the ops of accounts whose lease `holder` does not hold now; returns those accounts. */
  applyFenced(holder, ops) {
    checkHolder(holder, `${NAME}.applyFenced`);
    const changes = this.#encode(ops);
    const { lookUp, complete } = accountsOfOps(ops);
    const stored = new Map(lookUp.filter((key) => this.#records.has(key)).map((key) => [key, JSON.parse(this.#records.get(key))]));
    const accounts = complete(stored);
    const held = new Set(touchedAccounts(accounts).filter((id) => this.#liveHolder(id) === holder));
    const { keep, skipped } = fenceOps(accounts, held);
    this.#write(changes.filter((_, index) => keep[index]));
    return { skipped };
  }

  /** Marks `holder` live until now + ttlMs; returns how many holders are live, itself included. */
  heartbeat(holder, ttlMs) {
    checkHolder(holder, `${NAME}.heartbeat`);
    checkTtl(ttlMs, `${NAME}.heartbeat`);
    const now = this.#now();
    this.#holders.set(holder, now + ttlMs);
    for (const [other, expiresAt] of this.#holders) if (expiresAt <= now) this.#holders.delete(other);
    return this.#holders.size;
  }

  /**
   * Every account with records, the holder of its live lease and how long until that lease expires (null, null when
   * free or expired).
   */
  leaseStates() {
    const now = this.#now();
    const states = [];
    for (const key of this.#records.keys()) {
      if (!key.startsWith(ACCOUNT_PREFIX)) continue;
      const accountId = key.slice(ACCOUNT_PREFIX.length);
      const lease = this.#liveLease(accountId, now);
      states.push({ accountId, holder: lease?.holder ?? null, expiresInMs: lease ? lease.expiresAt - now : null });
    }
    return states;
  }

  /** Takes or renews, until now + ttlMs, each lease that is free, expired or `holder`'s; returns those it holds. */
  acquireLeases(holder, accountIds, ttlMs) {
    checkHolder(holder, `${NAME}.acquireLeases`);
    checkAccountIds(accountIds, `${NAME}.acquireLeases`);
    checkTtl(ttlMs, `${NAME}.acquireLeases`);
    const now = this.#now();
    const held = [];
    for (const accountId of new Set(accountIds)) {
      const current = this.#leases.get(accountId);
      if (current === undefined || current.expiresAt <= now || current.holder === holder) {
        this.#leases.set(accountId, { holder, expiresAt: now + ttlMs });
        held.push(accountId);
      }
    }
    return held;
  }

  /** Ends `holder`'s leases of these accounts (other holders' leases are left alone). */
  releaseLeases(holder, accountIds) {
    checkHolder(holder, `${NAME}.releaseLeases`);
    checkAccountIds(accountIds, `${NAME}.releaseLeases`);
    for (const accountId of accountIds) {
      if (this.#leases.get(accountId)?.holder === holder) this.#leases.delete(accountId);
    }
  }

  /** Ends `holder`'s presence and every lease it holds. */
  leave(holder) {
    checkHolder(holder, `${NAME}.leave`);
    this.#holders.delete(holder);
    for (const [accountId, lease] of this.#leases) if (lease.holder === holder) this.#leases.delete(accountId);
  }

  /** Validates every op and encodes it as { key, json } (json null for a delete) before anything is written. */
  #encode(ops) {
    validateOps(ops, NAME);
    return ops.map((op, index) => ({ key: op.key, json: op.op === 'put' ? toJson(op.value, index, NAME) : null }));
  }

  #write(changes) {
    for (const { key, json } of changes) {
      if (json === null) this.#records.delete(key);
      else this.#records.set(key, json);
    }
  }

  #liveHolder(accountId) {
    return this.#liveLease(accountId, this.#now())?.holder ?? null;
  }

  /** The lease of `accountId` when it is live at `now` ({ holder, expiresAt }), or null. */
  #liveLease(accountId, now) {
    const lease = this.#leases.get(accountId);
    return lease !== undefined && lease.expiresAt > now ? lease : null;
  }
}

/** A stored record as load gives it: `{ key, value }`, or with `{ json: true }` `{ key, json }` (the text kept). */
function storedRecord({ json: asText }) {
  return asText ? (key, json) => ({ key, json }) : (key, json) => ({ key, value: JSON.parse(json) });
}
