// Restart at scale (issue 14): how long a Node backend takes to come back from its store, and with how much memory.
//   node scripts/bench/restore.mjs --pkg DIR --write DIR [--quick] [--postgres URL] --out FILE
//       builds the benchmark world in a wasm engine (the full sync, one device policy per app covering its holders,
//       Clean Up adopting every assignment as ours: provenance of each), keeps what it persists, writes it to
//       DIR/restore.sqlite (and to PostgreSQL with --postgres), and reports the writer's linear memory growth.
//   node scripts/bench/restore.mjs --pkg DIR --read sqlite:FILE|postgres:URL [--quick] --out FILE
//       times store.load({ json: true }) + Engine.restore in a fresh process (wasm linear memory only grows, so each figure needs its
//       own process), reports the restored engine's linear memory growth, then drives it against the bench Apple
//       until its first sync ends and reports that sync's kind (a restart catches up with a delta sync).
//   node scripts/bench/restore.mjs --pkg DIR --adopt-write DIR [--quick] --out FILE
//       builds a smaller world (100,000 assignments; --quick 1,000) the same way and writes it as 10 accounts of their
//       own into DIR/adopt-ten.sqlite, and its account number ADOPTED alone into DIR/adopt-one.sqlite.
//   node scripts/bench/restore.mjs --pkg DIR --adopt-read DIR --how adopt|restore [--quick] --out FILE
//       times taking that account over from the ten (a fresh engine: store.loadAccount + engine.adopt) or restoring
//       it from the store that holds it alone (store.load + Engine.restore); issue 14 wants the first ≤ 1.3× the second.
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { ACCOUNT, Host, SCALES, START, assignmentCount, buildPages, config, devicePolicy, districtOrg, holders, serial, token } from './world.mjs';
import { SqliteStore } from '../../host-shim/node/sqlite-store.js';
import { PostgresStore } from '../../host-shim/node/postgres-store.js';

const args = process.argv.slice(2);
const option = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const quick = args.includes('--quick');
const pkg = resolve(option('--pkg') ?? 'pkg');
const out = option('--out');
const scale = quick ? SCALES.quick : SCALES.full;
/** The world of each account of the adopt row: 100,000 assignments (--quick: 1,000). */
const adoptScale = quick
  ? { devices: 200, apps: 20, users: 10, pageSize: 1_000 }
  : { devices: 20_000, apps: 100, users: 1_000, pageSize: 1_000 };
const ADOPT_ACCOUNTS = 10;
/** The account taken over (any of the ten but the first, so that its records are not the first ones stored). */
const ADOPTED = 3;
const log = (text) => process.stderr.write(`restore: ${text}\n`);

const glue = await import(pathToFileURL(join(pkg, 'vpp_license_engine.js')).href);
const wasm = glue.initSync({ module: readFileSync(join(pkg, 'vpp_license_engine_bg.wasm')) });
const { Engine } = glue;
const linearMemory = () => wasm.memory.buffer.byteLength;
/** Records per store write while filling a store (not timed). */
const FILL_BATCH = 20_000;
/** The restarted engine's clock: an hour after the world was built, so its delta sync is due. */
const RESTART_AT = START + 3_600_000;

async function fill(store, records) {
  const ops = [...records].map(([key, value]) => ({ op: 'put', key, value }));
  for (let i = 0; i < ops.length; i += FILL_BATCH) await store.apply(ops.slice(i, i + FILL_BATCH));
}

/**
 * The world of `world` as a wasm engine persists it (the full sync, one device policy per app covering its holders,
 * Clean Up adopting every assignment as ours), and the engine's linear memory growth while building it.
 */
function persistedWorld(world) {
  const pages = buildPages(districtOrg(world));
  const before = linearMemory();
  const records = new Map();
  const host = new Host(Engine, pages, { records });
  host.sync();
  holders(world).forEach((devices, a) => host.input(devicePolicy(a, devices.map(serial))));
  host.input({ type: 'cleanUp', accountId: ACCOUNT });
  host.run(0, () => true);
  return { records, growth: linearMemory() - before };
}

async function write(dir, postgres) {
  const { records, growth } = persistedWorld(scale);
  const byPrefix = {};
  for (const key of records.keys()) {
    const prefix = key.slice(0, key.indexOf('/') + 1) || key;
    byPrefix[prefix] = (byPrefix[prefix] ?? 0) + 1;
  }
  log(`${records.size} records (${JSON.stringify(byPrefix)}); writing them to SQLite`);
  const path = join(dir, 'restore.sqlite');
  rmSync(path, { force: true });
  const sqlite = SqliteStore.open(path);
  await fill(sqlite, records);
  await sqlite.close();
  if (postgres) {
    log('writing them to PostgreSQL');
    const pg = await PostgresStore.connect({ connectionString: postgres });
    await pg.apply((await pg.load()).map(({ key }) => ({ op: 'delete', key })));
    await fill(pg, records);
    await pg.close();
  }
  return { assignments: assignmentCount(scale), records: records.size, recordsByPrefix: byPrefix, writerGrowthBytes: growth, sqlitePath: path };
}

