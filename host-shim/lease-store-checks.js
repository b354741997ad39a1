// Argument checks of the LeaseStore methods and of loadAccount (see store.d.ts), shared by every adapter, and the
// methods a LeaseKeeper calls with the checks of their arguments, shared by the store relay (node/store-relay.js) and
// RemoteStore (browser and Node alike: no `node:` imports).
import { validateOps } from './record-encoding.js';

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

/** Throws a TypeError unless `accountId` is a string. */
function checkAccountId(accountId, method) {
  if (typeof accountId !== 'string') throw new TypeError(`${method}: accountId must be a string`);
}

/** Throws a TypeError unless `options` is undefined or an object of optional boolean fields named `names`. */
function checkBooleanOptions(options, method, names) {
  if (options === undefined) return;
  const isObject = options !== null && typeof options === 'object' && !Array.isArray(options);
  if (!isObject || Object.keys(options).some((key) => !names.includes(key))
    || names.some((name) => !['undefined', 'boolean'].includes(typeof options[name]))) {
    throw new TypeError(`${method}: options must be { ${names.map((name) => `${name}?: boolean`).join(', ')} }`);
  }
}

const checkLoadOptions = (options, method) => checkBooleanOptions(options, method, ['json']);
const checkLoadAccountOptions = (options, method) => checkBooleanOptions(options, method, ['shared', 'json']);

/**
 * The argument of `store.load(options)` (see Store.load), checked (a TypeError naming `method`): whether records may
 * come with their value as JSON text (`json`, default false). Every adapter calls it.
 */
export function loadArgs(options, method) {
  checkLoadOptions(options, method);
  return { json: options?.json ?? false };
}

/**
 * The arguments of `store.loadAccount(accountId, options)` (see Store.loadAccount), checked (a TypeError naming
 * `method`): whether the records of no account are asked for too (`shared`, default true), and whether records may
 * come with their value as JSON text (`json`, default false). Every adapter calls it.
 */
export function loadAccountArgs(accountId, options, method) {
  checkAccountId(accountId, method);
  checkLoadAccountOptions(options, method);
  return { shared: options?.shared ?? true, json: options?.json ?? false };
}

/** An argument that may be left out (the last ones of a method): its check, marked. */
const optional = (check) => Object.assign((value, ...rest) => check(value, ...rest), { optional: true });

/**
 * The LeaseStore methods a LeaseKeeper calls (every one but the unfenced `apply`), each with the checks of its
 * arguments in order: `check(value, "<name>.<method>", name)`; those marked optional may be left out.
 */
const LEASE_STORE_ARGUMENTS = {
  heartbeat: [checkHolder, checkTtl],
  leaseStates: [],
  acquireLeases: [checkHolder, checkAccountIds, checkTtl],
  releaseLeases: [checkHolder, checkAccountIds],
  leave: [checkHolder],
  applyFenced: [checkHolder, (ops, method, name) => validateOps(ops, name)],
  load: [optional(checkLoadOptions)],
  loadAccount: [checkAccountId, optional(checkLoadAccountOptions)],
};

/** The methods of a LeaseStore that a LeaseKeeper calls. */
export const LEASE_STORE_METHODS = Object.freeze(Object.keys(LEASE_STORE_ARGUMENTS));

/**
 * Throws a TypeError (RangeError for a ttl) unless `args` are arguments `method` (one of LEASE_STORE_METHODS) takes:
 * an array of its arguments (the optional ones may be left out), each of its type. `name` names the caller in the
 * message.
 */
export function checkLeaseStoreArgs(method, args, name) {
  const checks = LEASE_STORE_ARGUMENTS[method];
  if (!Array.isArray(args)) throw new TypeError(`${name}.${method}: args must be an array`);
  const required = checks.filter((check) => !check.optional).length;
  if (args.length < required || args.length > checks.length) {
    const count = required === checks.length ? `${required}` : `${required} to ${checks.length}`;
    throw new TypeError(`${name}.${method} takes ${count} argument${checks.length === 1 ? '' : 's'}, got ${args.length}`);
  }
  args.forEach((arg, index) => checks[index](arg, `${name}.${method}`, name));
}
