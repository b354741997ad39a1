// The host loop around a vpp-license-engine `Engine` (browser and Node alike: no `node:` imports).
// It decides nothing: it performs the engine's requests, writes its persist records, keeps one timer
// armed for the engine's next deadline and passes the current time on every call.
// With `leases` (several instances on one store, see lease-keeper.js) it also sends no request for an account whose
// lease this instance does not hold: it has the account released instead.
//
// Back-pressure: while a store write is in flight the engine's outputs are left in the engine (inputs, answers and
// notifications still go in at once); they are drained once every queued write is stored, so that the requests
// the engine paces leave at about the time it counted them, not bunched behind a slow store.
// Group commit: a write waits one turn of the event loop before it starts; the inputs that arrive meanwhile go into
// the engine, and their records come out together in the next write. A synchronous store (SQLite) under a burst of
// inputs then commits about once per turn of the event loop, not once per input.
// Retry-After: a request held in the Driver (behind a write, or paced) does not leave inside a Retry-After window
// Apple gave its account after the engine emitted it.

/** setTimeout's delay is a signed 32-bit millisecond count; longer delays fire at once. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;
/** A failed store write is tried again after 100 ms, then twice as long each time, at most every 5 s. */
const DEFAULT_WRITE_RETRY = Object.freeze({ initialDelayMs: 100, maxDelayMs: 5000 });
/** The longest Retry-After honoured, as in the engine (an hour). */
const MAX_RETRY_AFTER_MS = 3_600_000;
/** Apple's rate window (`maxRequestPerSecond`), and the engine's default `rateLimitMarginMs` added to it. */
const SECOND_MS = 1000;
const DEFAULT_RATE_LIMIT_MARGIN_MS = 250;

function checkWriteRetry({ initialDelayMs = DEFAULT_WRITE_RETRY.initialDelayMs, maxDelayMs = DEFAULT_WRITE_RETRY.maxDelayMs } = {}) {
  for (const [name, value] of [['initialDelayMs', initialDelayMs], ['maxDelayMs', maxDelayMs]]) {
    if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`Driver: writeRetry.${name} must be a positive integer`);
  }
  if (maxDelayMs < initialDelayMs) throw new RangeError('Driver: writeRetry.maxDelayMs must be at least initialDelayMs');
  return { initialDelayMs, maxDelayMs };
}

function checkRateLimitMargin(marginMs = DEFAULT_RATE_LIMIT_MARGIN_MS) {
  if (!Number.isSafeInteger(marginMs) || marginMs < 0 || marginMs > SECOND_MS) {
    throw new RangeError('Driver: rateLimitMarginMs must be an integer in 0..=1000');
  }
  return marginMs;
}

/** Resolves after one turn of the event loop (Node: after the I/O callbacks already waiting). */
function nextTurn() {
  return new Promise((resolve) => (typeof globalThis.setImmediate === 'function' ? globalThis.setImmediate(resolve) : globalThis.setTimeout(resolve, 0)));
}

/** The local time until which a response's `Retry-After` (delta-seconds or an HTTP-date) forbids requests, or null. */
function retryAfterUntil(response, now) {
  const value = response.headers?.['retry-after'];
  if (typeof value !== 'string' || (response.status !== 429 && response.status !== 503)) return null;
  const text = value.trim();
  const until = /^\d+$/.test(text) ? now + Number(text) * SECOND_MS : Date.parse(text);
  return Number.isFinite(until) && until > now ? Math.min(until, now + MAX_RETRY_AFTER_MS) : null;
}

export class Driver {
  #engine;
  #transport;
  #store;
  #now;
  #onEvent;
  #onError;
  #setTimer;
  #clearTimer;
  #leases;
  #writeRetry;
  /** The engine's rate window: 1 s plus its rateLimitMarginMs. */
  #rateWindowMs;

