// MemoryStore: the in-memory Store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryStore } from '../../host-shim/memory-store.js';

test('put and delete ops apply in order and load returns the surviving records', () => {
  const store = new MemoryStore();
  store.apply([
    { op: 'put', key: 'account/a1', value: { name: 'A' } },
    { op: 'put', key: 'account/a2', value: { name: 'B' } },
  ]);
  store.apply([
    { op: 'delete', key: 'account/a1' },
    { op: 'put', key: 'account/a2', value: { name: 'B2' } },
    { op: 'put', key: 'cursor/a2', value: 17 },
    { op: 'delete', key: 'cursor/a2' },
    { op: 'put', key: 'cursor/a2', value: 18 },
  ]);
  assert.deepEqual(store.load(), [
    { key: 'account/a2', value: { name: 'B2' } },
    { key: 'cursor/a2', value: 18 },
  ]);
});

test('stored values are copies: later changes by the caller or by a reader do not leak in', () => {
  const store = new MemoryStore();
  const value = { ids: [1, 2] };
  store.apply([{ op: 'put', key: 'k', value }]);
  value.ids.push(3);
  store.load()[0].value.ids.push(4);
  assert.deepEqual(store.load(), [{ key: 'k', value: { ids: [1, 2] } }]);
});

test('a malformed op rejects the whole batch and changes nothing', () => {
  const store = new MemoryStore();
  store.apply([{ op: 'put', key: 'keep', value: 1 }]);
  for (const bad of [{ op: 'upsert', key: 'x', value: 1 }, { op: 'put', value: 1 }, null]) {
    assert.throws(() => store.apply([{ op: 'delete', key: 'keep' }, bad]), TypeError);
  }
  assert.throws(() => store.apply('put keep'), TypeError);
  assert.deepEqual(store.load(), [{ key: 'keep', value: 1 }]);
});
