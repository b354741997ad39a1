// Restart at scale (issue 14): how long a Node backend takes to come back from its store, and with how much memory.
//   node scripts/bench/restore.mjs --pkg DIR --write DIR [--quick] [--postgres URL] --out FILE
//       builds the benchmark world in a wasm engine (the full sync, one device policy per app covering its holders,
//       Clean Up adopting every assignment as ours: provenance of each), keeps what it persists, writes it to
//       DIR/restore.sqlite (and to PostgreSQL with --postgres), and reports the writer's linear memory growth.
//   node scripts/bench/restore.mjs --pkg DIR --read sqlite:FILE|postgres:URL [--quick] --out FILE
//       times store.load() + Engine.restore in a fresh process (wasm linear memory only grows, so each figure needs its
//       own process), reports the restored engine's linear memory growth, then drives it against the bench Apple
//       until its first sync ends and reports that sync's kind (a restart catches up with a delta sync).
import { readFileSync, writeFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { performance } from 'node:perf_hooks';
import { ACCOUNT, Host, SCALES, START, assignmentCount, buildPages, config, devicePolicy, districtOrg, holders, serial } from './world.mjs';
import { SqliteStore } from '../../host-shim/node/sqlite-store.js';
import { PostgresStore } from '../../host-shim/node/postgres-store.js';

const args = process.argv.slice(2);
const option = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const quick = args.includes('--quick');
const pkg = resolve(option('--pkg') ?? 'pkg');
const out = option('--out');
const scale = quick ? SCALES.quick : SCALES.full;
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

async function write(dir, postgres) {
  const pages = buildPages(districtOrg(scale));
  const before = linearMemory();
  const records = new Map();
  const host = new Host(Engine, pages, { records });
  host.sync();
  holders(scale).forEach((devices, a) => host.input(devicePolicy(a, devices.map(serial))));
  host.input({ type: 'cleanUp', accountId: ACCOUNT });
  host.run(0, () => true);
  const growth = linearMemory() - before;
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
  const pages = buildPages(districtOrg(scale));
  const before = linearMemory();
  const start = performance.now();
  const store = kind === 'sqlite' ? SqliteStore.open(target) : await PostgresStore.connect({ connectionString: target });
  const records = await store.load();
  const loaded = performance.now();
  const engine = Engine.restore(config(), records, RESTART_AT);
  const restored = performance.now();
  const growth = linearMemory() - before;
  await store.close();
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

let report;
if (option('--write')) report = { part: 'write', ...(await write(option('--write'), option('--postgres'))) };
else if (option('--read')) report = { part: 'read', ...(await read(option('--read'))) };
else throw new Error('restore.mjs: --write DIR or --read sqlite:FILE|postgres:URL');
const text = JSON.stringify(report, null, 2);
if (out) writeFileSync(out, text); else process.stdout.write(`${text}\n`);
