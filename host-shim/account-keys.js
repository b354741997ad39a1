// Which account a stored record belongs to (browser and Node alike: no `node:` imports). Leasing stores fence
// writes by it: an instance may write an account's records only while it holds that account's lease.
//
// The engine's key scheme (src/persist.rs): `account/<id>` (raw id); `<prefix>/<enc(id)>/…` for the prefixes
// below (`scope/<enc(id)>/<enc(policy)>/<enc(target)>` among them), where enc is application/x-www-form-urlencoded
// encoding; `policy/<id>` names its account in the value's `accountId`; `device/…`, `user/…` and `settings` belong to no account. Keep ACCOUNT_SCOPED_PREFIXES in step
// with the engine's.

import { ACCOUNT_PREFIX } from './protect.js';

export const POLICY_PREFIX = 'policy/';
const ACCOUNT_SCOPED_PREFIXES = ['scope/', 'prov/', 'hold/', 'await/', 'op/', 'asg/', 'asset/', 'vppuser/', 'userhold/'];

/** One key component back from application/x-www-form-urlencoded ('+' is a space); malformed text as it is. */
function decodeComponent(text) {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return text;
  }
}

/** The id of the account an `account/<id>` key names, or null for any other key. */
export function accountIdOfKey(key) {
  return key.startsWith(ACCOUNT_PREFIX) ? key.slice(ACCOUNT_PREFIX.length) : null;
}

/**
 * The account a record belongs to: its id, or null for a record of no account. A policy record names its
 * account in its value: pass the value (for a delete, the value stored under the key; none stored → null).
 */
export function accountOfRecord(key, value) {
  const id = accountIdOfKey(key);
  if (id !== null) return id;
  if (key.startsWith(POLICY_PREFIX)) return typeof value?.accountId === 'string' ? value.accountId : null;
  const prefix = ACCOUNT_SCOPED_PREFIXES.find((p) => key.startsWith(p));
  if (prefix === undefined) return null;
  const rest = key.slice(prefix.length);
  const end = rest.indexOf('/');
  return decodeComponent(end === -1 ? rest : rest.slice(0, end));
}

/** Keys of policy records that `ops` delete: their account is in the stored value, which the caller looks up. */
export function policyDeletes(ops) {
  return ops.filter((op) => op.op === 'delete' && op.key.startsWith(POLICY_PREFIX)).map((op) => op.key);
}

/**
 * The account of each op of one (validated) persist output, in op order: an id or null (no account).
 * `storedPolicies` maps the keys of `policyDeletes(ops)` to their stored values (absent: nothing stored).
 */
export function accountsOfOps(ops, storedPolicies) {
  return ops.map((op) => accountOfRecord(op.key, op.op === 'put' ? op.value : storedPolicies.get(op.key)));
}
