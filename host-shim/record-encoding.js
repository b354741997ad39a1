// Persist ops and stored rows, for the Store adapters (browser and Node alike: no `node:` imports): the checks of one
// persist output's ops, their encoding as JSON text (the token of account records protected, token-protection.js),
// the decoding of a stored row back to a record, and the net effect of a batch.
import { ACCOUNT_PREFIX } from './record-accounts.js';
import { holdsToken, protectToken, unprotectToken } from './token-protection.js';

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
    else {
      const value = holdsToken(op.key, op.value) ? await protectToken(op.key, op.value, hooks, storeName) : op.value;
      encoded.push({ key: op.key, json: toJson(value, index, storeName) });
    }
  }
  return encoded;
}

/**
 * Stored rows (`{ key, value }`, the value as JSON text) back to the records `Engine.restore` takes, in order, tokens
 * unprotected. Rows are parsed in one synchronous pass; only account records wait for the (possibly async) hook. A
 * promise per row made a full load superlinear: 2.2 million rows did not come back within 17 minutes.
 */
export async function decodeRecords(rows, hooks, storeName) {
  const records = new Array(rows.length);
  const tokens = [];
  rows.forEach(({ key, value: json }, i) => {
    const value = JSON.parse(json);
    records[i] = { key, value };
    if (holdsToken(key, value)) {
      tokens.push(unprotectToken(key, value, hooks, storeName).then((plain) => { records[i].value = plain; }));
    }
  });
  await Promise.all(tokens);
  return records;
}

/**
 * Stored rows as `Store.load({ json: true })` gives them: `{ key, json }` (the value's JSON text; a store selects them
 * in that shape, so no row is copied), but account records parsed, their token unprotected (`{ key, value }`). The
 * rows array is returned, changed in place.
 */
export async function decodeJsonRecords(rows, hooks, storeName) {
  const accounts = [];
  rows.forEach((row, i) => { if (row.key.startsWith(ACCOUNT_PREFIX)) accounts.push(i); });
  const decoded = await decodeRecords(accounts.map((i) => ({ key: rows[i].key, value: rows[i].json })), hooks, storeName);
  accounts.forEach((row, n) => { rows[row] = decoded[n]; });
  return rows;
}

/** Stored rows (`{ key, value }`, the value as JSON text) as `load(options)` gives them: see the two above. */
export function decodeStored(rows, hooks, storeName, { json }) {
  return json ? decodeJsonRecords(rows.map(({ key, value }) => ({ key, json: value })), hooks, storeName) : decodeRecords(rows, hooks, storeName);
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
