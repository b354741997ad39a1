// Argument checks of the LeaseStore methods (see store.d.ts), shared by every leasing adapter (browser and Node
// alike: no `node:` imports).

/** Throws a TypeError unless `holder` is a non-empty string. */
export function checkHolder(holder, method) {
  if (typeof holder !== 'string' || holder === '') throw new TypeError(`${method}: holder must be a non-empty string`);
}

/** Throws a TypeError unless `ids` is an array of strings. */
export function checkAccountIds(ids, method) {
  if (!Array.isArray(ids) || !ids.every((id) => typeof id === 'string')) {
    throw new TypeError(`${method}: accountIds must be an array of strings`);
  }
}

/** Throws a RangeError unless `ttlMs` is a positive safe integer. */
export function checkTtl(ttlMs, method) {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new RangeError(`${method}: ttlMs must be a positive integer, got ${ttlMs}`);
}
