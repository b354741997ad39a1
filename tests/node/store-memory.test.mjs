// The Store contract (tests/stores/contract.mjs) on MemoryStore. Nothing is at rest, so the reopen and token
// hook cases do not apply.
import { test } from 'node:test';
import { MemoryStore } from '../../host-shim/memory-store.js';
import { runStoreContract } from '../stores/contract.mjs';

function makePlace() {
  const store = new MemoryStore();
  return {
    durable: false,
    open: (hooks) => {
      if (hooks) throw new Error('MemoryStore takes no token hooks');
      return store;
    },
    close: () => {},
    cleanup: () => {},
  };
}

runStoreContract('memory', makePlace, { test, capabilities: { durable: false } });
