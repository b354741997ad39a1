// Per-account leases for several backend instances on one store (browser and Node alike: no `node:` imports).
//
// Each instance runs one Engine, one Driver and one LeaseKeeper. The keeper holds a lease per account in the store
// (a LeaseStore: PostgresStore, or MemoryStore in tests) and makes the engine drive exactly the accounts it holds:
// every `renewEveryMs` it renews its leases, takes free or expired ones up to a fair share, hands surplus ones
// over, and adopts newly leased accounts (`store.load()` → `driver.adopt`). A lease is valid locally until the time
// the acquiring statement was sent + ttl − margin; the store's own clock expires it at its now + ttl, later. When a
// lease is lost, not renewed in time, or a write is refused for it, the keeper releases the account at once
// (`driver.release`), and the Driver, given the keeper as `leases`, sends no request of an account whose lease is
// not valid. Writes go through `keeper.store`, which the store fences by lease (see `applyFenced`). When the store
// is unreachable (a database failover), rounds fail and writes are retried by the Driver: the accounts lapse at their
// local expiry, and the rounds take leases again once the store answers.

import { accountIdOfKey, accountOfRecord } from './account-keys.js';

const DEFAULT_TTL_MS = 30_000;
/** Adopting runs in slices of at most renewEveryMs / 2 and this long: the event loop runs between them. */
const MAX_ADOPT_SLICE_MS = 1000;
const LEASE_STORE_METHODS = ['heartbeat', 'leaseStates', 'acquireLeases', 'releaseLeases', 'leave', 'applyFenced', 'load'];

/** A random holder id (a UUID): unique per process, so that a restarted instance never inherits a lease. */
function randomHolderId() {
  if (typeof globalThis.crypto?.randomUUID !== 'function') throw new Error('LeaseKeeper: pass a holder id (no crypto.randomUUID here)');
  return globalThis.crypto.randomUUID();
}

function leaseError(message, code) {
  return Object.assign(new Error(message), { code });
}

/**
 * The store's records by account: `accountId → records of that account`, and `shared`, the records of no account
 * (device and user facts, settings). What the engine's adopt keeps of the records it is given is exactly an account's
 * own records and the shared ones, so each adopt gets only those: giving it every account's records made adopting an
 * instance's share cost O(accounts × records).
 */
function recordsByAccount(records) {
  const byAccount = new Map();
  const shared = [];
  for (const record of records) {
    const accountId = accountOfRecord(record.key, record.value);
    if (accountId === null) {
      shared.push(record);
      continue;
    }
    let own = byAccount.get(accountId);
    if (own === undefined) byAccount.set(accountId, (own = []));
    own.push(record);
  }
  return { byAccount, shared };
}

