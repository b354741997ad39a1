// What every LeaseStore adapter shares (see store.d.ts; browser and Node alike: no `node:` imports): argument
// checks, and the split of one persist output into the ops an instance may write and the accounts it may not.

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

/** Distinct account ids of `accounts` (nulls left out), sorted: leasing stores lock lease rows in this order. */
export function touchedAccounts(accounts) {
  return [...new Set(accounts.filter((a) => a !== null))].sort();
}

/**
 * Splits one persist output by lease: `keep[i]` says whether op i may be written (it belongs to no account, or to
 * one in `held`); `skipped` lists the accounts whose ops are left out.
 */
export function fenceOps(accounts, held) {
  const skipped = new Set();
  const keep = accounts.map((account) => {
    if (account === null || held.has(account)) return true;
    skipped.add(account);
    return false;
  });
  return { keep, skipped: [...skipped] };
}
