// (8) One input on an engine holding many accounts, through the wasm package: the same steps as benches/engine/fleet.rs
// (keep the two in step). Each account is a location of DEVICES_PER_ACCOUNT devices holding one app, with one device
// policy covering them.
import { performance } from 'node:perf_hooks';
import { ACCOUNT, Host, accountPolicy, buildPages, policyId, range, token } from './world.mjs';

export const DEVICES_PER_ACCOUNT = 100;
const SAMPLES = 200;

export const accountId = (a) => `school-${String(a).padStart(5, '0')}`;
/** Device `d` of account `a`: serial numbers are unique across the fleet. */
export const fleetSerial = (a, d) => `F${String(a).padStart(5, '0')}D${String(d).padStart(5, '0')}`;

const location = (a) => ({
  apps: 1, spare: DEVICES_PER_ACCOUNT, assignments: range(DEVICES_PER_ACCOUNT).map((d) => [0, fleetSerial(a, d)]), users: 0, pageSize: 1_000,
});

/** Median and p99 (nearest rank) in microseconds. */
function micros(samples) {
  const sorted = samples.map((s) => s * 1e3).sort((a, b) => a - b);
  const rank = (q) => sorted[Math.min(sorted.length, Math.max(1, Math.ceil(q * sorted.length))) - 1];
  return { median: rank(0.5), p99: rank(0.99), min: sorted[0], samples: sorted.length };
}

/** Per kind of input, one input handled and drained on an engine of `accounts` synced accounts; memory per idle account. */
export function fleetInputs(Engine, linearMemory, accounts) {
  const host = new Host(Engine, buildPages(location(0)));
  for (let a = 1; a < accounts; a++) host.apple.locations.set(accountId(a), buildPages(location(a)));
  const before = linearMemory();
  for (let a = 1; a < accounts; a++) {
    host.input({ type: 'addAccount', accountId: accountId(a), name: `School ${a}`, token: token(`fleet-secret-${a}`) });
  }
  host.run(Infinity, (h) => h.syncsCompleted >= accounts);
  const synced = linearMemory();
  const ids = range(accounts).map((a) => (a === 0 ? ACCOUNT : accountId(a)));
  ids.forEach((id, a) => host.input(accountPolicy(id, 0, 'device', range(DEVICES_PER_ACCOUNT).map((d) => fleetSerial(a, d)))));
  host.run(0, () => true);
  const one = (input) => {
    const start = performance.now();
    host.input(input);
    host.drain();
    const ms = performance.now() - start;
    host.run(0, () => true);
    return ms;
  };
  const timeouts = range(SAMPLES).map(() => one({ type: 'timeout' }));
  const untargeted = range(SAMPLES).map((i) => one({ type: 'deviceEnrolled', serialNumber: `NOPOLICY${String(i).padStart(5, '0')}` }));
  const targeted = range(SAMPLES).map((i) => {
    const a = (i * 7919) % accounts;
    return one({ type: 'deviceEnrolled', serialNumber: fleetSerial(a, i % DEVICES_PER_ACCOUNT), enrollmentId: `re-enrolled-${i}` });
  });
  for (let i = 0; i < Math.min(SAMPLES, accounts); i++) {
    const a = (i * 7919) % accounts;
    const id = ids[a];
    host.input({ type: 'updatePolicyTargets', policyId: a === 0 ? policyId(0) : `${id}-app-0`, add: [fleetSerial(a, DEVICES_PER_ACCOUNT + i)], remove: [] });
  }
  const polls = [];
  // The same events are polled again while they stay PENDING: with few accounts, an hour gives enough samples.
  const end = host.now + 60 * 60_000;
  while (polls.length < SAMPLES && host.now < end) {
    const at = host.drain();
    const pending = host.pending;
    host.pending = [];
    if (pending.length === 0) {
      host.now = Math.max(host.now, at);
      host.input({ type: 'timeout' });
      continue;
    }
    for (const request of pending) {
      if (request.purpose !== 'eventStatus') {
        host.answer(request);
        continue;
      }
      const start = performance.now();
      host.answer(request);
      host.drain();
      polls.push(performance.now() - start);
    }
  }
  host.engine.free();
  return {
    accounts,
    // Accounts added after the first (none with one account).
    bytesPerIdleAccount: accounts > 1 ? (synced - before) / (accounts - 1) : null,
    timeout: micros(timeouts),
    pollAnswer: micros(polls),
    deviceEnrolledTargeted: micros(targeted),
    deviceEnrolledUntargeted: micros(untargeted),
  };
}
