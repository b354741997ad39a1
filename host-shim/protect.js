// What every durable Store adapter shares (browser and Node alike: no `node:` imports): op validation,
// the token protection hook, JSON encoding, and a queue that applies batches one at a time, in call order.
//
// Tokens at rest: the `token` field of `account/<id>` records goes through `protect(plaintext) → stored string`
// on write and `unprotect(stored) → plaintext` on load; nothing else is touched. The default is identity (the
// token is stored in plain text). The hooks may be async; they never see any other field, and nothing here
// logs a value.

export const ACCOUNT_PREFIX = 'account/';
const identity = (text) => text;

/** The `{ protect, unprotect }` pair of an adapter's options; both or neither. */
export function tokenHooks({ protect, unprotect } = {}, storeName) {
  if ((protect === undefined) !== (unprotect === undefined)) {
    throw new TypeError(`${storeName}: pass both protect and unprotect, or neither`);
  }
  for (const [name, hook] of [['protect', protect], ['unprotect', unprotect]]) {
    if (hook !== undefined && typeof hook !== 'function') throw new TypeError(`${storeName}: ${name} must be a function`);
  }
  return { protect: protect ?? identity, unprotect: unprotect ?? identity };
}

const isAccountWithToken = (key, value) =>
  key.startsWith(ACCOUNT_PREFIX) && value !== null && typeof value === 'object' && typeof value.token === 'string';

async function mapToken(key, value, hook, hookName, storeName) {
  if (!isAccountWithToken(key, value)) return value;
  const token = await hook(value.token);
  // The message names the key, never the token.
  if (typeof token !== 'string') throw new TypeError(`${storeName}: ${hookName} returned a non-string for ${key}`);
  return { ...value, token };
}

/** Throws a TypeError naming the first malformed op of one persist output (checked before anything is written). */
export function validateOps(ops, storeName) {
  if (!Array.isArray(ops)) throw new TypeError(`${storeName}.apply: ops must be an array`);
  ops.forEach((op, index) => {
    if (typeof op?.key !== 'string') throw new TypeError(`${storeName}.apply: op ${index} has no string key`);
    if (op.op !== 'put' && op.op !== 'delete') {
      throw new TypeError(`${storeName}.apply: op ${index} has unknown op ${JSON.stringify(op.op)}`);
    }
    if (op.op === 'put' && op.value === undefined) throw new TypeError(`${storeName}.apply: op ${index} (put) has no value`);
  });
}

/** A put op's value as JSON text; a TypeError when it has none (a BigInt, a function, a cycle). */
export function toJson(value, index, storeName) {
  let json;
  try {
    json = JSON.stringify(value);
  } catch (error) {
    throw new TypeError(`${storeName}.apply: op ${index} has a value that is not JSON (${error.message})`);
  }
  if (json === undefined) throw new TypeError(`${storeName}.apply: op ${index} has a value that is not JSON`);
  return json;
}

/**
 * Validates one persist output's ops (all of them, before anything is written) and encodes them:
 * `{ key, json }` for a put (json: the value, token protected, as JSON text), `{ key, json: null }` for a delete.
 */
export async function encodeOps(ops, hooks, storeName) {
  validateOps(ops, storeName);
  const encoded = [];
  for (const [index, op] of ops.entries()) {
    if (op.op === 'delete') encoded.push({ key: op.key, json: null });
    else encoded.push({ key: op.key, json: toJson(await mapToken(op.key, op.value, hooks.protect, 'protect', storeName), index, storeName) });
  }
  return encoded;
}

/** One stored row back to the record `Engine.restore` takes (token unprotected). */
export async function decodeRecord(key, json, hooks, storeName) {
  return { key, value: await mapToken(key, JSON.parse(json), hooks.unprotect, 'unprotect', storeName) };
}

/**
 * The net effect of encoded ops in one transaction: for each key, its last op. Writing these (deletes, then
 * puts; no key in both) in one transaction leaves the same state as applying every op in order.
 */
export function netEffect(encoded) {
  const last = new Map();
  for (const op of encoded) {
    last.delete(op.key); // keep Map order = order of each key's last op
    last.set(op.key, op.json);
  }
  const deletes = [];
  const puts = [];
  for (const [key, json] of last) {
    if (json === null) deletes.push(key);
    else puts.push({ key, json });
  }
  return { deletes, puts };
}

/**
 * Runs async tasks one at a time in call order (a failed task does not block the next). Adapters use it so that
 * concurrent apply() calls commit in the order they were made, whatever the hooks or the connection pool do.
 */
export function serialQueue() {
  let tail = Promise.resolve();
  return (task) => {
    const run = tail.then(task);
    tail = run.catch(() => {});
    return run;
  };
}
