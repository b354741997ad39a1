// The lease decisions of one backend instance, without I/O, timers or a clock of its own (browser and Node alike):
// time is an argument, as in the engine. Which leases a round renews, takes and hands over (a fair share of the
// accounts per live instance), when the next round is due (earlier than the renewal interval when another instance's
// lease runs out before it), until when each lease is valid here, what the work after the rounds has left to do
// (leases to free and to take, planning again when other instances took some first, accounts to adopt, in slices of
// bounded length), which accounts are lost when a renewal, a fenced write or the local expiry says so, and when the
// next expiry is due. LeaseKeeper (lease-keeper.js) is the shell around it: it asks the store, hands the answers in,
// and carries the decisions out (store calls, `driver.adopt` / `driver.release`, timers, onLease).
// tests/node/lease-decisions.test.mjs runs several instances of it against a simulated lease table in simulated time.

/**
 * The leases to renew, take and hand over in one round, from the store's lease states (pure).
 *
 * - `share`: ⌈accounts / live instances⌉; accounts this instance drives whose records are not written yet (added
 *   here) count too, and are never handed over.
 * - `handOver`: leases above the share, to release now: leased accounts the engine does not drive first, then
 *   driven ones without a request in flight (`busy`): handing one over mid-request would make the next holder wait
 *   to learn what Apple did.
 * - `renew`: the kept leases held here without a break — of accounts the engine drives, and of accounts leased here
 *   and valid but not adopted yet (`leased`) — renewed at once, in one statement.
 * - `take`: the other kept leases (held in the store but lapsed here, after a restart of the round) and free or
 *   expired ones, in random order, up to the share: taken later, once the writes queued before have landed.
 *
 * @param {object} input
 * @param {string} input.holder this instance
 * @param {ReadonlySet<string>} input.driven accounts the engine drives
 * @param {ReadonlySet<string>} [input.leased] accounts whose lease is valid here, not driven yet
 * @param {readonly {accountId: string, holder: string | null, expiresInMs?: number | null}[]} input.states
 *   `store.leaseStates()`
 * @param {number} input.live live instances, this one included (`store.heartbeat`)
 * @param {ReadonlySet<string>} [input.busy] driven accounts with a request in flight
 * @param {() => number} [input.random] in [0, 1): the order free accounts are tried in
 * @returns {{ share: number, handOver: string[], renew: string[], take: string[] }}
 */
