// Fencing writes by lease, shared by every leasing adapter (see LeaseStore.applyFenced in store.d.ts; browser and
// Node alike): the account of each op of one persist output (the engine's mapping, record-accounts.js), and the split
// of the output into the ops an instance may write and the accounts it may not.
import { accountOfRecord } from './record-accounts.js';

/**
 * The account of each op of one (validated) persist output, in op order: an id, null (a record of no account), or
 * undefined for a delete whose account only the stored value names (a policy record). `lookUp` lists those keys:
 * pass their stored values to `complete`.
 * @returns {{ accounts: (string | null | undefined)[], lookUp: string[],
 *   complete(stored: Map<string, unknown>): (string | null)[] }}
 */
export function accountsOfOps(ops) {
  const accounts = ops.map((op) => accountOfRecord(op.key, op.op === 'put' ? op.value : undefined));
  const lookUp = [...new Set(ops.filter((_, index) => accounts[index] === undefined).map((op) => op.key))];
  return {
    accounts,
    lookUp,
    /** `stored`: the keys of `lookUp` → their stored values (a key absent: nothing stored, no account). */
    complete: (stored) => accounts.map((account, index) =>
      (account !== undefined ? account : accountOfRecord(ops[index].key, stored.get(ops[index].key) ?? null))),
  };
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