async function read(source) {
  const [kind, ...rest] = source.split(':');
  const target = rest.join(':');
  const before = linearMemory();
  const start = performance.now();
  const store = kind === 'sqlite' ? SqliteStore.open(target) : await PostgresStore.connect({ connectionString: target });
  const records = await store.load({ json: true });
  const loaded = performance.now();
  const engine = Engine.restore(config(), records, RESTART_AT);
  const restored = performance.now();
  const growth = linearMemory() - before;
  await store.close();
  // The bench Apple's pages are built after the restart is timed: a restarting backend holds no million page
  // bodies in its heap (built first, they made its collections, and the restore, about 0.2 s slower).
  const pages = buildPages(districtOrg(scale));
  const host = new Host(Engine, pages, { engine, now: RESTART_AT });
  host.run(Infinity, (h) => h.syncsCompleted > 0);
  return {
    store: kind,
    records: records.length,
    loadSeconds: (loaded - start) / 1000,
    restoreSeconds: (restored - loaded) / 1000,
    totalSeconds: (restored - start) / 1000,
    restoredGrowthBytes: growth,
    firstSyncKinds: host.syncKinds,
  };
}

/**
 * The records of the world's account as account number `n` of several: its own account id, token and policy ids,
 * in keys and values alike (the engine checks that each key matches its record).
 */
function asAccount(records, n) {
  const accountId = `${ACCOUNT}-${n}`;
  const policyId = (id) => `a${n}-${id}`;
  const renamed = new Map();
  for (const [key, value] of records) {
    const parts = key.split('/');
    if (parts[0] === 'policy') parts[1] = policyId(parts[1]);
    else if (parts[1] === ACCOUNT) parts[1] = accountId;
    if (parts[0] === 'targets') parts[2] = policyId(parts[2]);
    const copy = { ...value };
    if (copy.accountId === ACCOUNT) copy.accountId = accountId;
    if (typeof copy.policyId === 'string') copy.policyId = policyId(copy.policyId);
    if (parts[0] === 'account') copy.token = token(`bench-secret-${n}`);
    renamed.set(parts.join('/'), copy);
  }
  return renamed;
}

async function adoptWrite(dir) {
  const { records } = persistedWorld(adoptScale);
  const ten = join(dir, 'adopt-ten.sqlite');
  const one = join(dir, 'adopt-one.sqlite');
  for (const path of [ten, one]) rmSync(path, { force: true });
  const store = SqliteStore.open(ten);
  for (let n = 0; n < ADOPT_ACCOUNTS; n++) await fill(store, asAccount(records, n));
  await store.close();
  const alone = SqliteStore.open(one);
  await fill(alone, asAccount(records, ADOPTED));
  await alone.close();
  return { accounts: ADOPT_ACCOUNTS, assignmentsPerAccount: assignmentCount(adoptScale), recordsPerAccount: records.size };
}

async function adoptRead(dir, how) {
  const accountId = `${ACCOUNT}-${ADOPTED}`;
  const before = linearMemory();
  const start = performance.now();
  let records;
  if (how === 'adopt') {
    const engine = new Engine(config(), RESTART_AT);
    const store = SqliteStore.open(join(dir, 'adopt-ten.sqlite'));
    records = await store.loadAccount(accountId, { json: true });
    engine.adopt(accountId, records, RESTART_AT);
    await store.close();
    if (engine.accounts().length !== 1) throw new Error(`adopt: ${engine.accounts().length} accounts after adopting one`);
  } else if (how === 'restore') {
    const store = SqliteStore.open(join(dir, 'adopt-one.sqlite'));
    records = await store.load({ json: true });
    const engine = Engine.restore(config(), records, RESTART_AT);
    await store.close();
    if (engine.accounts().length !== 1) throw new Error(`restore: ${engine.accounts().length} accounts`);
  } else {
    throw new Error('restore.mjs: --how adopt|restore');
  }
  return { how, accountId, records: records.length, seconds: (performance.now() - start) / 1000, growthBytes: linearMemory() - before };
}

let report;
if (option('--adopt-write')) report = { part: 'adopt-write', ...(await adoptWrite(option('--adopt-write'))) };
else if (option('--adopt-read')) report = { part: 'adopt-read', ...(await adoptRead(option('--adopt-read'), option('--how'))) };
else if (option('--write')) report = { part: 'write', ...(await write(option('--write'), option('--postgres'))) };
else if (option('--read')) report = { part: 'read', ...(await read(option('--read'))) };
else throw new Error('restore.mjs: --write DIR or --read sqlite:FILE|postgres:URL');
const text = JSON.stringify(report, null, 2);
if (out) writeFileSync(out, text); else process.stdout.write(`${text}\n`);
