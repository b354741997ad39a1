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

/**
 * The accounts measured: `accounts` locations, synced, each with one device policy covering its devices, in one engine
 * (`oneEngineEach` false) or in one engine each (the control: an input finds its account cold in the caches, with no
 * other account in its engine).
 */
class Fleet {
  constructor(hosts, oneEngineEach, accounts) {
    this.hosts = hosts;
    this.oneEngineEach = oneEngineEach;
    this.accounts = accounts;
  }

  /** The engine and the id of account `a`. */
  of(a) {
    if (this.oneEngineEach) return [this.hosts[a], ACCOUNT];
    return [this.hosts[0], a === 0 ? ACCOUNT : accountId(a)];
  }

  /** Adds account `a`'s device policy (covering its devices) and runs the engine until idle. */
  addPolicy(a) {
    const [host, id] = this.of(a);
    host.input(accountPolicy(id, 0, 'device', range(DEVICES_PER_ACCOUNT).map((d) => fleetSerial(a, d))));
    host.run(0, () => true);
  }

  free() {
    for (const host of this.hosts) host.engine.free();
  }
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
  const fleet = new Fleet([host], false, accounts);
  range(accounts).forEach((a) => fleet.addPolicy(a));
  const report = measure(fleet);
  fleet.free();
  // Accounts added after the first (none with one account).
  return { accounts, bytesPerIdleAccount: accounts > 1 ? (synced - before) / (accounts - 1) : null, ...report };
}

/** The same inputs sent to `engines` engines of one account each (the control), spread as over the accounts of fleetInputs. */
export function fleetInputsAcrossEngines(Engine, engines) {
  const hosts = range(engines).map((a) => {
    const host = new Host(Engine, buildPages(location(a)));
    host.sync();
    return host;
  });
  const fleet = new Fleet(hosts, true, engines);
  range(engines).forEach((a) => fleet.addPolicy(a));
  const report = measure(fleet);
  fleet.free();
  return { engines, ...report };
}

/** The account the `i`-th sample goes to: spread over the fleet. */
const spread = (i, accounts) => (i * 7919) % accounts;

function measure(fleet) {
  const { accounts } = fleet;
  const one = (host, input) => {
    const start = performance.now();
    host.input(input);
    host.drain();
    const ms = performance.now() - start;
    host.run(0, () => true);
    return ms;
  };
  const timeouts = range(SAMPLES).map((i) => one(fleet.of(spread(i, accounts))[0], { type: 'timeout' }));
  const untargeted = range(SAMPLES)
    .map((i) => one(fleet.of(spread(i, accounts))[0], { type: 'deviceEnrolled', serialNumber: `NOPOLICY${String(i).padStart(5, '0')}` }));
  // A re-enrollment (a new enrollment id) of a device an account's policy covers: its license is reported ready again.
  const targeted = range(SAMPLES).map((i) => {
    const a = spread(i, accounts);
    return one(fleet.of(a)[0], { type: 'deviceEnrolled', serialNumber: fleetSerial(a, i % DEVICES_PER_ACCOUNT), enrollmentId: `re-enrolled-${i}` });
  });
  // /status answers: new devices enter some accounts' policies; their associations stay PENDING at the bench Apple.
  const polled = range(Math.min(SAMPLES, accounts)).map((i) => spread(i, accounts));
  polled.forEach((a, i) => {
    const [host, id] = fleet.of(a);
    host.input({ type: 'updatePolicyTargets', policyId: id === ACCOUNT ? policyId(0) : `${id}-app-0`, add: [fleetSerial(a, DEVICES_PER_ACCOUNT + i)], remove: [] });
  });
  const polls = [];
  if (fleet.oneEngineEach) {
    // The engines in turn, one poll each, until there are enough samples.
    for (let turn = 0; polls.length < SAMPLES; turn++) pollAnswers(fleet.of(polled[turn % polled.length])[0], 1, polls);
  } else {
    pollAnswers(fleet.hosts[0], SAMPLES, polls);
  }
  return { timeout: micros(timeouts), pollAnswer: micros(polls), deviceEnrolledTargeted: micros(targeted), deviceEnrolledUntargeted: micros(untargeted) };
}

/**
 * Times `wanted` more answers to the engine's `/status` polls (handled and drained) into `polls`; the other requests are
 * answered untimed. The same events are polled again while they stay PENDING: with few accounts, an hour of simulated
 * time gives enough samples.
 */
function pollAnswers(host, wanted, polls) {
  const goal = polls.length + wanted;
  const end = host.now + 60 * 60_000;
  while (polls.length < goal && host.now < end) {
    const at = host.drain();
    const pending = host.pending;
    host.pending = [];
    if (pending.length === 0) {
      host.now = Math.max(host.now, at);
      host.input({ type: 'timeout' });
      continue;
    }
    for (const request of pending) {
      if (request.purpose !== 'eventStatus' || polls.length >= goal) {
        host.answer(request);
        continue;
      }
      // Apple's answer is made before the timing: the row times the engine, not the bench Apple.
      const [status, body] = host.apple.answer(request);
      const answer = { type: 'response', id: request.id, status, headers: {}, body };
      const start = performance.now();
      host.input(answer);
      host.drain();
      polls.push(performance.now() - start);
    }
  }
}
