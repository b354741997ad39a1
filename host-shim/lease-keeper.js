// Per-account leases for several backend instances on one store (browser and Node alike: no `node:` imports).
//
// Each instance runs one Engine, one Driver and one LeaseKeeper. The keeper holds a lease per account in the store
// (a LeaseStore: PostgresStore, or MemoryStore in tests) and makes the engine drive exactly the accounts it holds.
// This file is the I/O shell: the timers, the store calls, the Driver calls and the onLease reports. What to do —
// which leases a round renews, takes and hands over, until when a lease is valid here, what to adopt and for how
// long, what is lost — is decided by LeaseDecisions (lease-decisions.js), which has no I/O and takes the time as an
// argument.
//
// Every `renewEveryMs` a round announces the instance, renews its leases in one statement, and hands accounts above
// the fair share over; freeing their leases, taking free ones and adopting newly leased accounts
// (`store.loadAccount(id)` → `driver.adopt`) wait for the Driver's writes and take as long as the records they read, so
// they go on after the round, one piece at a time, while later rounds keep renewing. A round comes earlier when
// another instance's lease expires before it (that instance missed a renewal: its accounts are taken at once), and at
// once when other instances took leases this one wanted first (all it may take is taken without waiting a round).
// Adopting reads the records of no account (device and user facts) with the first account of each slice only
// (`store.loadAccount(id, { shared: false })` for the others). A lease is valid locally until the time the acquiring
// statement was sent + ttl − margin; the store's own clock expires it at its now + ttl, later.
// When a lease is lost, not renewed in time, or a write is refused for it, the keeper releases the account at once
// (`driver.release`), and the Driver, given the keeper as `leases`, sends no request of an account whose lease is
// not valid. Writes go through `keeper.store`, which the store fences by lease (see `applyFenced`). When the store
// is unreachable (a database failover), rounds fail and writes are retried by the Driver: the accounts lapse at their
// local expiry, and the rounds take leases again once the store answers.

import { LeaseDecisions } from './lease-decisions.js';
import { LEASE_STORE_METHODS } from './lease-store-checks.js';
import { accountIdOfKey } from './record-accounts.js';

const DEFAULT_TTL_MS = 30_000;

/** A random holder id (a UUID): unique per process, so that a restarted instance never inherits a lease. */
function randomHolderId() {
  if (typeof globalThis.crypto?.randomUUID !== 'function') throw new Error('LeaseKeeper: pass a holder id (no crypto.randomUUID here)');
  return globalThis.crypto.randomUUID();
}

function leaseError(message, code) {
  return Object.assign(new Error(message), { code });
}

export class LeaseKeeper {
  #store;
  #holder;
  #ttlMs;
  #now;
  #setTimer;
  #clearTimer;
  #onLease;
  #onError;
  #fencedStore;
  /** The decisions, and the state they are made from (valid-until times, driven accounts). */
  #decisions;