export function planRound({ holder, driven, leased = new Set(), states, live, busy = new Set(), random = Math.random }) {
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
  const heldHere = (id) => driven.has(id) || leased.has(id);
  return {
    share,
    handOver,
    renew: wanted.filter(heldHere),
    take: wanted.filter((id) => !heldHere(id)),
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
 * The local time at which the earliest lease of another holder in `states` (`store.leaseStates()` answered at `now`)
 * expires by the store's clock, or null when none is held by another. `expiresInMs` was measured by the store before
 * its answer arrived, so this is never before the store's expiry (clock drift aside).
 */
function othersEarliestExpiry(states, holder, now) {
  let earliest = Infinity;
  for (const { holder: other, expiresInMs } of states) {
    if (other !== null && other !== holder && typeof expiresInMs === 'number') earliest = Math.min(earliest, expiresInMs);
  }
  return earliest === Infinity ? null : now + earliest;
}

/** Adopting runs in slices of at most renewEveryMs / 2 and this long: the event loop runs between them. */
const MAX_ADOPT_SLICE_MS = 1000;

/**
 * One instance's leases as it knows them: until when each is valid here, which accounts its engine drives, and the
 * work rounds leave behind (leases to free after a hand-over, leases to take). Every method takes the time it is
 * called at; none waits, calls out or arms a timer. Methods that stop the engine driving accounts return them: the
 * caller releases them in the engine (`driver.release`) and reports them.
 *
 * A round (LeaseKeeper) renews at once and leaves the rest — freeing handed-over leases and taking new ones, which
 * wait for the Driver's writes, and adopting, which takes as long as the records it reads — to work that goes on after
 * it, one piece at a time, while later rounds keep renewing and add to it.
 */
export class LeaseDecisions {
  #holder;
  #ttlMs;
  #marginMs;
  #renewEveryMs;
  #adoptBudgetMs;
  #random;
  /** When the earliest lease of another holder that the last plan saw expires (local time), until nextRoundAt. */
  #othersExpireAt = null;
  /** accountId → local time until which this instance's lease is valid. */
  #validUntil = new Map();
  /** Accounts the engine drives: adopted, or added here. */
  #driven = new Set();
  #rounds = 0;
  /** Leases handed over (the engine released the accounts) to free once the writes queued before have landed. */
  #toFree = [];
  /** Leases the last round wanted to take. */
  #toTake = [];

  /**
   * `holder`, `ttlMs`, `marginMs`, `renewEveryMs` as LeaseKeeper takes them; `random` orders free accounts.
   * Adopting goes in slices of at most renewEveryMs / 2 and 1 s (half of the default renewal interval would stall the
   * event loop 5 s).
   */
  constructor({ holder, ttlMs, marginMs, renewEveryMs, random = Math.random }) {
    this.#holder = holder;
    this.#ttlMs = ttlMs;
    this.#marginMs = marginMs;
    this.#renewEveryMs = renewEveryMs;
    this.#adoptBudgetMs = Math.max(1, Math.min(Math.floor(renewEveryMs / 2), MAX_ADOPT_SLICE_MS));
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

  /**
   * A round's heartbeat was stored: whether it may go on and take leases. The first one may not: an instance joining
   * is seen by the others before it takes anything, so that instances started together share from the start.
   */
  announced() {
    this.#rounds += 1;
    return this.#rounds > 1;
  }

  /**
   * The round's plan (see planRound) from the lease states (`store.leaseStates()`, answered at `now`), the live
   * instance count and the busy accounts. It also notes when the earliest lease of another holder expires, for
   * nextRoundAt.
   */
  plan({ states, live, busy, now }) {
    this.#othersExpireAt = othersEarliestExpiry(states, this.#holder, now);
    const leased = new Set(this.toAdopt(now));
    return planRound({ holder: this.#holder, driven: this.#driven, leased, states, live, busy, random: this.#random });
  }

  /**
   * When the next round is due, asked as a round ends at `now`: renewEveryMs later, or earlier, when the last plan saw
   * a lease of another holder expire before that — then at its expiry. A live holder renews every renewEveryMs, so its
   * leases never expire within one interval; one that does missed a renewal (the holder died or lost the store), and
   * the round at its expiry takes its accounts then, not up to one interval later (its presence, stored before its
   * last renewal, has expired by then too: the fair share no longer counts it). The expiry noted by the plan is used
   * once: a round failing before its plan falls back to the interval.
   */
  nextRoundAt(now) {
    const expiry = this.#othersExpireAt;
    this.#othersExpireAt = null;
    return Math.min(now + this.#renewEveryMs, expiry ?? Infinity);
  }

  /**
   * What a round leaves to the work after it: the leases it handed over (released here already) to free, and the
   * leases it wants to take, instead of what an earlier round wanted.
   */
  leave({ handOver, take }) {
    this.#toFree.push(...handOver);
    this.#toTake = [...take];
  }

  // ----------------------------------------------------------------------------------------------- the work after rounds

  /** The handed-over leases to free now (once the writes queued before the hand-over have landed); taken off the list. */
  leasesToFree() {
    return this.#toFree.splice(0);
  }

  /** The leases to take now: wanted by the last round, neither driven nor valid here at `now`; taken off the list. */
  leasesToTake(now) {
    return this.#toTake.splice(0).filter((id) => !this.#driven.has(id) && !this.valid(id, now));
  }

  /**
   * Whether to plan again at once after taking the leases `asked` (from leasesToTake), of which `held` came back: when
   * some came back held by another instance, it took them first — instances that see the same leases expire race for
   * them — so the round's view of the free leases is stale, and this instance may be below its share while others are
   * still free. A round now takes the rest at once, not a renewal interval later. (Each race leaves fewer free leases,
   * so planning again ends.)
   */
  takeFellShort(asked, held) {
    return new Set(held).size < new Set(asked).size;
  }

  /** Whether rounds left leases to free or to take. */
  hasLeftovers() {
    return this.#toFree.length > 0 || this.#toTake.length > 0;
  }

  /** Whether there is work at `now`: leases to free or take, accounts to adopt. */
  hasWork(now) {
    return this.hasLeftovers() || this.toAdopt(now).length > 0;
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
    this.#toFree = [];
    this.#toTake = [];
    return driven;
  }

  // ----------------------------------------------------------------------------------------------- adopting

  /** Accounts whose lease is valid at `now` but which the engine does not drive: to adopt. */
  toAdopt(now) {
    return [...this.#validUntil.keys()].filter((id) => !this.#driven.has(id) && this.valid(id, now));
  }

  /**
   * When a slice of adoptions starting at `now` must stop: adopting is synchronous and costs about as much as the
   * records it reads; a large share adopted in one go would hold up the event loop and with it every renewal, and an
   * instance taking longer than ttl − margin would lose every lease.
   */
  adoptionDeadline(now) {
    return now + this.#adoptBudgetMs;
  }

  /**
   * Whether another adoption of the slice may start at `now`; when not, the rest waits for the next slice, at once.
   * (An adoption that fails otherwise is tried again by the work a later round starts.)
   */
  mayAdopt(now, deadline) {
    return now < deadline;
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
