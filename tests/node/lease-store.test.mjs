// The LeaseStore contract (tests/stores/lease-contract.mjs) on MemoryStore (fake clock) and on PostgresStore (the
// database clock, real time; each case in fresh tables) against the server scripts/test.sh starts (VPP_PG_URL).
// The PostgreSQL cases skip only when VPP_PG_URL and CI are both unset; under CI a missing VPP_PG_URL fails.
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { MemoryStore } from '../../host-shim/memory-store.js';
import { PostgresStore } from '../../host-shim/node/index.js';
import { runLeaseContract } from '../stores/lease-contract.mjs';
import { dropStoreTables, pgSkip, requirePgUrl } from './postgres-support.mjs';

runLeaseContract('memory', () => {
  const clock = { t: 1_000_000 };
  const store = new MemoryStore({ now: () => clock.t });
  return {
    ttlMs: 1000,
    open: () => store,
    advance: (ms) => { clock.t += ms; },
    close: () => {},
    cleanup: () => {},
  };
}, { test });

let tables = 0;
runLeaseContract('PostgreSQL', () => {
  const url = requirePgUrl();
  const table = `vpp_lease_${process.pid}_${(tables += 1)}`;
  return {
    // Real time on the database clock: long enough that statement latency never decides a case.
    ttlMs: 400,
    open: () => PostgresStore.connect({ connectionString: url, table }),
    advance: (ms) => sleep(ms),
    close: (store) => store.close(),
    cleanup: () => dropStoreTables(table),
  };
}, { test, skip: pgSkip });
