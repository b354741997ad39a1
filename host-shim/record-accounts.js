// Which account a stored record belongs to, and where one account's records are stored: the engine's key scheme,
// taken from the engine itself (`accountOfRecord` and `accountKeyRanges` of the wasm module, src/persist.rs), never
// re-implemented here. Browser and Node alike: no `node:` imports.
//
// The engine is imported as 'vpp-license-engine', the package itself: Node resolves it to its Node build, which is
// loaded synchronously, so these functions work at once; bundlers and import maps resolve it to the web build, whose
// functions work once the page has called `await init()` (the module is the page's own, so its init counts). Stores
// call them only to fence a write and to load an account, which a host does after it built an Engine, so after
// init; a call made earlier throws an Error that says so.
import { accountKeyRanges as engineAccountKeyRanges, accountOfRecord as engineAccountOfRecord } from 'vpp-license-engine';

/**
 * The key of an account's own record is `account/<id>`, with the id as it is: the Store contract names it (tokens at
 * rest are in these records) and so does the LeaseStore contract (leaseStates lists them). tests/node/record-accounts
 * checks it against the engine's `accountKeyRanges`.
 */
export const ACCOUNT_PREFIX = 'account/';

/** The id of the account whose own record has this key (`account/<id>`), or null for any other key. */
export function accountIdOfKey(key) {
  return key.startsWith(ACCOUNT_PREFIX) ? key.slice(ACCOUNT_PREFIX.length) : null;
}

/** Calls an engine function; before the web build is initialised it throws an Error saying what to do. */
function engineCall(fn, ...args) {
  try {
    return fn(...args);
  } catch (error) {
    // The engine throws Errors with a `code`; the web glue, before init(), a TypeError without one.
    if (error instanceof TypeError && error.code === undefined) {
      throw new Error('vpp-license-engine is not initialised: call `await init()` (its default export) before stores fence writes or load an account', { cause: error });
    }
    throw error;
  }
}

/**
 * The account a record belongs to: its id; null for a record of no account (device and user facts, settings);
 * undefined when the key alone cannot say and `value` was not given — a policy record names its account only in its
 * value (for a delete, pass the value stored under the key, or null when none is).
 */
export function accountOfRecord(key, value) {
  return engineCall(engineAccountOfRecord, key, value);
}

/**
 * Where the records `Engine.adopt(accountId, …)` keeps are stored — the account's own and, unless `shared` is false,
 * those of no account: `{ keys, prefixes, byValue: [{ prefix, field }] }` (see AccountKeyRanges in the engine's types).
 */
export function accountKeyRanges(accountId, shared = true) {
  return engineCall(engineAccountKeyRanges, accountId, shared);
}

/**
 * The end of a prefix's key range: the smallest string above every string that starts with `prefix` (its last
 * character, ASCII, incremented: the engine's prefixes end in '/', so '/' → '0'). It is the same bound under JavaScript's
 * string order (UTF-16 code units), IndexedDB's, and a bytewise order of UTF-8 (SQLite's, PostgreSQL's "C" collation).
 */
export function prefixEnd(prefix) {
  const last = prefix.charCodeAt(prefix.length - 1);
  if (!(last < 0x7f)) throw new RangeError(`prefixEnd: a prefix must end in an ASCII character, got ${JSON.stringify(prefix)}`);
  return prefix.slice(0, -1) + String.fromCharCode(last + 1);
}

/**
 * Whether a record is one of `ranges` (`accountKeyRanges(accountId)`). `valueOf()` gives its value (parsed JSON), and
 * is called only for a key under a `byValue` prefix.
 */
export function inKeyRanges(ranges, accountId, key, valueOf) {
  if (ranges.keys.includes(key) || ranges.prefixes.some((prefix) => key.startsWith(prefix))) return true;
  return ranges.byValue.some(({ prefix, field }) => key.startsWith(prefix) && valueOf()?.[field] === accountId);
}
