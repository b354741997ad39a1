// Several backends on one PostgreSQL: three real backend processes (tests/node/fixtures/backend.mjs with a
// PostgresStore and a LeaseKeeper) share ten accounts of the Apps and Books simulator. Every request carries the
// sending instance in `x-instance` and the account's sToken, so the simulator's log shows who drove which account
// when: never two instances at once, all ten accounts reach their desired state, and after one instance is
// SIGKILLed the others take its accounts over within the lease time and finish the work given to them. The first
// instance starts alone and takes every account; the others join while it works and get their share handed over.
// Needs PostgreSQL (VPP_PG_URL, started by scripts/test.sh); skipped without it locally, failed under CI.
// Real time, about half a minute: lease ttl 3 s (VPP_LEASE_TTL_MS to change it), renewed every ttl / 3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Engine } from '../../pkg/vpp_license_engine.node.mjs';
import { PostgresStore } from '../../host-shim/node/index.js';
import { startSimulator } from '../../host-shim/simulator/index.js';
import { Backend, driverRuns, overlappingRuns, startRelay, waitFor } from './fixtures/backends.mjs';
import { dropStoreTables, pgSkip, requirePgUrl } from './postgres-support.mjs';


const TTL_MS = Number(process.env.VPP_LEASE_TTL_MS ?? 3000);
const LEASE = { ttlMs: TTL_MS, marginMs: Math.round(TTL_MS / 6), renewEveryMs: Math.floor(TTL_MS / 3) };
const INSTANCES = ['i1', 'i2', 'i3'];
const ACCOUNTS = 10;
const MDM = { id: 'multi-instance-mdm', name: 'Multi-instance MDM', metadata: 'test' };

test('the exclusivity check finds two instances driving one account at once, and accepts hand-overs', () => {
  const request = (token, instance, at, answeredAt) => ({ token, headers: { 'x-instance': instance }, at, answeredAt });
  const handOvers = driverRuns([
    request('t1', 'a', 0, 5), request('t1', 'a', 6, 9), request('t2', 'b', 7, 8),
    request('t1', 'b', 10, 12), // a's last answer came at 9
    request('t1', 'c', 20, null), // b killed at 15: its requests in flight ended then
  ], new Map([['b', 15]]));
  assert.deepEqual(overlappingRuns(handOvers), []);
  assert.deepEqual(handOvers.get('t1').map((r) => [r.instance, r.from, r.to, r.requests]), [['a', 0, 9, 2], ['b', 10, 12, 1], ['c', 20, Infinity, 1]]);
  const interleaved = driverRuns([request('t1', 'a', 0, 4), request('t1', 'b', 3, 6), request('t1', 'a', 7, 8)]);
  assert.deepEqual(overlappingRuns(interleaved), ['t1: b from 3 while a until 4']);
  const unanswered = driverRuns([request('t1', 'a', 0, undefined), request('t1', 'b', 100, 101)]);
  assert.deepEqual(overlappingRuns(unanswered), ['t1: b from 100 while a until Infinity'], 'an instance never killed whose request was never answered still drives');
});

