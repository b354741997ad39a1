// The lease decisions of one backend instance, without I/O, timers or a clock of its own (browser and Node alike):
// time is an argument, as in the engine. Which leases a round renews, takes and hands over (a fair share of the
// accounts per live instance), until when each lease is valid here, which accounts to adopt and for how long a
// round may adopt, which accounts are lost when a renewal, a fenced write or the local expiry says so, and when the
// next round and the next expiry are due. LeaseKeeper (lease-keeper.js) is the shell around it: it asks the store,
// hands the answers in, and carries the decisions out (store calls, `driver.adopt` / `driver.release`, timers,
// onLease). tests/node/lease-decisions.test.mjs runs it against a simulated lease table in simulated time.

/**
 * The leases to renew, take and hand over in one round, from the store's lease states (pure).
 *
 * - `share`: ⌈accounts / live instances⌉; accounts this instance drives whose records are not written yet (added
 *   here) count too, and are never handed over.
 * - `handOver`: leases above the share, to release now: leased accounts the engine does not drive first, then
 *   driven ones without a request in flight (`busy`): handing one over mid-request would make the next holder wait
 *   to learn what Apple did.
 * - `renew`: the kept leases of accounts the engine drives; `take`: the kept leases it does not drive (held in the
 *   store, e.g. after a restart of the round) and free or expired ones, in random order, up to the share.
 *
 * @param {object} input
 * @param {string} input.holder this instance
 * @param {ReadonlySet<string>} input.driven accounts the engine drives
 * @param {readonly {accountId: string, holder: string | null}[]} input.states `store.leaseStates()`
 * @param {number} input.live live instances, this one included (`store.heartbeat`)
 * @param {ReadonlySet<string>} [input.busy] driven accounts with a request in flight
 * @param {() => number} [input.random] in [0, 1): the order free accounts are tried in
 * @returns {{ share: number, handOver: string[], renew: string[], take: string[] }}
 */
export function planRound({ holder, driven, states, live, busy = new Set(), random = Math.random }) {
  const stored = new Set(states.map((s) => s.accountId));
  const share = Math.ceil(new Set([...stored, ...driven]).size / Math.max(1, live));
  const ours = new Set(driven);
  for (const state of states) if (state.holder === holder) ours.add(state.accountId);
  const candidates = [...ours].filter((id) => stored.has(id));
  const surplus = ours.size - share;
  const handOver = surplus <= 0 ? [] : candidates.filter((id) => !driven.has(id))
    .concat(candidates.filter((id) => driven.has(id) && !busy.has(id)))
    .slice(0, surplus);
  for (const id of handOver) ours.delete(id);
  const free = shuffled(states.filter((s) => s.holder === null && !ours.has(s.accountId)).map((s) => s.accountId), random);
  const wanted = [...ours, ...free.slice(0, Math.max(0, share - ours.size))];
  return {
    share,
    handOver,
    renew: wanted.filter((id) => driven.has(id)),
    take: wanted.filter((id) => !driven.has(id)),
  };
}

/** The items of `list` in random order: instances starting together then try different free accounts first. */
function shuffled(list, random) {
  const copy = [...list];
  for (let i = copy.length - 1; i > 0; i -= 1) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j], copy[i]];
  }
  return copy;
}

/**
 * One instance's leases as it knows them: until when each is valid here, and which accounts its engine drives.
 * Every method takes the time it is called at; none waits, calls out or arms a timer. Methods that stop the engine
 * driving accounts return them: the caller releases them in the engine (`driver.release`) and reports them.
 */
export class LeaseDecisions {
  #holder;
  #ttlMs;
  #marginMs;
  #renewEveryMs;
  #adoptBudgetMs;
  #random;
  /** accountId → local time until which this instance's lease is valid. */
  #validUntil = new Map();
  /** Accounts the engine drives: adopted, or added here. */
  #driven = new Set();
  #rounds = 0;
  /** The current round stopped adopting for its time budget: the next one starts at once. */
  #adoptionCut = false;

  /**
   * `holder`, `ttlMs`, `marginMs`, `renewEveryMs` as LeaseKeeper takes them; `random` orders free accounts.
   * A round adopts for at most renewEveryMs / 2: the rest wait for the next round, which starts at once.
   */
  constructor({ holder, ttlMs, marginMs, renewEveryMs, random = Math.random }) {
    this.#holder = holder;
    this.#ttlMs = ttlMs;
    this.#marginMs = marginMs;
    this.#renewEveryMs = renewEveryMs;
    this.#adoptBudgetMs = Math.max(1, Math.floor(renewEveryMs / 2));
    this.#random = random;
  }

