// PostgreSQL going away under running backends: connections ended by the server (pg_terminate_backend, as a
// failover or an administrator does) and server restarts, while three backend processes (tests/node/fixtures/
// backend.mjs with a PostgresStore and a LeaseKeeper, as in multi-instance.test.mjs) claim, sync and assign licenses
// for six accounts of the Apps and Books simulator. Checked: every process survives (no unhandled 'error' event),
// failed writes are retried until the store has every record each engine wrote for the accounts it drives, no
// request leaves once the leases lapsed during a long outage, the work resumes after it, and no account is ever driven
// by two instances at once (the simulator's request log, by `x-instance`).
// The file starts a PostgreSQL server of its own (scripts/postgres.sh start / restart / stop) so that the restarts
// disturb no other test; it runs when VPP_PG_URL is set (scripts/test.sh), is skipped without it locally and fails
// under CI. Real time, about a minute: lease ttl 3 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Engine } from '../../pkg/vpp_license_engine.node.mjs';
import { PostgresStore } from '../../host-shim/node/index.js';
import { startSimulator } from '../../host-shim/simulator/index.js';
import { Backend, driverRuns, overlappingRuns, startRelay, waitFor } from './fixtures/backends.mjs';
import { pgSkip, requirePgUrl } from './postgres-support.mjs';

const pg = createRequire(import.meta.url)('pg');
const POSTGRES_SH = fileURLToPath(new URL('../../scripts/postgres.sh', import.meta.url));
const TTL_MS = 3000;
const LEASE = { ttlMs: TTL_MS, marginMs: 500, renewEveryMs: 1000 };
const INSTANCES = ['f1', 'f2', 'f3'];
const ACCOUNTS = 6;
const MDM = { id: 'failover-mdm', name: 'Failover MDM', metadata: 'test' };
/** What a store call may fail with while the server ends connections or restarts; anything else is a finding. */
const CONNECTION_ERROR = /terminat|ECONNREFUSED|ECONNRESET|EPIPE|shutting down|starting up|not queryable|timeout|57P0[123]|08\d\d\d/i;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A throwaway PostgreSQL server of this file: { url (role vpp), adminUrl (superuser), restart(seconds), stop() }. */
async function privateServer() {
  const run = (...args) => promisify(execFile)('bash', [POSTGRES_SH, ...args], { timeout: 60_000 });
  const { stdout } = await run('start');
  const env = Object.fromEntries(stdout.trim().split('\n').map((line) => line.split('=')));
  const url = env.VPP_PG_URL;
  const dir = env.VPP_PG_DIR;
  return {
    url,
    adminUrl: url.replace('//vpp@', '//postgres@'),
    restart: (seconds) => run('restart', dir, String(seconds)),
    stop: () => run('stop', dir),
  };
}

/** Ends every client connection but its own; resolves how many it ended. */
async function terminateAll(adminUrl) {
  const client = new pg.Client({ connectionString: adminUrl });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rows } = await client.query(
      "SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'",
    );
    return rows[0].n;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Whether a new connection to `url` is refused. */
async function isDown(url) {
  const client = new pg.Client({ connectionString: url });
  client.on('error', () => {});
  try {
    await client.connect();
    await client.end();
    return false;
  } catch {
    return true;
  }
}

/** `call()` again (every 100 ms, for up to `timeoutMs`) while it fails with a connection error. */
async function retrying(call, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!CONNECTION_ERROR.test(String(error?.message)) || Date.now() > deadline) throw error;
      await sleep(100);
    }
  }
}