  #driver = null;
  #roundTimer = null;
  #expiryTimer = null;
  #running = null;
  /** The work rounds leave (freeing, taking, adopting), running after them; one at a time. */
  #background = null;
  #stopped = false;

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
    this.#decisions = new LeaseDecisions({ holder, ttlMs, marginMs, renewEveryMs });
    this.#now = () => now();
    this.#setTimer = (callback, delay) => setTimer(callback, delay);
    this.#clearTimer = (handle) => clearTimer(handle);
    this.#onLease = onLease;
    this.#onError = onError;
    this.#fencedStore = {
      apply: (ops) => this.#applyFenced(ops),
      load: (options) => this.#store.load(options),
      loadAccount: (accountId, options) => this.#store.loadAccount(accountId, options),
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
   * Runs one round now (the keeper runs one every renewEveryMs, earlier at the expiry of a lease another instance did
   * not renew, and at once when others took leases this one wanted first): announce this instance, renew every lease
   * it holds in one statement, release what was lost, release the accounts above the fair share; freeing their
   * leases, taking free ones and adopting them wait for the Driver's writes and may take long, so they go on after the
   * round, and the next rounds renew meanwhile. Resolves when the round is done (a round already running is not
   * started twice); failures go to onError.
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
        if (this.#stopped) return;
        const now = this.#now();
        this.#roundTimer = this.#setTimer(() => void this.round(), Math.max(0, this.#decisions.nextRoundAt(now) - now));
      });
    return this.#running;
  }

  /** The Driver's check before a request leaves: this instance drives the account and its lease is valid now. */
  holds(accountId) {
    return this.#decisions.holds(accountId, this.#now());
  }

  /** The Driver found the lease of `accountId` invalid as a request was about to leave: releases it now. */
  lapsed(accountId) {
    if (this.#decisions.lapsed(accountId)) this.#lost(accountId, 'lease not valid by the local clock');
  }

  /** The accounts this instance drives now, sorted. */
  held() {
    return this.#decisions.driven();
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
    if (this.#decisions.isDriven(accountId)) {
      this.#driver.input(input); // the engine refuses it (ACCOUNT_EXISTS)
      return;
    }
    if ((await this.#store.leaseStates()).some((s) => s.accountId === accountId)) {
      throw leaseError(`account ${accountId} exists: the instance holding its lease drives it`, 'ACCOUNT_EXISTS');
    }
    const sentAt = this.#now();
    const held = await this.#store.acquireLeases(this.#holder, [accountId], this.#ttlMs);
    if (!held.includes(accountId)) throw leaseError(`another instance holds the lease of account ${accountId}`, 'LEASE_HELD');
    this.#acquired([accountId], held, sentAt);
    this.#decisions.adopted(accountId);
    this.#armExpiry();
    try {
      this.#driver.input(input);
    } catch (error) {
      this.#decisions.release(accountId);
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
    for (const accountId of this.#decisions.releaseAll()) this.#released(accountId, true, 'instance stopping');
    if (this.#driver !== null) await this.#driver.writesSettled();
    await this.#store.leave(this.#holder);
  }

  async #round() {
    const live = await this.#store.heartbeat(this.#holder, this.#ttlMs);
    if (!this.#decisions.announced()) return; // joining: the others see this instance before it takes anything
    const states = await this.#store.leaseStates();
    const busy = new Set(this.#decisions.driven().filter((id) => this.#driver.requestsInFlight(id) > 0));
    const { handOver, renew, take } = this.#decisions.plan({ states, live, busy, now: this.#now() });
    // Renewals first, in one statement, of every lease held without a break: driven, or taken and not adopted yet.
    if (renew.length > 0) await this.#acquire(renew);
    for (const accountId of handOver) {
      this.#released(accountId, this.#decisions.release(accountId), 'handed over to balance the accounts');
    }
    this.#decisions.leave({ handOver, take });
    if (this.#background !== null || !this.#decisions.hasWork(this.#now())) return; // the work going on picks it up
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
      const handOver = this.#decisions.leasesToFree();
      if (handOver.length > 0) {
        // Writes the engine queued before the release land while the lease is still ours.
        await this.#driver.writesSettled();
        await this.#store.releaseLeases(this.#holder, handOver);
      }
      // A lease the engine does not drive is taken only once every write queued so far is stored (this rejects while
      // one is failing: the work ends, and a later round tries again). Otherwise a write of an earlier tenure of ours,
      // still being retried, could land after another instance held the account in between, over its records.
      await this.#driver.writesSettled();
      if (this.#stopped) return;
      const taking = this.#decisions.leasesToTake(this.#now());
      if (taking.length > 0) {
        const held = await this.#acquire(taking);
        if (this.#decisions.takeFellShort(taking, held)) {
          // Other instances took some first: a round now plans with fresh lease states, and this work takes the rest.
          await this.round();
          continue;
        }
      }
      const more = await this.#adoptSlice();
      if (!more && !this.#decisions.hasLeftovers()) return;
      // Between slices the event loop runs (the Driver's requests and writes), and a round due meanwhile runs to its
      // end before the next slice: its few statements, each waiting for the event loop, are not held up one slice each.
      await new Promise((resolve) => this.#setTimer(resolve, 0));
      await this.#running;
    }
  }

  /**
   * One statement: takes or renews the leases of `accountIds`; what comes back without an account is lost. Resolves
   * with the accounts held.
   */
  async #acquire(accountIds) {
    const sentAt = this.#now();
    const held = await this.#store.acquireLeases(this.#holder, accountIds, this.#ttlMs);
    this.#acquired(accountIds, held, sentAt);
    return held;
  }

  #acquired(asked, held, sentAt) {
    for (const accountId of this.#decisions.acquired(asked, held, sentAt)) this.#lost(accountId, 'lease held by another instance');
    this.#armExpiry();
  }

  /**
   * Adopts, for at most one slice (the decisions' budget), the accounts whose lease is valid but which the engine does
   * not drive yet, each from its own records (`store.loadAccount`); the records of no account (device and user facts,
   * settings: thousands in a fleet) are read with the first adoption of the slice only — the engine keeps those it
   * lacks, and it is told every fact and setting since. A round that comes due meanwhile runs to its end before the
   * next adoption. An account the store no longer has (deleted meanwhile: the engine answers UNKNOWN_ACCOUNT) has its
   * lease freed. Resolves whether the slice ended for its budget (more to adopt at once).
   */
  async #adoptSlice() {
    if (this.#decisions.toAdopt(this.#now()).length === 0) return false;
    // Writes of an earlier tenure of ours, queued before its release, are in the records before they are read.
    await this.#driver.writesSettled();
    const deadline = this.#decisions.adoptionDeadline(this.#now());
    const gone = [];
    let more = false;
    // Until one adoption of the slice succeeded with them, the records of no account are read too.
    let shared = true;
    for (const accountId of this.#decisions.toAdopt(this.#now())) {
      if (this.#stopped) break;
      if (!this.#decisions.mayAdopt(this.#now(), deadline)) {
        more = true;
        break;
      }
      const records = await this.#store.loadAccount(accountId, { shared, json: true });
      await this.#running;
      // Lapsed, handed over, adopted or stopping while its records were read or a round ran.
      if (this.#stopped || this.#decisions.isDriven(accountId) || !this.#decisions.valid(accountId, this.#now())) continue;
      try {
        this.#driver.adopt(accountId, records);
      } catch (error) {
        if (error?.code === 'UNKNOWN_ACCOUNT') {
          this.#decisions.vanished(accountId);
          gone.push(accountId);
        } else {
          this.#onError(error);
        }
        continue;
      }
      shared = false;
      this.#decisions.adopted(accountId);
      this.#onLease({ type: 'acquired', accountId, reason: 'lease acquired' });
    }
    this.#armExpiry();
    if (gone.length > 0) await this.#store.releaseLeases(this.#holder, gone);
    return more;
  }

  async #applyFenced(ops) {
    // A failed write (the store unreachable, a dropped connection) rejects to the Driver, which tries it again; the
    // leases are kept by the rounds meanwhile, or lapse at their local expiry when the store cannot renew them.
    const { skipped } = await this.#store.applyFenced(this.#holder, ops);
    for (const accountId of this.#decisions.refused(skipped)) this.#lost(accountId, 'write refused: lease not held');
    const deleted = ops.filter((op) => op.op === 'delete').map((op) => accountIdOfKey(op.key))
      .filter((id) => id !== null && !skipped.includes(id));
    if (deleted.length > 0) this.#accountsDeleted(deleted);
  }

  /** The engine deleted these accounts (their account records are gone): their leases are given up. */
  #accountsDeleted(accountIds) {
    this.#decisions.deleted(accountIds);
    for (const accountId of accountIds) this.#onLease({ type: 'released', accountId, reason: 'account deleted' });
    this.#armExpiry();
    Promise.resolve()
      .then(() => this.#store.releaseLeases(this.#holder, accountIds))
      .catch((error) => this.#onError(error));
  }

  /** The decisions stopped driving an account whose lease is gone or no longer valid: releases it in the engine. */
  #lost(accountId, reason) {
    this.#releaseInEngine(accountId);
    this.#onLease({ type: 'lost', accountId, reason });
  }

  /** An account given up on purpose: released in the engine if it drove it. */
  #released(accountId, wasDriven, reason) {
    if (wasDriven) this.#releaseInEngine(accountId);
    this.#onLease({ type: 'released', accountId, reason });
  }

  #releaseInEngine(accountId) {
    try {
      this.#driver.release(accountId);
    } catch (error) {
      this.#onError(error);
    }
  }

  /** One timer at the earliest local expiry of a driven account: its account is released then, renewed or not. */
  #armExpiry() {
    this.#clearTimer(this.#expiryTimer);
    this.#expiryTimer = null;
    if (this.#stopped) return;
    const earliest = this.#decisions.nextExpiry();
    if (earliest === null) return;
    this.#expiryTimer = this.#setTimer(() => {
      this.#expiryTimer = null;
      for (const accountId of this.#decisions.expire(this.#now())) this.#lost(accountId, 'lease not renewed in time');
      this.#armExpiry();
    }, Math.max(earliest - this.#now(), 0));
  }
}