  #timer = null;
  #timerAt = null;
  #draining = false;
  /** A drain was asked for while a write was in flight: it runs once every queued write is stored. */
  #drainDeferred = false;
  /**
   * Engine calls made (inputs, notifications, answers, timeouts, adopt, release), and how many of them the last batch
   * that ended with the timeout had seen: while fewer, their outputs (records too) may still be in the engine.
   */
  #fed = 0;
  #drained = 0;
  /** Set when a call made during a drain (from onEvent) fed the engine: the running drain asks again. */
  #fedWhileDraining = false;
  /** Accounts released while the current batch is dispatched: the engine dropped their queued requests. */
  #releasedInBatch = new Set();
  #stopped = false;
  #requestsInFlight = 0;
  /** accountId → requests of that account sent or waiting to be sent, not yet answered. */
  #accountRequests = new Map();
  /** accountId → its requests whose records are stored, held for the rate (#pump): { items, wait }. */
  #paceQueues = new Map();
  /** accountId → its requests that left within the engine's window: { emittedAt, sentAt }, oldest first. */
  #sentLog = new Map();
  /** Waits of held requests: { timer, wake }; stop() ends them (nothing leaves after it). */
  #paceWaits = new Set();
  #writesPending = 0;
  /**
   * Tail of the write queue: persist ops are applied one output at a time, in output order. It settles once the
   * last write queued is stored (or given up after stop()), and never rejects: requests wait on it.
   */
  #writes = Promise.resolve();
  /** Writes queued so far (each has this sequence number), and the number of the last one stored. */
  #writesQueued = 0;
  #writesStored = 0;
  /** accountId → local time until which Apple's Retry-After holds the account's requests back. */
  #retryAfter = new Map();
  /** The store's error while the write at the head of the queue is failing (retried), else null. */
  #writeFailure = null;
  /** The error of the write given up after stop(): it and every later write are not applied. */
  #writesGivenUp = null;
  /** Waits for a failed write's next attempt: { timer, wake }. */
  #retryWait = null;
  /** writesSettled() calls waiting: { upTo, resolve, reject }; upTo is Infinity until the drain they wait for. */
  #settledWaiters = [];
  #idleWaiters = [];

  constructor({
    engine,
    transport,
    store,
    now = Date.now,
    onEvent = () => {},
    onError = (error) => console.error('vpp-license-engine driver:', error),
    setTimer = globalThis.setTimeout,
    clearTimer = globalThis.clearTimeout,
    leases,
    writeRetry,
    rateLimitMarginMs,
  }) {
    if (!engine || !transport || !store) throw new TypeError('Driver needs { engine, transport, store }');
    if (leases !== undefined && (typeof leases?.holds !== 'function' || typeof leases?.lapsed !== 'function')) {
      throw new TypeError('Driver: leases needs holds(accountId) and lapsed(accountId)');
    }
    this.#leases = leases;
    this.#writeRetry = checkWriteRetry(writeRetry);
    this.#rateWindowMs = SECOND_MS + checkRateLimitMargin(rateLimitMarginMs);
    this.#engine = engine;
    this.#transport = transport;
    this.#store = store;
    this.#onEvent = onEvent;
    this.#onError = onError;
    // Called unbound: browsers' setTimeout and performance.now throw "Illegal invocation" as methods of another object.
    this.#now = () => now();
    this.#setTimer = (callback, delay) => setTimer(callback, delay);
    this.#clearTimer = (handle) => clearTimer(handle);
  }

  /** Drains what the engine already has to do (its first requests) and arms the timer. */
  start() {
    this.#assertRunning();
    this.#fed += 1;
    this.#drain();
  }

  /** Feeds one input to the engine, then drains. A rejected input throws the engine's Error to the caller. */
  input(input) {
    this.#assertRunning();
    this.#engine.handleInput(input, this.#now());
    this.#fed += 1;
    this.#drain();
  }

