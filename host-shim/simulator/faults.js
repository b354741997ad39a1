// Injected faults: one-shot (or `count`-shot) deviations matched against requests or notifications.
import { errorBody } from './errors.js';

/** errorNumber Apple pairs with an HTTP status when a fault names only the status. */
const DEFAULT_ERROR_FOR_STATUS = { 401: 9601, 403: 9637, 410: 9634, 429: 9646, 500: 9603, 503: 9729 };

export class FaultList {
  #faults = [];
  #filterKeys;

  /** @param {string[]} filterKeys  the spec keys that select what a fault applies to (absent = any) */
  constructor(filterKeys) {
    this.#filterKeys = filterKeys;
  }

  /** Registers a fault; `count` (default 1, may be Infinity) is how many matches consume it. */
  add(spec) {
    const count = spec.count ?? 1;
    if (!(count > 0)) throw new RangeError('fault count must be positive');
    const fault = { ...spec, remaining: count };
    this.#faults.push(fault);
    return {
      get remaining() { return fault.remaining; },
      cancel: () => { fault.remaining = 0; this.#prune(); },
    };
  }

  /** The first live fault matching `subject` (consumed once), or undefined. */
  take(subject) {
    const fault = this.#faults.find((f) => this.#filterKeys.every((k) => f[k] === undefined || f[k] === subject[k]));
    if (!fault) return undefined;
    fault.remaining--;
    this.#prune();
    return fault;
  }

  clear() {
    this.#faults = [];
  }

  #prune() {
    this.#faults = this.#faults.filter((f) => f.remaining > 0);
  }
}

/** Checks a request fault spec: it must answer (`status`), delay (`delayMs`) or drop the connection (`drop`). */
export function validateRequestFault(spec) {
  const { status, delayMs, drop, errorNumber, retryAfter } = spec;
  if (status === undefined && delayMs === undefined && !drop) {
    throw new TypeError('injectFault needs status, delayMs or drop');
  }
  if (status !== undefined && !(Number.isInteger(status) && status >= 100 && status <= 599)) {
    throw new RangeError(`injectFault: invalid HTTP status ${status}`);
  }
  if (errorNumber !== undefined && !Number.isInteger(errorNumber)) throw new TypeError('injectFault: errorNumber must be an integer');
  if (retryAfter !== undefined && !['string', 'number'].includes(typeof retryAfter)) {
    throw new TypeError('injectFault: retryAfter is delta-seconds or an HTTP-date');
  }
  if (delayMs !== undefined && !(delayMs >= 0)) throw new RangeError('injectFault: delayMs must be >= 0');
}

/** The response a status fault produces: Apple's error body (or `{}` for a non-error status without errorNumber). */
export function faultResponse({ status, errorNumber, retryAfter }) {
  const number = errorNumber ?? (status >= 400 ? DEFAULT_ERROR_FOR_STATUS[status] ?? 9603 : undefined);
  const headers = retryAfter === undefined ? {} : { 'Retry-After': String(retryAfter) };
  return { status, headers, body: number === undefined ? {} : errorBody(number), errorNumber: number ?? null };
}