test('three backends on one PostgreSQL: one driver per account at a time, all accounts reach their desired state, a killed instance\'s accounts are taken over', { skip: pgSkip, timeout: 180_000 }, async (t) => {
  const url = requirePgUrl();
  const table = `vpp_multi_${process.pid}`;
  const store = await PostgresStore.connect({ connectionString: url, table });
  t.after(async () => {
    await store.close();
    await dropStoreTables(table);
  });

  const sim = await startSimulator({ port: 0, seed: 21, pageSize: 5, eventDelayMs: 40, notificationRetryDelayMs: 300, logHeaders: ['x-instance'] });
  t.after(() => sim.close());
  const accounts = Array.from({ length: ACCOUNTS }, (_, i) => {
    const org = sim.addOrganization({ orgName: `MULTI${i}`, locationName: `L${i}`, apps: 3, freeApps: 0, books: 0, devices: 30, users: 0, assignedFraction: 0.3 });
    const app = org.assets.find((a) => a.deviceAssignable && a.revocable);
    assert.ok(app, `organization ${i} has a device-assignable app`);
    sim.mutate(org.token, (o) => o.adjustAssetCount(app.adamId, app.pricingParam, 30));
    const holders = new Set(org.assignments.filter((a) => a.adamId === app.adamId).map((a) => a.serialNumber));
    const free = org.serialNumbers.filter((s) => !holders.has(s));
    assert.ok(free.length >= 10);
    return { accountId: `account-${i}`, org, app, free, targets: free.slice(0, 6) };
  });
  const byToken = new Map(accounts.map((a) => [a.org.token, a]));
  const policy = (a) => ({ type: 'setPolicy', policy: {
    policyId: `policy-${a.accountId}`, name: `App for ${a.accountId}`, accountId: a.accountId,
    adamId: a.app.adamId, pricingParam: a.app.pricingParam, licenseType: 'device', targets: a.targets,
  } });

  const authToken = randomBytes(32).toString('hex');
  const backends = new Map();
  /** Notifications go to the instance that holds the account's lease now (503 when none: Apple retries). */
  const relay = await startRelay(async (accountId) => {
    const holder = (await store.leaseStates()).find((s) => s.accountId === accountId)?.holder;
    const backend = backends.get(holder);
    return backend?.alive ? backend.notificationUrl : null;
  });
  t.after(() => relay.close());
  const engineConfig = { mdmInfo: MDM, serviceConfigUrl: sim.serviceConfigUrl, seed: 9, notifications: { url: relay.url, authToken }, unconfirmedSettleMs: 2000 };

  // Seed the store once, as an administrator's first session would: the accounts, the device facts and one policy
  // per account, written by an engine that never calls Apple. The instances then adopt them through their leases.
  const seeder = new Engine(engineConfig, Date.now());
  for (const a of accounts) {
    seeder.handleInput({ type: 'addAccount', accountId: a.accountId, name: a.org.orgName, token: a.org.token }, Date.now());
    for (const serialNumber of a.free) seeder.handleInput({ type: 'deviceEnrolled', serialNumber }, Date.now());
    seeder.handleInput(policy(a), Date.now());
  }
  for (let out = seeder.pollOutput(Date.now()); out.type !== 'timeout'; out = seeder.pollOutput(Date.now())) {
    if (out.type === 'persist') await store.apply(out.ops);
  }
  seeder.free();
  assert.equal((await store.leaseStates()).length, ACCOUNTS);

  // The first instance starts alone and takes every account; the two others join while it is busy claiming and
  // syncing them, so that it hands accounts over to them mid-work.
  const start = (name) => {
    const backend = new Backend(name, { instance: name, store: { kind: 'postgres', url, table }, lease: LEASE, engine: engineConfig });
    backends.set(name, backend);
    return backend.ready;
  };
  t.after(() => Promise.all([...backends.values()].map((b) => b.kill())));
  await start(INSTANCES[0]);
  await waitFor(`${INSTANCES[0]} holds every account`, async () => (await store.leaseStates()).every((s) => s.holder === INSTANCES[0]),
    { timeoutMs: 10 * TTL_MS });
  await Promise.all(INSTANCES.slice(1).map(start));

  const missing = () => accounts.flatMap((a) => a.targets.filter((s) => !a.org.hasAssignment({ adamId: a.app.adamId, pricingParam: a.app.pricingParam, serialNumber: s }))
    .map((s) => `${a.accountId}/${s}`));
  const describe = async () => `missing: ${missing().slice(0, 20)}; leases: ${JSON.stringify(await store.leaseStates())}; ` +
    `errors: ${[...backends.values()].map((b) => `${b.name}: ${b.errors.join(' | ')} ${b.stderr}`)}`;
  await waitFor('every account in its desired state', () => missing().length === 0, { timeoutMs: 60_000, describe });

  // Steady state: the first instance handed accounts over until every instance has its share (ceil(10 / 3) = 4 at
  // most, so at least 2 each), and every account is held.
  await waitFor('the accounts shared out', async () => {
    const states = await store.leaseStates();
    return states.every((s) => s.holder !== null) && INSTANCES.every((n) => states.filter((s) => s.holder === n).length >= 2);
  }, { timeoutMs: 10 * TTL_MS, describe });
  const handedOver = backends.get(INSTANCES[0]).leaseChanges.filter((c) => c.type === 'released').length;
  assert.ok(handedOver >= 1, `${INSTANCES[0]} handed accounts over`);
  const leases = await store.leaseStates();
  const count = (name) => leases.filter((s) => s.holder === name).length;
  t.diagnostic(`accounts per instance before the kill: ${INSTANCES.map((n) => `${n} ${count(n)}`).join(', ')}; ${INSTANCES[0]} handed ${handedOver} over`);
  for (const name of INSTANCES) assert.ok(count(name) >= 1, `${name} drives some accounts: ${JSON.stringify(leases)}`);

  // SIGKILL the instance with the most accounts, then give every account more work, routed to its lease holder.
  const victim = INSTANCES.reduce((a, b) => (count(b) > count(a) ? b : a));
  const orphans = leases.filter((s) => s.holder === victim).map((s) => s.accountId);
  const killedAt = Date.now();
  await backends.get(victim).kill();
  for (const a of accounts) a.targets = a.free.slice(0, 10);
  await Promise.all(accounts.map((a) => waitFor(`${a.accountId}: policy change taken by its holder`, async () => {
    const holder = (await store.leaseStates()).find((s) => s.accountId === a.accountId)?.holder;
    const backend = backends.get(holder);
    if (!backend?.alive) return false;
    try {
      await backend.command('input', { input: policy(a) });
      return true;
    } catch (error) {
      if (error.code === 'UNKNOWN_ACCOUNT') return false; // the lease moved on between the look-up and the command
      throw error;
    }
  }, { timeoutMs: 30_000, everyMs: 100, describe })));
  await waitFor('every account in its new desired state', () => missing().length === 0, { timeoutMs: 60_000, describe });

  // From the simulator's log: who drove each account, and when.
  const log = sim.requestLog.filter((e) => e.token !== null);
  assert.deepEqual(log.filter((e) => !INSTANCES.includes(e.headers['x-instance'])).map((e) => `${e.method} ${e.path}`), [],
    'every request of an account names its instance');
  const runs = driverRuns(log, new Map([[victim, killedAt]]));
  const name = (token) => byToken.get(token).accountId;
  assert.deepEqual(overlappingRuns(runs, name), [], 'two instances drove one account at the same time');
  const takeovers = orphans.map((accountId) => {
    const token = accounts.find((a) => a.accountId === accountId).org.token;
    const first = log.find((e) => e.token === token && e.at > killedAt && e.headers['x-instance'] !== victim);
    return { accountId, by: first?.headers['x-instance'], after: first ? first.at - killedAt : null };
  });
  t.diagnostic(`${victim} killed with ${orphans.length} accounts; taken over after ${takeovers.map((o) => `${o.after} ms by ${o.by}`).join(', ')} ` +
    `(ttl ${TTL_MS} ms, renewal every ${LEASE.renewEveryMs} ms); runs per account: ${[...runs].map(([tk, r]) => `${name(tk)} ${r.map((x) => x.instance).join('>')}`).join('; ')}`);
  for (const o of takeovers) {
    assert.ok(o.by !== undefined, `${o.accountId} was taken over`);
    // The lease logic bounds it by ttl + one renewal round (measured: about ttl + 1 s); another ttl of slack is for
    // adopting the account and its first request on a busy machine.
    assert.ok(o.after <= 2 * TTL_MS + LEASE.renewEveryMs, `${o.accountId} taken over within the lease time: ${o.after} ms`);
  }

  // No (asset, device) pair associated twice among the associate requests Apple accepted.
  const pairs = new Map();
  for (const entry of log.filter((e) => e.path === '/mdm/v2/assets/associate' && e.eventId !== undefined)) {
    const { request } = sim.event(entry.eventId);
    for (const asset of request.assets) {
      for (const s of request.serialNumbers) {
        const key = `${name(entry.token)}/${asset.adamId}/${s}`;
        pairs.set(key, [...(pairs.get(key) ?? []), entry.headers['x-instance']]);
      }
    }
  }
  assert.deepEqual([...pairs].filter(([, by]) => by.length > 1), [], 'pairs associated twice');

  for (const name of INSTANCES.filter((n) => n !== victim)) {
    const backend = backends.get(name);
    assert.deepEqual(backend.errors, [], `${name} reported no error`);
    await backend.command('stop');
  }
});
