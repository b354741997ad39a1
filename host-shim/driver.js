// The host loop around a vpp-license-engine `Engine` (browser and Node alike: no `node:` imports).
// It decides nothing: it performs the engine's requests, writes its persist records, keeps one timer
// armed for the engine's next deadline and passes the current time on every call.

/** setTimeout's delay is a signed 32-bit millisecond count; longer delays fire at once. */
const MAX_TIMER_DELAY_MS = 2 ** 31 - 1;

export class Driver {
  #engine;
  #transport;
  #store;
  #now;
  #onEvent;
  #onError;
  #setTimer;
  #clearTimer;

  #timer = null;
  #timerAt = null;
  #draining = false;
  #stopped = false;
  #storeFailed = false;
  #requestsInFlight = 0;
  #writesPending = 0;
  /** Tail of the write queue: persist ops are applied one output at a time, in output order. */
  #writes = Promise.resolve();
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
  }) {
    if (!engine || !transport || !store) throw new TypeError('Driver needs { engine, transport, store }');
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
    this.#drain();
  }

  /** Feeds one input to the engine, then drains. A rejected input throws the engine's Error to the caller. */
  input(input) {
    this.#assertRunning();
    this.#engine.handleInput(input, this.#now());
    this.#drain();
  }

  /**
   * Hands one notification Apple POSTed to the account's endpoint to the engine, then drains. Returns the HTTP
   * status to answer Apple with (the engine checks the bearer secret; a non-2xx makes Apple retry). Throws the
   * engine's Error, or when the driver is stopped, to the caller (the endpoint answers 5xx so Apple retries).
   */
  notification(accountId, authorization, body) {
    this.#assertRunning();
    const status = this.#engine.handleNotification(accountId, authorization ?? null, body, this.#now());
    this.#drain();
    return status;
  }

  /** Stops issuing work: clears the timer and drops responses that arrive later. Queued writes still complete. */
  stop() {
    this.#stopped = true;
    this.#disarm();
  }

  /** Resolves once no request is in flight and no store write is pending. */
  whenIdle() {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  #assertRunning() {
    if (this.#stopped) throw new Error('Driver is stopped');
  }

  #drain() {
    // An onEvent handler may call input(): the loop below is still running and picks up its outputs.
    if (this.#draining) return;
    this.#draining = true;
    try {
      for (;;) {
        const output = this.#engine.pollOutput(this.#now());
        if (output.type === 'timeout') {
          this.#arm(output.at);
          return;
        }
        this.#dispatch(output);
      }
    } finally {
      this.#draining = false;
    }
  }

  #dispatch(output) {
    switch (output.type) {
      case 'request':
        this.#send(output);
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

  #send(request) {
    this.#requestsInFlight += 1;
    // Write-ahead: a request leaves only after the persist records output before it are stored, so a
    // crash never leaves a call at Apple that the store does not know was intended.
    this.#writes
      .then(() => {
        if (this.#stopped) throw new Error('Driver stopped before the request was sent');
        return this.#transport.send(request);
      })
      .then(
        (response) => ({
          type: 'response',
          id: request.id,
          status: response.status,
          headers: response.headers,
          body: response.body,
        }),
        (error) => ({ type: 'networkError', id: request.id, message: String(error?.message ?? error) }),
      )
      .then((input) => {
        if (!this.#stopped) this.#feed(input);
      })
      .finally(() => {
        this.#requestsInFlight -= 1;
        this.#settle();
      });
  }

  /** Feeds an input that has no caller to throw to (a response): failures go to onError. */
  #feed(input) {
    try {
      this.#engine.handleInput(input, this.#now());
      this.#drain();
    } catch (error) {
      this.#onError(error);
    }
  }

  #persist(ops) {
    this.#writesPending += 1;
    this.#writes = this.#writes
      .then(() => {
        if (!this.#storeFailed) return this.#store.apply(ops);
      })
      .catch((error) => {
        // Applying later writes over a lost one could leave the store inconsistent: halt (no more writes,
        // requests or timers), so that the host restarts from the store with Engine.restore, as after a crash.
        this.#storeFailed = true;
        this.stop();
        this.#onError(error);
      })
      .finally(() => {
        this.#writesPending -= 1;
        this.#settle();
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