  /** Whether this instance's lease of `accountId` is valid at `now` by the local clock. */
  valid(accountId, now) {
    return (this.#validUntil.get(accountId) ?? -Infinity) > now;
  }

  /** The Driver's gate: the engine drives the account and its lease is valid at `now`. */
  holds(accountId, now) {
    return this.#driven.has(accountId) && this.valid(accountId, now);
  }

  /** The accounts the engine drives, sorted. */
  driven() {
    return [...this.#driven].sort();
  }

  isDriven(accountId) {
    return this.#driven.has(accountId);
  }

  // ----------------------------------------------------------------------------------------------- rounds

  /** A round starts (before its heartbeat). */
  startRound() {
    this.#adoptionCut = false;
  }

  /**
   * The round's heartbeat was stored: whether it may go on and take leases. The first one may not: an instance
   * joining is seen by the others before it takes anything, so that instances started together share from the start.
   */
  announced() {
    this.#rounds += 1;
    return this.#rounds > 1;
  }

  /** The round's plan (see planRound) from the lease states, the live instance count and the busy accounts. */
  plan({ states, live, busy }) {
    return planRound({ holder: this.#holder, driven: this.#driven, states, live, busy, random: this.#random });
  }

  /** How long after a round ends the next one starts: at once when adopting was cut short, else renewEveryMs. */
  nextRoundDelay() {
    return this.#adoptionCut ? 0 : this.#renewEveryMs;
  }

  // ----------------------------------------------------------------------------------------------- leases

  /**
   * The outcome of one acquire statement sent at `sentAt` for `asked`, of which `held` came back: those are valid
   * here until sentAt + ttl − margin (earlier than the store's expiry, its now + ttl); the others are held by another
   * instance. Returns the driven accounts lost (no longer driven).
   */
  acquired(asked, held, sentAt) {
    const heldSet = new Set(held);
    const validUntil = sentAt + this.#ttlMs - this.#marginMs;
    const lost = [];
    for (const accountId of asked) {
      if (heldSet.has(accountId)) {
        this.#validUntil.set(accountId, validUntil);
      } else {
        this.#validUntil.delete(accountId);
        if (this.#driven.delete(accountId)) lost.push(accountId);
      }
    }
    return lost;
  }

  /** Driven accounts whose lease is not valid at `now` (not renewed in time): lost, no longer driven. */
  expire(now) {
    const lost = [...this.#driven].filter((id) => !this.valid(id, now));
    for (const id of lost) this.#lose(id);
    return lost;
  }

  /** The earliest local expiry of a driven account (when `expire` next loses one), or null. */
  nextExpiry() {
    let earliest = Infinity;
    for (const accountId of this.#driven) earliest = Math.min(earliest, this.#validUntil.get(accountId) ?? -Infinity);
    return earliest === Infinity ? null : earliest;
  }

  /** A request of `accountId` was about to leave without a valid lease: whether it was driven (and is lost now). */
  lapsed(accountId) {
    if (!this.#driven.has(accountId)) return false;
    this.#lose(accountId);
    return true;
  }

  /** The store left these accounts' ops out of a fenced write (lease not held): the driven ones, lost. */
  refused(accountIds) {
    return accountIds.filter((id) => {
      this.#validUntil.delete(id);
      return this.#driven.delete(id);
    });
  }

  /** The engine deleted these accounts (their account records are gone): forgotten; their leases are to be freed. */
  deleted(accountIds) {
    for (const id of accountIds) this.#lose(id);
  }

  /** Gives an account up on purpose (hand-over, stop): whether the engine drove it (then release it there). */
  release(accountId) {
    this.#validUntil.delete(accountId);
    return this.#driven.delete(accountId);
  }

  /** Every account given up at a stop: the driven ones are returned (release them in the engine). */
  releaseAll() {
    const driven = [...this.#driven];
    this.#driven.clear();
    this.#validUntil.clear();
    return driven;
  }

  // ----------------------------------------------------------------------------------------------- adopting

  /** Accounts whose lease is valid at `now` but which the engine does not drive: to adopt. */
  toAdopt(now) {
    return [...this.#validUntil.keys()].filter((id) => !this.#driven.has(id) && this.valid(id, now));
  }

  /**
   * When the adoptions of a round starting at `now` must stop: adopting is synchronous and costs about as much as the
   * records it reads; a large share adopted in one go would hold up every renewal, and an instance taking longer
   * than ttl − margin would lose every lease.
   */
  adoptionDeadline(now) {
    return now + this.#adoptBudgetMs;
  }

  /** Whether another adoption may start at `now`; when not, the round is cut short and the next starts at once. */
  mayAdopt(now, deadline) {
    if (now < deadline) return true;
    this.#adoptionCut = true;
    return false;
  }

  /** The engine adopted `accountId` (or an account was added here): it drives it now. */
  adopted(accountId) {
    this.#driven.add(accountId);
  }

  /** The store has no account `accountId` (deleted meanwhile): its lease is to be freed, not kept. */
  vanished(accountId) {
    this.#validUntil.delete(accountId);
  }

  #lose(accountId) {
    this.#validUntil.delete(accountId);
    this.#driven.delete(accountId);
  }
}