/** The items of `list` in random order: instances starting together then try different free accounts first. */
function shuffled(list) {
  const copy = [...list];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = Math.floor(Math.random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

export class LeaseKeeper {
  #store;
  #holder;
  #ttlMs;
  #marginMs;
  #renewEveryMs;
  /** How long one slice of adoptions may take: the event loop runs between slices. */
  #adoptBudgetMs;
  #now;
  #setTimer;
  #clearTimer;
  #onLease;
  #onError;
  #fencedStore;

  #driver = null;
  /** accountId → local time until which this instance's lease is valid. */
  #validUntil = new Map();
  /** Accounts the engine drives: adopted, or added through addAccount. */
  #driven = new Set();
  #roundTimer = null;
  #expiryTimer = null;
  #running = null;
  #rounds = 0;
  #stopped = false;
  /**
   * The work the rounds leave (hand-overs, taking leases, adopting): it waits for the Driver's writes and adopts for as
   * long as it takes, while the next rounds keep renewing. One at a time, picking up what later rounds leave.
   */
  #background = null;
  /** Leases handed over (the engine released the accounts) to free once the writes queued before land. */
  #toHandOver = [];
  /** Leases the last round wanted to take (free, or lapsed here). */
  #toTake = [];

  /**
   * Options: `store` (a LeaseStore shared by every instance), `holder` (this instance's id; default a random
   * UUID; never share one between live processes), `ttlMs` (lease duration, default 30 s), `marginMs` (default
   * ttl / 10: subtracted from the local expiry, it must cover the drift between this clock and the store's over
   * one ttl and the time a request takes to reach Apple), `renewEveryMs` (default ttl / 3; renewEveryMs + marginMs
   * must stay below ttlMs), `now`, `setTimer`, `clearTimer` (the Driver's clock and timers), `onLease(change)`
   * (`{type: 'acquired' | 'lost' | 'released', accountId, reason}`), `onError(error)` (a failed round; default
   * console.error).
   */
  constructor({
    store,
    holder = randomHolderId(),
    ttlMs = DEFAULT_TTL_MS,
    marginMs = Math.round(ttlMs / 10),
    renewEveryMs = Math.floor(ttlMs / 3),
    now = Date.now,
    setTimer = globalThis.setTimeout,
    clearTimer = globalThis.clearTimeout,
    onLease = () => {},
    onError = (error) => console.error('vpp-license-engine lease keeper:', error),
  } = {}) {
    const missing = LEASE_STORE_METHODS.filter((m) => typeof store?.[m] !== 'function');
    if (missing.length > 0) throw new TypeError(`LeaseKeeper needs a LeaseStore (missing ${missing.join(', ')})`);
    if (typeof holder !== 'string' || holder === '') throw new TypeError('LeaseKeeper: holder must be a non-empty string');
    for (const [name, value] of [['ttlMs', ttlMs], ['marginMs', marginMs], ['renewEveryMs', renewEveryMs]]) {
      if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`LeaseKeeper: ${name} must be a non-negative integer`);
    }
    if (renewEveryMs === 0 || renewEveryMs + marginMs >= ttlMs) {
      throw new RangeError('LeaseKeeper: renewEveryMs must be positive and renewEveryMs + marginMs below ttlMs');
    }
    this.#store = store;
    this.#holder = holder;
    this.#ttlMs = ttlMs;
    this.#marginMs = marginMs;
    this.#renewEveryMs = renewEveryMs;
    this.#adoptBudgetMs = Math.max(1, Math.min(Math.floor(renewEveryMs / 2), MAX_ADOPT_SLICE_MS));
    this.#now = () => now();
    this.#setTimer = (callback, delay) => setTimer(callback, delay);
    this.#clearTimer = (handle) => clearTimer(handle);
    this.#onLease = onLease;
    this.#onError = onError;
    this.#fencedStore = {
      apply: (ops) => this.#applyFenced(ops),
      load: () => this.#store.load(),
    };
  }

  /** This instance's holder id, as the store's lease rows name it. */
  get holder() {
    return this.#holder;
  }

  /**
   * The Store to give the Driver: writes only the records of accounts whose lease this instance holds (checked
   * by the store in the writing transaction). The ops of other accounts are left out and those accounts
   * released here, so that one lost lease never halts the Driver for the others.
   */
  get store() {
    return this.#fencedStore;
  }

  /**
   * Starts keeping leases for `driver` (built with `store: keeper.store, leases: keeper`): announces this instance
   * at once and takes leases from the next round on, so that instances started together share the accounts.
   */
  start(driver) {
    if (this.#driver !== null) throw new Error('LeaseKeeper already started');
    this.#driver = driver;
    void this.round();
  }

  /**
   * Runs one round now (the keeper runs one every renewEveryMs): announce this instance, renew every lease it holds in
   * one statement, release what was lost, release the accounts above the fair share; freeing their leases, taking free
   * ones and adopting them wait for the Driver's writes and may take long, so they go on after the round, and the next
   * rounds renew meanwhile. Resolves when the round is done (a round already running is not started twice); failures
   * go to onError.
   */
  round() {
    if (this.#driver === null) throw new Error('LeaseKeeper not started');
    if (this.#running !== null) return this.#running;
    if (this.#stopped) return Promise.resolve();
    this.#clearTimer(this.#roundTimer);
    this.#running = this.#round()
      .catch((error) => this.#onError(error))
      .finally(() => {
        this.#running = null;
        if (!this.#stopped) this.#roundTimer = this.#setTimer(() => void this.round(), this.#renewEveryMs);
      });
    return this.#running;
  }

  /** The Driver's check before a request leaves: this instance drives the account and its lease is valid now. */
  holds(accountId) {
    return this.#driven.has(accountId) && this.#valid(accountId);
  }

  /** The Driver found the lease of `accountId` invalid as a request was about to leave: releases it now. */
  lapsed(accountId) {
    this.#lose(accountId, 'lease not valid by the local clock');
  }

  /** The accounts this instance drives now, sorted. */
  held() {
    return [...this.#driven].sort();
  }

  /**
   * Adds an account (an `addAccount` input) on this instance: takes its lease first, so that its records may
   * be written. Rejects with code ACCOUNT_EXISTS when the store already has the account (the instance holding
   * its lease drives it), LEASE_HELD when another instance is adding it, or the engine's Error.
   */
  async addAccount(input) {
    const accountId = input?.accountId;
    if (typeof accountId !== 'string') throw new TypeError('addAccount needs an addAccount input with an accountId');
    if (this.#driver === null) throw new Error('LeaseKeeper not started');
    if (this.#driven.has(accountId)) {
      this.#driver.input(input); // the engine refuses it (ACCOUNT_EXISTS)
      return;
    }
    if ((await this.#store.leaseStates()).some((s) => s.accountId === accountId)) {
      throw leaseError(`account ${accountId} exists: the instance holding its lease drives it`, 'ACCOUNT_EXISTS');
    }
    const sentAt = this.#now();
    const held = await this.#store.acquireLeases(this.#holder, [accountId], this.#ttlMs);
    if (!held.includes(accountId)) throw leaseError(`another instance holds the lease of account ${accountId}`, 'LEASE_HELD');
    this.#renewed([accountId], new Set(held), sentAt);
    this.#driven.add(accountId);
    this.#armExpiry();
    try {
      this.#driver.input(input);
    } catch (error) {
      this.#driven.delete(accountId);
      this.#validUntil.delete(accountId);
      await this.#store.releaseLeases(this.#holder, [accountId]);
      throw error;
    }
    this.#onLease({ type: 'acquired', accountId, reason: 'account added here' });
  }

  /**
   * Stops gracefully: no more rounds, every account released (its queued writes still land), then this
   * instance's leases and presence are ended in the store so that the others take its accounts at once.
   * Call before `driver.stop()`.
   */
  async stop() {
    this.#stopped = true;
    this.#clearTimer(this.#roundTimer);
    this.#clearTimer(this.#expiryTimer);
    await this.#running;
    await this.#background;
    const accounts = [...this.#driven];
    for (const accountId of accounts) this.#release(accountId, 'instance stopping');
    this.#validUntil.clear();
    if (this.#driver !== null) await this.#driver.writesSettled();
    await this.#store.leave(this.#holder);
  }

  async #round() {
    const live = await this.#store.heartbeat(this.#holder, this.#ttlMs);
    this.#rounds += 1;
    if (this.#rounds === 1) return; // joining: the others see this instance before it takes anything
    const states = await this.#store.leaseStates();
    const stored = new Set(states.map((s) => s.accountId));
    // Accounts added here whose records are not written yet count too (and are never handed over).
    const share = Math.ceil(new Set([...stored, ...this.#driven]).size / live);
    const ours = new Set(this.#driven);
    for (const { accountId, holder } of states) if (holder === this.#holder) ours.add(accountId);
    const handOver = this.#surplus([...ours].filter((id) => stored.has(id)), ours.size - share);
    for (const accountId of handOver) ours.delete(accountId);
    const free = shuffled(states.filter((s) => s.holder === null && !ours.has(s.accountId)).map((s) => s.accountId));
    const wanted = [...ours, ...free.slice(0, Math.max(0, share - ours.size))];
    // Renewals first, in one statement, of every lease held without a break: driven, or taken and not adopted yet.
    const renewing = new Set(wanted.filter((id) => this.#driven.has(id) || this.#valid(id)));
    if (renewing.size > 0) await this.#acquire([...renewing]);
    for (const accountId of handOver) this.#release(accountId, 'handed over to balance the accounts');
    this.#toHandOver.push(...handOver);
    this.#toTake = wanted.filter((id) => !renewing.has(id));
    if (this.#background !== null) return; // it picks this round's work up
    if (this.#toHandOver.length === 0 && this.#toTake.length === 0 && this.#awaitingAdoption().length === 0) return;
    this.#background = this.#work()
      .catch((error) => this.#onError(error))
      .finally(() => {
        this.#background = null;
      });
  }

  /**
   * The rounds' work: the leases handed over (the engine released the accounts already) are freed once the writes
   * queued before the release land, the leases the last round wanted are taken, and every account leased and not yet
   * driven is adopted, a slice at a time; until none of it is left.
   */
  async #work() {
    for (;;) {
      if (this.#stopped) return;
      const handOver = this.#toHandOver.splice(0);
      if (handOver.length > 0) {
        // Writes the engine queued before the release land while the lease is still ours.
        await this.#driver.writesSettled();
        await this.#store.releaseLeases(this.#holder, handOver);
      }
      const taking = this.#toTake.splice(0);
      if (taking.length > 0) {
        // A lease the engine does not drive is taken only once every write queued so far is stored (this rejects while
        // one is failing: the work ends, and a later round tries again). Otherwise a write of an earlier tenure of ours,
        // still being retried, could land after another instance held the account in between, over its records.
        await this.#driver.writesSettled();
        if (this.#stopped) return;
        const still = taking.filter((id) => !this.#driven.has(id) && !this.#valid(id));
        if (still.length > 0) await this.#acquire(still);
      }
      const more = await this.#adoptLeased();
      if (!more && this.#toHandOver.length === 0 && this.#toTake.length === 0) return;
      // Between slices the event loop runs (the Driver's requests and writes), and a round due meanwhile runs to its
      // end before the next slice: its few statements, each waiting for the event loop, are not held up one slice each.
      await new Promise((resolve) => this.#setTimer(resolve, 0));
      await this.#running;
    }
  }

  /** One statement: takes or renews the leases of `accountIds`; what comes back without an account is lost. */
  async #acquire(accountIds) {
    const sentAt = this.#now();
    const held = new Set(await this.#store.acquireLeases(this.#holder, accountIds, this.#ttlMs));
    this.#renewed(accountIds, held, sentAt);
  }

  /**
   * Up to `count` accounts to hand over: leased ones the engine does not drive first, then driven ones with no
   * request in flight (handing one over mid-request would make the next holder wait to learn what Apple did).
   */
  #surplus(candidates, count) {
    if (count <= 0) return [];
    const idle = candidates.filter((id) => !this.#driven.has(id))
      .concat(candidates.filter((id) => this.#driven.has(id) && this.#driver.requestsInFlight(id) === 0));
    return idle.slice(0, count);
  }

  /** Records the outcome of an acquire statement sent at `sentAt` for `asked`: extended or lost. */
  #renewed(asked, held, sentAt) {
    const validUntil = sentAt + this.#ttlMs - this.#marginMs;
    for (const accountId of asked) {
      if (held.has(accountId)) {
        this.#validUntil.set(accountId, validUntil);
      } else {
        this.#validUntil.delete(accountId);
        this.#lose(accountId, 'lease held by another instance');
      }
    }
    this.#armExpiry();
  }

  /** Accounts whose lease is valid but which the engine does not drive yet. */
  #awaitingAdoption() {
    return [...this.#validUntil.keys()].filter((id) => !this.#driven.has(id) && this.#valid(id));
  }

  /**
   * Adopts the accounts whose lease is valid but which the engine does not drive yet, for at most half a renewal
   * interval and at most a second (adopting is synchronous and costs about as much as the records it reads); resolves
   * whether some are left for another slice. Adopting a large share in one go would hold up the event loop, and with
   * it every renewal: an instance that takes longer than ttl − margin loses every lease it holds.
   */
  async #adoptLeased() {
    if (this.#stopped || this.#awaitingAdoption().length === 0) return false;
    // Writes of an earlier tenure of ours, queued before its release, are in the records before they are read.
    await this.#driver.writesSettled();
    const records = await this.#store.load();
    const present = new Set(records.map((r) => accountIdOfKey(r.key)).filter((id) => id !== null));
    const { byAccount, shared } = recordsByAccount(records);
    const leased = this.#awaitingAdoption();
    const gone = leased.filter((id) => !present.has(id));
    const until = this.#now() + this.#adoptBudgetMs;
    let more = false;
    for (const accountId of leased.filter((id) => present.has(id))) {
      if (this.#now() >= until) {
        more = true;
        break;
      }
      // Lapsed, handed over or stopping while the others were adopted (or the store read).
      if (this.#stopped || this.#driven.has(accountId) || !this.#valid(accountId)) continue;
      try {
        this.#driver.adopt(accountId, [...shared, ...byAccount.get(accountId)]);
      } catch (error) {
        this.#onError(error);
        continue;
      }
      this.#driven.add(accountId);
      this.#onLease({ type: 'acquired', accountId, reason: 'lease acquired' });
    }
    this.#armExpiry();
    if (gone.length > 0) {
      for (const accountId of gone) this.#validUntil.delete(accountId);
      await this.#store.releaseLeases(this.#holder, gone);
    }
    return more;
  }

  async #applyFenced(ops) {
    // A failed write (the store unreachable, a dropped connection) rejects to the Driver, which tries it again; the
    // leases are kept by the rounds meanwhile, or lapse at their local expiry when the store cannot renew them.
    const { skipped } = await this.#store.applyFenced(this.#holder, ops);
    for (const accountId of skipped) {
      this.#validUntil.delete(accountId);
      this.#lose(accountId, 'write refused: lease not held');
    }
    const deleted = ops.filter((op) => op.op === 'delete').map((op) => accountIdOfKey(op.key))
      .filter((id) => id !== null && !skipped.includes(id));
    if (deleted.length > 0) this.#accountsDeleted(deleted);
  }

  /** The engine deleted these accounts (their records are gone): their leases are given up. */
  #accountsDeleted(accountIds) {
    for (const accountId of accountIds) {
      this.#driven.delete(accountId);
      this.#validUntil.delete(accountId);
      this.#onLease({ type: 'released', accountId, reason: 'account deleted' });
    }
    Promise.resolve()
      .then(() => this.#store.releaseLeases(this.#holder, accountIds))
      .catch((error) => this.#onError(error));
  }

  /** Stops driving an account whose lease is gone or no longer valid (nothing if it is not driven). */
  #lose(accountId, reason) {
    if (!this.#driven.has(accountId)) return;
    this.#validUntil.delete(accountId);
    this.#stopDriving(accountId);
    this.#onLease({ type: 'lost', accountId, reason });
  }

  /** Stops driving an account this instance gives up while its lease is still valid. */
  #release(accountId, reason) {
    this.#validUntil.delete(accountId);
    this.#stopDriving(accountId);
    this.#onLease({ type: 'released', accountId, reason });
  }

  #stopDriving(accountId) {
    if (!this.#driven.delete(accountId)) return;
    try {
      this.#driver.release(accountId);
    } catch (error) {
      this.#onError(error);
    }
  }

  #valid(accountId) {
    return (this.#validUntil.get(accountId) ?? -Infinity) > this.#now();
  }

  /** One timer at the earliest local expiry of a driven account: its account is released then, renewed or not. */
  #armExpiry() {
    this.#clearTimer(this.#expiryTimer);
    this.#expiryTimer = null;
    if (this.#stopped) return;
    let earliest = Infinity;
    for (const accountId of this.#driven) earliest = Math.min(earliest, this.#validUntil.get(accountId) ?? -Infinity);
    if (earliest === Infinity) return;
    this.#expiryTimer = this.#setTimer(() => {
      this.#expiryTimer = null;
      for (const accountId of [...this.#driven]) {
        if (!this.#valid(accountId)) this.#lose(accountId, 'lease not renewed in time');
      }
      this.#armExpiry();
    }, Math.max(earliest - this.#now(), 0));
  }
}
