// The host shim's view of the engine's record keys (host-shim/record-accounts.js, lease-fence.js): the account of a
// record comes from the engine itself, and the one key form the Store contracts name (`account/<id>`) is the engine's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { accountKeyRanges as engineKeyRanges } from '../../pkg/vpp_license_engine.node.mjs';
import { accountsOfOps, fenceOps, touchedAccounts } from '../../host-shim/lease-fence.js';
import { ACCOUNT_PREFIX, accountIdOfKey, accountKeyRanges, accountOfRecord, inKeyRanges, prefixEnd } from '../../host-shim/record-accounts.js';

test('the account record key the Store contracts name is the engine\'s', () => {
  for (const id of ['a1', 'a/1', 'a b', 'ä+%']) {
    assert.ok(engineKeyRanges(id).keys.includes(`${ACCOUNT_PREFIX}${id}`));
    assert.equal(accountIdOfKey(`${ACCOUNT_PREFIX}${id}`), id);
    assert.equal(accountOfRecord(`${ACCOUNT_PREFIX}${id}`), id);
  }
  assert.equal(accountIdOfKey('prov/a1/d/S1'), null, 'a record of the account, not its own record');
  assert.equal(accountIdOfKey('accounts/x'), null);
});

test('the account of each op of a persist output: from the key, from a put policy\'s value, from the stored value of a deleted policy', () => {
  const ops = [
    { op: 'put', key: 'account/a 1', value: { accountId: 'a 1' } },
    { op: 'put', key: 'prov/a+1/d/S1', value: {} },
    { op: 'delete', key: 'op/b%2F2/7' },
    { op: 'put', key: 'policy/p1', value: { policyId: 'p1', accountId: 'c' } },
    { op: 'delete', key: 'policy/p2' },
    { op: 'delete', key: 'policy/p3' },
    { op: 'delete', key: 'policy/p2' },
    { op: 'put', key: 'device/S1', value: {} },
    { op: 'delete', key: 'settings' },
  ];
  const { accounts, lookUp, complete } = accountsOfOps(ops);
  assert.deepEqual(accounts, ['a 1', 'a 1', 'b/2', 'c', undefined, undefined, undefined, null, null]);
  assert.deepEqual(lookUp, ['policy/p2', 'policy/p3'], 'each key once');
  const all = complete(new Map([['policy/p2', { accountId: 'd' }]]));
  assert.deepEqual(all, ['a 1', 'a 1', 'b/2', 'c', 'd', null, 'd', null, null], 'p3: nothing stored, no account');
  assert.deepEqual(touchedAccounts(all), ['a 1', 'b/2', 'c', 'd']);
  const { keep, skipped } = fenceOps(all, new Set(['a 1', 'd']));
  assert.deepEqual(keep, [true, true, false, false, true, true, true, true, true]);
  assert.deepEqual(skipped, ['b/2', 'c']);
});

test('a prefix\'s key range ends at the prefix with its last character incremented; inKeyRanges follows the engine\'s ranges', () => {
  assert.equal(prefixEnd('prov/a+b/'), 'prov/a+b0');
  assert.equal(prefixEnd('device/'), 'device0');
  assert.throws(() => prefixEnd('x\u00ff'), RangeError);
  const ranges = accountKeyRanges('a b');
  const has = (key, value) => inKeyRanges(ranges, 'a b', key, () => value);
  assert.ok(has('account/a b') && has('settings') && has('scope/a+b/p/S1') && has('device/S1') && has('user/u1'));
  assert.ok(has('policy/p', { accountId: 'a b' }) && !has('policy/p', { accountId: 'a' }) && !has('policy/p', null));
  assert.ok(!has('account/a') && !has('prov/a/1/STDQ/d/S1') && !has('prov/a+b0') && !has('userhold/a/u1'));
  const own = accountKeyRanges('a b', false);
  const ownHas = (key, value) => inKeyRanges(own, 'a b', key, () => value);
  assert.ok(ownHas('account/a b') && ownHas('scope/a+b/p/S1') && ownHas('policy/p', { accountId: 'a b' }));
  assert.ok(!ownHas('settings') && !ownHas('device/S1') && !ownHas('user/u1'), 'shared false: the records of no account left out');
});
