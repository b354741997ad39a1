// A LeaseStore reached over HTTP through a backend's store relay (node/store-relay.js; browsers and Node alike: no
// `node:` imports): what a browser console gives its LeaseKeeper, so that its engine takes an account's lease on the
// backend's own store, by that store's clock, as the backend's instances and the other consoles do. Each method is
// one `POST <baseUrl>/<method>` with `{ "args": [...] }`; its arguments are checked here first (a TypeError, nothing
// sent). A refusal or a failure of the relay or the store, or no answer, rejects with the relay's status and message:
// the Driver retries a failed write and the keeper's round fails, as with a database that failed. The unfenced
// `apply` is refused here and by the relay: writes go through `keeper.store` (applyFenced).
import { checkLeaseStoreArgs } from './lease-store-checks.js';

const NAME = 'RemoteStore';
/** The longest one call may take, the answer included (a load of a large store takes a while). */
const DEFAULT_TIMEOUT_MS = 60_000;
/** The longest part of a relay's message kept in an error. */
const MAX_MESSAGE_LENGTH = 300;

function remoteError(method, message, code, status = null) {
  return Object.assign(new Error(`${NAME}.${method}: ${message}`), { code, status });
}

export class RemoteStore {
  #baseUrl;
  #fetch;
  #headers;
  #timeoutMs;

  /**
   * `baseUrl`: where the backend mounts its store relay (`https://mdm.example.com/store-relay`). `fetch` (default
   * globalThis.fetch), `headers` sent with every call (a CSRF token, say; cookies go as the fetch sends them),
   * `timeoutMs` for each call (default 60 s).
   */
  constructor({ baseUrl, fetch = globalThis.fetch, headers = {}, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
    if (typeof baseUrl !== 'string' || baseUrl === '') throw new TypeError(`${NAME} needs { baseUrl }: the URL of the backend's store relay`);
    if (typeof fetch !== 'function') throw new TypeError(`${NAME} needs a fetch function`);
    if (headers === null || typeof headers !== 'object' || Object.values(headers).some((v) => typeof v !== 'string')) {
      throw new TypeError(`${NAME}: headers must be an object of strings`);
    }
    if (!Number.isSafeInteger(timeoutMs) || timeoutMs <= 0) throw new RangeError(`${NAME}: timeoutMs must be a positive integer`);
    this.#baseUrl = baseUrl.replace(/\/+$/, '');
    // Called unbound: a browser's fetch throws when called as a method of another object.
    this.#fetch = (url, init) => fetch(url, init);
    this.#headers = { ...headers };
    this.#timeoutMs = timeoutMs;
  }

  /** Refused: a browser writes only through a LeaseKeeper (`keeper.store`, which calls applyFenced). */
  async apply() {
    throw remoteError('apply', 'refused: write through a LeaseKeeper (keeper.store writes with applyFenced)', 'UNFENCED_APPLY');
  }

  load(options) {
    return this.#call('load', options === undefined ? [] : [options]);
  }

  loadAccount(accountId, options) {
    return this.#call('loadAccount', options === undefined ? [accountId] : [accountId, options]);
  }

  heartbeat(holder, ttlMs) {
    return this.#call('heartbeat', [holder, ttlMs]);
  }

  leaseStates() {
    return this.#call('leaseStates', []);
  }

  acquireLeases(holder, accountIds, ttlMs) {
    return this.#call('acquireLeases', [holder, accountIds, ttlMs]);
  }

  async releaseLeases(holder, accountIds) {
    await this.#call('releaseLeases', [holder, accountIds]);
  }

  async leave(holder) {
    await this.#call('leave', [holder]);
  }

  applyFenced(holder, ops) {
    return this.#call('applyFenced', [holder, ops]);
  }

  /** One call through the relay: its `result`, or a rejection with the relay's status and message. */
  async #call(method, args) {
    checkLeaseStoreArgs(method, args, NAME);
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#timeoutMs);
    let response;
    let text;
    try {
      response = await this.#fetch(`${this.#baseUrl}/${method}`, {
        method: 'POST',
        headers: { ...this.#headers, 'Content-Type': 'application/json' },
        body: JSON.stringify({ args }),
        signal: controller.signal,
      });
      text = await response.text();
    } catch (error) {
      throw controller.signal.aborted
        ? remoteError(method, `the store relay did not answer within ${this.#timeoutMs} ms`, 'STORE_RELAY_TIMEOUT')
        : remoteError(method, `the store relay was not reached (${error?.message ?? error})`, 'STORE_RELAY_UNREACHABLE');
    } finally {
      clearTimeout(timer);
    }
    let body;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!response.ok) {
      const message = typeof body?.error?.message === 'string' ? body.error.message.slice(0, MAX_MESSAGE_LENGTH) : 'no reason given';
      const code = typeof body?.error?.code === 'string' ? body.error.code : 'STORE_RELAY_ERROR';
      throw remoteError(method, `the store relay answered ${response.status}: ${message}`, code, response.status);
    }
    if (body === null || typeof body !== 'object' || !Object.hasOwn(body, 'result')) {
      throw remoteError(method, `the store relay answered ${response.status} without a result`, 'STORE_RELAY_BAD_ANSWER', response.status);
    }
    return body.result;
  }
}