test('PostgresStore: connections the server ends, idle or inside a transaction, fail one call and never the process', { skip: pgSkip, timeout: 120_000 }, async (t) => {
  requirePgUrl();
  const server = await privateServer();
  t.after(() => server.stop());
  const admin = new pg.Pool({ connectionString: server.adminUrl, max: 2 });
  admin.on('error', () => {});
  t.after(() => admin.end());
  // A write of key 'slow' sleeps inside its transaction, so that the connection can be ended mid-transaction.
  await admin.query(`CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN IF NEW.key = 'slow' THEN PERFORM pg_sleep(2); END IF; RETURN NEW; END $$`);
  const idleErrors = [];
  const owned = await PostgresStore.connect({ connectionString: server.url, table: 'owned', onError: (e) => idleErrors.push(e) });
  t.after(() => owned.close());
  const callersPool = new pg.Pool({ connectionString: server.url });
  const poolErrors = [];
  callersPool.on('error', (e) => poolErrors.push(e)); // as pg requires of a caller's pool
  t.after(() => callersPool.end());
  const lent = await PostgresStore.connect({ pool: callersPool, table: 'lent' });

  for (const [name, store, table] of [['owned pool', owned, 'owned'], ["caller's pool", lent, 'lent']]) {
    await admin.query(`CREATE TRIGGER slow BEFORE INSERT OR UPDATE ON "${table}" FOR EACH ROW EXECUTE FUNCTION slow_write()`);
    await store.apply([{ op: 'put', key: 'a', value: 1 }]);
    await store.acquireLeases('h', ['x'], 60_000);

    // Idle connections ended: nothing to fail; the next calls connect again.
    assert.ok(await terminateAll(server.adminUrl) >= 1, `${name}: connections ended`);
    await sleep(200);
    await store.apply([{ op: 'put', key: 'b', value: 2 }]);
    assert.deepEqual(await store.acquireLeases('h', ['x'], 60_000), ['x']);

    // Inside a transaction: that one write fails (nothing of it written); the next one goes through.
    const slow = store.apply([{ op: 'put', key: 'slow', value: 3 }, { op: 'put', key: 'c', value: 3 }]);
    await sleep(500);
    await terminateAll(server.adminUrl);
    await assert.rejects(slow, (error) => CONNECTION_ERROR.test(error.message), `${name}: the write in progress fails`);
    const fenced = store.applyFenced('h', [{ op: 'put', key: 'slow', value: 4 }]);
    await sleep(500);
    await terminateAll(server.adminUrl);
    await assert.rejects(fenced, (error) => CONNECTION_ERROR.test(error.message), `${name}: the fenced write in progress fails`);
    await store.apply([{ op: 'put', key: 'd', value: 4 }]);

    // A restart: the calls made while it is down fail, the next ones after it succeed.
    const restarted = server.restart(2);
    await waitFor('the server down', () => isDown(server.url), { timeoutMs: 10_000, everyMs: 20 });
    await assert.rejects(store.apply([{ op: 'put', key: 'e', value: 5 }]), (error) => CONNECTION_ERROR.test(error.message));
    await restarted;
    await retrying(() => store.apply([{ op: 'put', key: 'f', value: 6 }]));
    assert.deepEqual((await retrying(() => store.load())).map((r) => r.key).sort(), ['a', 'b', 'd', 'f'], `${name}: the failed writes left nothing`);

    // Under contention (more transactions than pooled connections, so each connection goes straight from one user to
    // the next) with connections ended every few milliseconds: calls fail, the process does not.
    let stop = false;
    const outcomes = { ok: 0, failed: 0 };
    const loop = async (call) => {
      while (!stop) {
        try {
          await call();
          outcomes.ok += 1;
        } catch (error) {
          assert.match(error.message, CONNECTION_ERROR);
          outcomes.failed += 1;
        }
      }
    };
    const loops = Array.from({ length: 16 }, (_, i) => loop([
      () => store.apply([{ op: 'put', key: `k${i}`, value: i }]),
      () => store.applyFenced('h', [{ op: 'put', key: `account/x${i}`, value: i }]),
      () => store.acquireLeases('h', ['x'], 60_000),
      () => store.heartbeat('h', 60_000),
    ][i % 4]));
    for (let i = 0; i < 60; i += 1) {
      await sleep(5 + Math.floor(Math.random() * 30));
      await terminateAll(server.adminUrl);
    }
    stop = true;
    await Promise.all(loops);
    assert.ok(outcomes.ok > 100 && outcomes.failed > 10, `${name}: ${JSON.stringify(outcomes)}`);
  }
  assert.ok(idleErrors.length >= 1, 'the owned pool reported the idle connections the server ended to onError');
  assert.ok(idleErrors.every((e) => CONNECTION_ERROR.test(e.message)), idleErrors.map((e) => e.message).join('; '));
  assert.ok(poolErrors.every((e) => CONNECTION_ERROR.test(e.message)), poolErrors.map((e) => e.message).join('; '));
});

