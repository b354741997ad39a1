// Which account a stored record belongs to: the engine's key scheme, taken from the engine itself (`accountOfRecord`
// of the wasm module, src/persist.rs), never re-implemented here. Browser and Node alike: no `node:` imports.
//
// The engine is imported as 'vpp-license-engine', the package itself: Node resolves it to its Node build, which is
// loaded synchronously, so these functions work at once; bundlers and import maps resolve it to the web build, whose
// functions work once the page has called `await init()` (the module is the page's own, so its init counts). Stores
// call them only to fence a write and to load an account, which a host does after it built an Engine, so after
// init; a call made earlier throws an Error that says so.
import { accountOfRecord as engineAccountOfRecord } from 'vpp-license-engine';

/**
 * The key of an account's own record is `account/<id>`, with the id as it is: the Store contract names it (tokens at
 * rest are in these records) and so does the LeaseStore contract (leaseStates lists them). tests/node/record-accounts
 * checks it against the engine.
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
      throw new Error('vpp-license-engine is not initialised: call `await init()` (its default export) before stores fence writes', { cause: error });
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