  /**
   * Hands one notification Apple POSTed to the account's endpoint to the engine, then drains. Returns the HTTP
   * status to answer Apple with (the engine checks the bearer secret; a non-2xx makes Apple retry). Throws the
   * engine's Error, or when the driver is stopped, to the caller (the endpoint answers 5xx so Apple retries).
   */
  notification(accountId, authorization, body) {
    this.#assertRunning();
    // No code on the Error: the notification endpoint answers 503, and Apple retries (perhaps at the holder).
    if (this.#leases !== undefined && !this.#leases.holds(accountId)) throw new Error('this instance does not hold the account\'s lease');
    const status = this.#engine.handleNotification(accountId, authorization ?? null, body, this.#now());
    this.#fed += 1;
    this.#drain();
    return status;
  }

  /**
   * Takes over one account from the store's records (`store.loadAccount(accountId)`: its own and those of no account;
   * every record, as `store.load()` returns them, works too; after another adoption, `{ shared: false }`: its own
   * alone) and drains: call when this instance acquired the account's lease. Throws the engine's Error
   * (ACCOUNT_EXISTS, UNKNOWN_ACCOUNT) to the caller.
   */
  adopt(accountId, records) {
    this.#assertRunning();
    this.#engine.adopt(accountId, records, this.#now());
    this.#fed += 1;
    this.#drain();
  }

  /**
   * Stops driving one account, keeping its records, and drains: call at once when this instance lost (or hands
   * over) the account's lease. Answers to its requests in flight are dropped by the engine. Throws the engine's
   * Error (UNKNOWN_ACCOUNT) to the caller.
   */
  release(accountId) {
    this.#engine.release(accountId, this.#now());
    if (this.#draining) this.#releasedInBatch.add(accountId);
    if (!this.#stopped) {
      this.#fed += 1;
      this.#drain();
    }
  }

  /**
   * Resolves once every write queued so far is stored — with the records of the engine calls made so far that are
   * still in the engine (handled while a write was in flight): it waits for the drain that queues them. Rejects with
   * the store's error as soon as one of them fails an attempt (at once when one is failing now): the Driver goes on
   * retrying it, in order, so a rejection means "not stored yet", and a later call waits for the retries. After
   * stop(), a write that fails is given up with every write after it: then it rejects with that error for good.
   */
  writesSettled() {
    const undrained = this.#fed > this.#drained && (this.#drainDeferred || this.#draining);
    const upTo = undrained ? Infinity : this.#writesQueued;
    if (this.#writesStored >= upTo) return Promise.resolve();
    if (this.#writesGivenUp !== null) return Promise.reject(this.#writesGivenUp);
    if (this.#writeFailure !== null) return Promise.reject(this.#writeFailure);
    return new Promise((resolve, reject) => this.#settledWaiters.push({ upTo, after: this.#fed, resolve, reject }));
  }

  /** How many requests of one account are waiting to be sent or for their answer. */
  requestsInFlight(accountId) {
    return this.#accountRequests.get(accountId) ?? 0;
  }

  /**
   * Stops issuing work: clears the timer and drops responses that arrive later; no request leaves any more. Queued
   * writes are still applied — with the records of inputs handled while a write was in flight, drained once it is
   * stored (their events too) — but one that fails is not retried any more: it and the writes after it are given up
   * (as in a crash).
   */
  stop() {
    this.#stopped = true;
    this.#disarm();
    if (this.#retryWait !== null) {
      this.#clearTimer(this.#retryWait.timer);
      this.#retryWait.wake();
    }
    for (const wait of [...this.#paceWaits]) {
      this.#clearTimer(wait.timer);
      wait.wake();
    }
  }

  /** Resolves once no request is in flight and no store write is pending. */
  whenIdle() {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #assertRunning() {
    if (this.#stopped) throw new Error('Driver is stopped');
  }

  /**
   * Takes the outputs due now in batches (`pollOutputs`), dispatches them in order and arms the timer. While a store
   * write is in flight it takes nothing (back-pressure): the engine keeps its outputs, and emits its requests — counting
   * them for the rate limit — only when they can leave, once every queued write is stored (#resumeDrain).
   */
  #drain() {
    // An onEvent handler may call input(): the loop below is still running and asks the engine again.
    if (this.#draining) {
      this.#fedWhileDraining = true;
      return;
    }
    this.#draining = true;
    try {
      for (;;) {
        if (this.#writesPending > 0) {
          this.#drainDeferred = true;
          return;
        }
        this.#fedWhileDraining = false;
        this.#releasedInBatch.clear();
        const fed = this.#fed;
        const now = this.#now();
        const outputs = this.#engine.pollOutputs(now);
        // A batch ends early, without the timeout, once it holds 5,000 store records: ask again.
        const timeout = outputs.at(-1)?.type === 'timeout' ? outputs.pop() : null;
        for (const output of outputs) {
          // As in the engine's queue, a request of an account released meanwhile does not leave.
          if (output.type === 'request' && this.#releasedInBatch.has(output.accountId)) continue;
          this.#dispatch(output, now);
        }
        // Every engine call made before this batch was polled has its records queued now.
        if (timeout !== null) this.#drainedUpTo(fed);
        // The deadline is stale when a handler fed the engine after it was computed.
        if (timeout !== null && !this.#fedWhileDraining) {
          this.#arm(timeout.at);
          return;
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  /** The records of the first `fed` engine calls are queued: writesSettled() calls made before then know what to wait for. */
  #drainedUpTo(fed) {
    this.#drained = Math.max(this.#drained, fed);
    for (const waiter of this.#settledWaiters) {
      if (waiter.upTo === Infinity && waiter.after <= fed) waiter.upTo = this.#writesQueued;
    }
    this.#resolveSettled();
  }

  /** Every queued write is stored: runs the drain deferred meanwhile (after stop() too, for the records it holds). */
  #resumeDrain() {
    if (!this.#drainDeferred || this.#writesPending > 0) return;
    this.#drainDeferred = false;
    // Given up (after stop()): nothing more is stored, and writesSettled() rejects.
    if (this.#writesGivenUp !== null) return;
    try {
      this.#drain();
    } catch (error) {
      this.#onError(error);
    }
  }

  #dispatch(output, now) {
    switch (output.type) {
      case 'request':
        this.#send(output, now);
        break;
      case 'persist':
        this.#persist(output.ops);
        break;
      case 'event':
        try {
          this.#onEvent(output.event);
        } catch (error) {
          this.#onError(error);
        }
        break;
      default:
        this.#onError(new Error(`unknown engine output type ${JSON.stringify(output.type)}`));
    }
  }

  /** Sends one request the engine emitted (counted for the rate limit) at `emittedAt`. */
  #send(request, emittedAt) {
    this.#requestsInFlight += 1;
    this.#countAccountRequest(request.accountId, 1);
    // Write-ahead: a request leaves only after the persist records output before it are stored, so a
    // crash never leaves a call at Apple that the store does not know was intended. Then it may wait for the rate.
    this.#writes.then(() => this.#ready({ request, emittedAt }));
  }

  /** A request whose records are stored: it leaves now, or after the account's requests held before it (#pump). */
  #ready(item) {
    const accountId = item.request.accountId ?? null;
    if (accountId === null) {
      this.#go(item);
      return;
    }
    let queue = this.#paceQueues.get(accountId);
    if (queue === undefined) {
      queue = { items: [], wait: null };
      this.#paceQueues.set(accountId, queue);
    }
    queue.items.push(item);
    if (queue.wait === null) this.#pump(accountId, queue);
  }

  /**
   * Sends the account's ready requests, in order, each as soon as the rate allows. The engine counts a request when
   * it emits it; one held behind a store write leaves later than counted, and one emitted after it may catch it up:
   * Apple would see both within a second. So a request emitted a second or more after an earlier one leaves no
   * sooner after it than it was emitted after it, up to the engine's window (1 s + rateLimitMarginMs). Then requests
   * that leave within a second were emitted within a second — no more than the engine let go — and within the
   * window, within the window. A request nothing was held before leaves at once.
   */
  #pump(accountId, queue) {
    while (queue.items.length > 0) {
      const now = this.#now();
      const log = [];
      for (const sent of this.#sentLog.get(accountId) ?? []) {
        // A clock set back: what left "later than now" left now, so that nothing waits longer than the window.
        if (sent.sentAt + this.#rateWindowMs > now) log.push(sent.sentAt > now ? { ...sent, sentAt: now } : sent);
      }
      this.#sentLog.set(accountId, log);
      const { emittedAt } = queue.items[0];
      let leaveAt = Math.max(now, this.#retryAfter.get(accountId) ?? now);
      for (const sent of log) {
        const apart = emittedAt - sent.emittedAt;
        if (apart >= SECOND_MS) leaveAt = Math.max(leaveAt, sent.sentAt + Math.min(apart, this.#rateWindowMs));
      }
      if (leaveAt > now && !this.#stopped) {
        const wait = {
          wake: () => {
            this.#paceWaits.delete(wait);
            queue.wait = null;
            this.#pump(accountId, queue);
          },
        };
        queue.wait = wait;
        this.#paceWaits.add(wait);
        wait.timer = this.#setTimer(wait.wake, leaveAt - now);
        return;
      }
      const item = queue.items.shift();
      log.push({ emittedAt: item.emittedAt, sentAt: now });
      this.#go(item);
    }
    this.#paceQueues.delete(accountId);
    if (this.#sentLog.get(accountId)?.length === 0) this.#sentLog.delete(accountId);
    if ((this.#retryAfter.get(accountId) ?? Infinity) <= this.#now()) this.#retryAfter.delete(accountId);
  }

  /** Performs one request and feeds its answer back. */
  #go({ request }) {
    this.#perform(request)
      .then((input) => {
        if (input?.type === 'response' && request.accountId != null) this.#holdForRetryAfter(request.accountId, input);
        if (input !== null && !this.#stopped) this.#feed(input);
      })
      .finally(() => {
        this.#requestsInFlight -= 1;
        this.#countAccountRequest(request.accountId, -1);
        this.#settle();
      });
  }

  /** Apple answered `Retry-After`: the account's requests still held here wait until then. */
  #holdForRetryAfter(accountId, response) {
    const until = retryAfterUntil(response, this.#now());
    if (until !== null && until > (this.#retryAfter.get(accountId) ?? 0)) this.#retryAfter.set(accountId, until);
  }

  /** Sends one request; resolves with the input that answers it, or null when it is not sent. */
  async #perform(request) {
    if (this.#stopped || !this.#leaseValid(request.accountId)) return null;
    try {
      const response = await this.#transport.send(request);
      return { type: 'response', id: request.id, status: response.status, headers: response.headers, body: response.body };
    } catch (error) {
      return { type: 'networkError', id: request.id, message: String(error?.message ?? error) };
    }
  }

  /** Whether a request of `accountId` may leave; when its lease is not valid, has the account released instead. */
  #leaseValid(accountId) {
    if (this.#leases === undefined || accountId === null || accountId === undefined) return true;
    if (this.#leases.holds(accountId)) return true;
    // The engine counts the request as unknown once the account is released: it is neither sent nor answered.
    this.#leases.lapsed(accountId);
    return false;
  }

  #countAccountRequest(accountId, delta) {
    if (accountId === null || accountId === undefined) return;
    const count = (this.#accountRequests.get(accountId) ?? 0) + delta;
    if (count === 0) this.#accountRequests.delete(accountId);
    else this.#accountRequests.set(accountId, count);
  }

  /** Feeds an input that has no caller to throw to (a response): failures go to onError. */
  #feed(input) {
    try {
      this.#engine.handleInput(input, this.#now());
      this.#fed += 1;
      this.#drain();
    } catch (error) {
      this.#onError(error);
    }
  }

  #persist(ops) {
    this.#writesPending += 1;
    const seq = (this.#writesQueued += 1);
    this.#writes = this.#writes
      .then(nextTurn)
      .then(() => this.#write(ops, seq))
      .finally(() => {
        this.#writesPending -= 1;
        // Back-pressure: what the engine held meanwhile is drained now, before whenIdle() may resolve.
        this.#resumeDrain();
        this.#settle();
      });
  }

  /**
   * Applies one output's ops, trying again after each failure (capped exponential backoff) until the store takes
   * them: the queue behind it — later writes and every request queued after it — waits, so nothing is reordered and
   * no request leaves before the records output ahead of it are stored. Never rejects.
   */
  async #write(ops, seq) {
    for (let attempt = 1; this.#writesGivenUp === null; attempt += 1) {
      try {
        await this.#store.apply(ops);
      } catch (error) {
        this.#onError(error);
        if (!this.#stopped) {
          this.#writeFailed(error);
          await this.#retryDelay(attempt);
        }
        // Stopped: no more retries. Later writes must not land over a lost one: they are given up too.
        if (this.#stopped) this.#giveUpWrites(error);
        continue;
      }
      this.#writeFailure = null;
      this.#writesStored = seq;
      this.#resolveSettled();
      return;
    }
  }

  #resolveSettled() {
    const waiting = this.#settledWaiters;
    this.#settledWaiters = waiting.filter((w) => w.upTo > this.#writesStored);
    for (const w of waiting) if (w.upTo <= this.#writesStored) w.resolve();
  }

  #writeFailed(error) {
    this.#writeFailure = error;
    for (const w of this.#settledWaiters.splice(0)) w.reject(error);
  }

  #giveUpWrites(error) {
    this.#writesGivenUp ??= error;
    for (const w of this.#settledWaiters.splice(0)) w.reject(this.#writesGivenUp);
  }

  /** Waits before attempt `failures + 1`: initialDelayMs, doubled after each failure, at most maxDelayMs; stop() ends it. */
  #retryDelay(failures) {
    const { initialDelayMs, maxDelayMs } = this.#writeRetry;
    const delay = Math.min(initialDelayMs * 2 ** Math.min(failures - 1, 30), maxDelayMs);
    return new Promise((resolve) => {
      const wake = () => {
        this.#retryWait = null;
        resolve();
      };
      this.#retryWait = { timer: this.#setTimer(wake, delay), wake };
    });
  }

  #arm(at) {
    if (this.#stopped || at === this.#timerAt) return;
    this.#disarm();
    const delay = Math.min(Math.max(at - this.#now(), 0), MAX_TIMER_DELAY_MS);
    this.#timerAt = at;
    this.#timer = this.#setTimer(() => {
      this.#timer = null;
      this.#timerAt = null;
      // While a write is in flight this only tells the engine the time: the drain waits for the write.
      if (!this.#stopped) this.#feed({ type: 'timeout' });
    }, delay);
  }

  #disarm() {
    if (this.#timer !== null) this.#clearTimer(this.#timer);
    this.#timer = null;
    this.#timerAt = null;
  }

  #isIdle() {
    return this.#requestsInFlight === 0 && this.#writesPending === 0;
  }

  #settle() {
    if (!this.#isIdle()) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }
}