test('three backends on PostgreSQL through connection kills and server restarts: processes survive, no write lost, no account driven twice, work resumes', { skip: pgSkip, timeout: 240_000 }, async (t) => {
  requirePgUrl();
  const server = await privateServer();
  t.after(() => server.stop());
  const table = 'vpp_failover';
  const store = await PostgresStore.connect({ connectionString: server.url, table });
  t.after(() => store.close());

  const sim = await startSimulator({ port: 0, seed: 33, pageSize: 5, eventDelayMs: 40, notificationRetryDelayMs: 300, logHeaders: ['x-instance'] });
  t.after(() => sim.close());
  const accounts = Array.from({ length: ACCOUNTS }, (_, i) => {
    const org = sim.addOrganization({ orgName: `FAILOVER${i}`, locationName: `L${i}`, apps: 3, freeApps: 0, books: 0, devices: 30, users: 0, assignedFraction: 0.3 });
    const app = org.assets.find((a) => a.deviceAssignable && a.revocable);
    assert.ok(app, `organization ${i} has a device-assignable app`);
    sim.mutate(org.token, (o) => o.adjustAssetCount(app.adamId, app.pricingParam, 30));
    const holders = new Set(org.assignments.filter((a) => a.adamId === app.adamId).map((a) => a.serialNumber));
    const free = org.serialNumbers.filter((s) => !holders.has(s));
    assert.ok(free.length >= 12);
    return { accountId: `account-${i}`, org, app, free, targets: free.slice(0, 4) };
  });
  const byToken = new Map(accounts.map((a) => [a.org.token, a]));
  const policy = (a) => ({ type: 'setPolicy', policy: {
    policyId: `policy-${a.accountId}`, name: `App for ${a.accountId}`, accountId: a.accountId,
    adamId: a.app.adamId, pricingParam: a.app.pricingParam, licenseType: 'device', targets: a.targets,
  } });
  const leaseStates = () => retrying(() => store.leaseStates());

  const backends = new Map();
  const relay = await startRelay(async (accountId) => {
    const holder = (await store.leaseStates()).find((s) => s.accountId === accountId)?.holder;
    const backend = backends.get(holder);
    return backend?.alive ? backend.notificationUrl : null;
  });
  t.after(() => relay.close());
  const authToken = randomBytes(32).toString('hex');
  const engineConfig = { mdmInfo: MDM, serviceConfigUrl: sim.serviceConfigUrl, seed: 5, notifications: { url: relay.url, authToken }, unconfirmedSettleMs: 2000 };

  // The store seeded as in multi-instance.test.mjs: accounts, device facts, one policy each.
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

  t.after(() => Promise.all([...backends.values()].map((b) => b.kill())));
  await Promise.all(INSTANCES.map((name) => {
    const backend = new Backend(name, { instance: name, store: { kind: 'postgres', url: server.url, table }, lease: LEASE, engine: engineConfig, shadow: true });
    backends.set(name, backend);
    return backend.ready;
  }));

  const missing = () => accounts.flatMap((a) => a.targets.filter((s) => !a.org.hasAssignment({ adamId: a.app.adamId, pricingParam: a.app.pricingParam, serialNumber: s }))
    .map((s) => `${a.accountId}/${s}`));
  const describe = async () => `missing: ${missing().slice(0, 20)}; leases: ${JSON.stringify(await leaseStates())}; ` +
    `errors: ${[...backends.values()].map((b) => `${b.name}: ${b.errors.slice(-5).join(' | ')} ${b.stderr}`)}`;
  /** Gives every account its current targets, through the instance holding its lease (again while that fails). */
  const assignTargets = () => Promise.all(accounts.map((a) => waitFor(`${a.accountId}: policy taken by its holder`, async () => {
    const holder = (await leaseStates()).find((s) => s.accountId === a.accountId)?.holder;
    const backend = backends.get(holder);
    if (!backend?.alive) return false;
    try {
      await backend.command('input', { input: policy(a) });
      return true;
    } catch (error) {
      // The lease moved between the look-up and the command, or the store is failing: the policy is sent again.
      if (error.code === 'UNKNOWN_ACCOUNT' || CONNECTION_ERROR.test(error.message)) return false;
      throw error;
    }
  }, { timeoutMs: 60_000, everyMs: 100, describe })));
  const kills = [];
  /**
   * Ends every connection to the server, 150–500 ms apart, until `count` of those ended one or more (at most 4 × count
   * tries): between their store calls idle instances may hold none, and a kill that finds none disturbs nothing.
   */
  const killConnections = async (count) => {
    let effective = 0;
    for (let tries = 0; effective < count && tries < 4 * count; tries += 1) {
      await sleep(150 + Math.floor(Math.random() * 350));
      const ended = await terminateAll(server.adminUrl);
      kills.push({ at: Date.now(), ended });
      if (ended > 0) effective += 1;
    }
  };

  // 1. While the instances share the accounts out, claim, sync and assign: connections killed again and again,
  //    then a restart with the server down for a second, then more kills.
  await killConnections(8);
  await server.restart(1);
  await killConnections(4);
  await waitFor('every account in its desired state', () => missing().length === 0, { timeoutMs: 90_000, describe });

  // 2. More work, and while it runs an outage longer than the lease ttl: every instance stops driving at its local
  //    expiry, and takes accounts again once the server is back.
  for (const a of accounts) a.targets = a.free.slice(0, 12);
  await assignTargets();
  await killConnections(2);
  const downAt = Date.now();
  await server.restart(Math.ceil((TTL_MS + 1500) / 1000));
  const upAt = Date.now();
  await killConnections(3);
  await waitFor('every account in its new desired state', () => missing().length === 0, { timeoutMs: 90_000, describe });
  await waitFor('every account held', async () => (await leaseStates()).every((s) => s.holder !== null), { timeoutMs: 10 * TTL_MS, describe });

  const log = sim.requestLog.filter((e) => e.token !== null);
  const name = (token) => byToken.get(token).accountId;
  t.diagnostic(`${kills.length} kills ended ${kills.reduce((n, k) => n + k.ended, 0)} connections; outage ${upAt - downAt} ms; ` +
    `${log.length} requests; errors reported: ${INSTANCES.map((n) => `${n} ${backends.get(n).errors.length}`).join(', ')}; ` +
    `lease changes: ${INSTANCES.map((n) => `${n} ${backends.get(n).leaseChanges.map((c) => c.type[0]).join('')}`).join(', ')}`);

  // The processes survived, and what they reported is the server going away, nothing else.
  for (const backend of backends.values()) {
    assert.ok(backend.alive, `${backend.name} is running; its stderr: ${backend.stderr}`);
    assert.doesNotMatch(backend.stderr, /Unhandled|uncaught/i, `${backend.name} stderr`);
    const other = backend.errors.map((e) => e.split('\n')[0]).filter((line) => !CONNECTION_ERROR.test(line));
    assert.deepEqual(other, [], `${backend.name} reported only connection errors`);
  }
  assert.ok(kills.filter((k) => k.ended > 0).length >= 15, 'connections were ended again and again');
  assert.ok([...backends.values()].some((b) => b.errors.length > 0), 'the kills failed some store calls');

  // The long outage: no request once every lease had lapsed, each instance lost its accounts then, and took some again.
  const duringOutage = log.filter((e) => e.at > downAt + TTL_MS && e.at < upAt);
  assert.deepEqual(duringOutage.map((e) => `${e.headers['x-instance']} ${e.method} ${e.path} at +${e.at - downAt} ms`), [],
    'no request while no lease could be renewed');
  for (const backend of backends.values()) {
    const lapsed = backend.leaseChanges.filter((c) => c.type === 'lost' && c.at > downAt && c.at < upAt + TTL_MS);
    const heldBefore = backend.leaseChanges.filter((c) => c.at < downAt).reduce((n, c) => n + (c.type === 'acquired' ? 1 : -1), 0);
    if (heldBefore > 0) assert.ok(lapsed.length > 0, `${backend.name} stopped driving its accounts during the outage`);
  }
  assert.ok(log.some((e) => e.at > upAt), 'requests resumed after the outage');

  // No two instances drove one account at the same time.
  const runs = driverRuns(log);
  assert.deepEqual(overlappingRuns(runs, name), [], 'two instances drove one account at the same time');
  t.diagnostic(`runs per account: ${[...runs].map(([tk, r]) => `${name(tk)} ${r.map((x) => x.instance).join('>')}`).join('; ')}`);

  // Nothing lost: for the accounts each instance drives, the store holds every record its engine wrote.
  const held = [];
  for (const backend of backends.values()) {
    const result = await backend.command('verify');
    assert.deepEqual(result.differences, [], `${backend.name}: the store differs from what it wrote for ${result.held}`);
    held.push(...result.held);
  }
  assert.deepEqual(held.sort(), accounts.map((a) => a.accountId).sort(), 'every account verified by its holder');

  // And no (asset, device) pair was associated twice.
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

  for (const backend of backends.values()) await backend.command('stop');
});
