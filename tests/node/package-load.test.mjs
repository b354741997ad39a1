// The built package as a consumer gets it: `npm pack` pkg/, install the tarball into a throwaway project,
// then load it through every entry point. Run scripts/build-pkg.sh first.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = fileURLToPath(new URL('../..', import.meta.url));
let work;
let consumer;
let packed;

function run(command, args, cwd) {
  return execFileSync(command, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs an ES module in the consumer project and returns what it printed as JSON. */
function runInConsumer(source) {
  return JSON.parse(run(process.execPath, ['--input-type=module', '-e', source], consumer));
}

before(() => {
  work = mkdtempSync(path.join(tmpdir(), 'vpp-license-engine-pack-'));
  [packed] = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], path.join(repo, 'pkg')));
  consumer = path.join(work, 'consumer');
  mkdirSync(consumer);
  writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true }));
  // Without the optional dependencies (better-sqlite3 builds from source, ~90 s): the consumer who needs no
  // SQLite or PostgreSQL store; the stores then say what to install.
  run('npm', ['install', '--offline', '--omit=optional', '--no-audit', '--no-fund', path.join(work, packed.filename)], consumer);
});

after(() => rmSync(work, { recursive: true, force: true }));

/** Every file path a package.json names: main, module, browser, types, bin and all export targets. */
function namedFiles(manifest) {
  const paths = [];
  const walk = (value) => {
    if (typeof value === 'string') paths.push(value.replace(/^\.\//, ''));
    else if (value && typeof value === 'object') Object.values(value).forEach(walk);
  };
  walk([manifest.main, manifest.module, manifest.browser, manifest.types, manifest.bin, manifest.exports]);
  return [...new Set(paths)].sort();
}

test('every file package.json names is in the tarball, which holds only the engine builds and the host shim', () => {
  const files = packed.files.map((f) => f.path);
  const manifest = JSON.parse(readFileSync(path.join(repo, 'pkg', 'package.json'), 'utf8'));
  assert.deepEqual(namedFiles(manifest).filter((f) => !files.includes(f)), []);
  for (const f of ['host-shim/driver.js', 'host-shim/transport.js', 'host-shim/memory-store.js', 'host-shim/store.d.ts',
    'host-shim/record-encoding.js', 'host-shim/token-protection.js', 'host-shim/record-accounts.js', 'host-shim/lease-keeper.js',
    'host-shim/indexeddb-store.js', 'host-shim/report-csv.js', 'host-shim/node/sqlite-store.js', 'host-shim/node/postgres-store.js']) {
    assert.ok(files.includes(f), `${f} missing from the tarball`);
  }
  const stray = files.filter((f) => !(f === 'package.json' || f.startsWith('vpp_license_engine') || f.startsWith('host-shim/')));
  assert.deepEqual(stray, []);
  assert.deepEqual(files.filter((f) => /\.test\.|\.rs$/.test(f)), []);
});

test('require() and import load the same wasm instance', () => {
  const result = runInConsumer(`
    import { createRequire } from 'node:module';
    const cjs = createRequire(import.meta.url)('vpp-license-engine');
    const esm = await import('vpp-license-engine');
    await esm.default();
    esm.initSync();
    const engine = new esm.Engine({ mdmInfo: { id: 'm1', name: 'Test MDM', metadata: '1' } }, Date.now());
    console.log(JSON.stringify({
      sameEngineClass: cjs.Engine === esm.Engine,
      sameDecodeToken: cjs.decodeToken === esm.decodeToken,
      esmEngineIsCjsInstance: engine instanceof cjs.Engine,
      firstOutput: engine.pollOutput(Date.now()).type,
    }));
    engine.free();
  `);
  assert.deepEqual(result, { sameEngineClass: true, sameDecodeToken: true, esmEngineIsCjsInstance: true, firstOutput: 'request' });
});

test('the ./host, ./node and ./simulator subpaths import from the installed package', () => {
  const result = runInConsumer(`
    const host = await import('vpp-license-engine/host');
    const node = await import('vpp-license-engine/node');
    const simulator = await import('vpp-license-engine/simulator');
    console.log(JSON.stringify({ host: Object.keys(host).sort(), node: Object.keys(node).sort(), startSimulator: typeof simulator.startSimulator }));
  `);
  assert.deepEqual(result, {
    host: ['APPLE_BASE_URL', 'Driver', 'IndexedDbStore', 'LeaseKeeper', 'MemoryStore', 'RemoteStore', 'appReportCsv',
      'assignmentReportCsv', 'createFetchTransport', 'csvField', 'csvLine'],
    node: ['APPLE_RELAY_ROUTES', 'DEFAULT_MAX_BODY_BYTES', 'DEFAULT_NOTIFICATION_PATH', 'DEFAULT_RELAY_BODY_TIMEOUT_MS',
      'DEFAULT_RELAY_MAX_BODY_BYTES', 'DEFAULT_RELAY_MAX_RESPONSE_BYTES', 'DEFAULT_RELAY_PATH', 'DEFAULT_RELAY_TIMEOUT_MS',
      'DEFAULT_STORE_RELAY_BODY_TIMEOUT_MS', 'DEFAULT_STORE_RELAY_MAX_BODY_BYTES', 'DEFAULT_STORE_RELAY_PATH',
      'POSTGRES_DEFAULT_TABLE', 'PostgresStore', 'STORE_RELAY_METHODS', 'SqliteStore', 'aesGcmProtector', 'createAppleRelay',
      'createNotificationHandler', 'createStoreRelay', 'startNotificationServer'],
    startSimulator: 'function',
  });
});

test('without the optional better-sqlite3 and pg, the SQLite and PostgreSQL stores say what to install', () => {
  const result = runInConsumer(`
    const { SqliteStore, PostgresStore } = await import('vpp-license-engine/node');
    const messages = [];
    try { SqliteStore.open('records.db'); } catch (error) { messages.push(error.message); }
    try { await PostgresStore.connect({ connectionString: 'postgres://127.0.0.1:1/x' }); } catch (error) { messages.push(error.message); }
    console.log(JSON.stringify(messages));
  `);
  assert.deepEqual(result, [
    "SqliteStore needs the npm package better-sqlite3: run 'npm install better-sqlite3'",
    "PostgresStore needs the npm package pg: run 'npm install pg'",
  ]);
});

test('the vpp-license-engine bin prints its usage and hands `simulate` arguments to the simulator CLI', () => {
  const bin = path.join(consumer, 'node_modules', '.bin', 'vpp-license-engine');
  assert.match(run(bin, ['--help'], consumer), /usage: vpp-license-engine <command>[^]*simulate/);
  assert.match(run(bin, ['simulate', '--help'], consumer), /--page-size N/);
  assert.throws(() => run(bin, ['simulate', '--no-such-option'], consumer), /no-such-option/);
});

test('TypeScript consumers type-check against the package types (ESM and CommonJS, nodenext)', () => {
  writeFileSync(
    path.join(consumer, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        lib: ['es2022', 'dom', 'esnext.disposable'],
        types: [],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
      },
      files: ['esm.mts', 'cjs.cts'],
    }),
  );
  writeFileSync(
    path.join(consumer, 'esm.mts'),
    `import init, { Engine, decodeToken, type EngineConfig, type EngineEvent, type Output } from 'vpp-license-engine';
import { Driver, IndexedDbStore, LeaseKeeper, MemoryStore, RemoteStore, assignmentReportCsv, createFetchTransport, type LeaseStore, type Store, type TokenHooks } from 'vpp-license-engine/host';
import { startSimulator } from 'vpp-license-engine/simulator';
import { PostgresStore, SqliteStore, aesGcmProtector, createAppleRelay, createNotificationHandler, createStoreRelay, startNotificationServer } from 'vpp-license-engine/node';

await init();
const config: EngineConfig = { mdmInfo: { id: 'm1', name: 'Test MDM', metadata: '1' }, seed: 7 };
const engine = new Engine(config, Date.now());
const output: Output = engine.pollOutput(Date.now());
if (output.type === 'timeout') output.at.toFixed();
for await (const chunk of assignmentReportCsv(engine, null, { pageSize: 500, adamId: '1', pricingParam: 'STDQ', appName: () => 'Keynote' })) chunk.trim();
// @ts-expect-error pricingParam is STDQ or PLUS
assignmentReportCsv(engine, 'a1', { pricingParam: 'FREE' });
const store: Store = new MemoryStore();
const driver = new Driver({
  engine,
  store,
  transport: createFetchTransport({ baseUrl: 'http://127.0.0.1:1' }),
  onEvent(event: EngineEvent) {
    if (event.type === 'syncCompleted') event.assignments.toFixed();
  },
});
driver.input({ type: 'refresh', accountId: 'a1' });
const notificationStatus: number = driver.notification('a1', null, '{}');
const endpoint = await startNotificationServer({ driver, authToken: 'secret', port: 0, headersTimeoutMs: 5000, maxConcurrentRequests: 8 });
const withEndpoint = new Engine({ ...config, notifications: { url: endpoint.url, authToken: 'secret' } }, Date.now());
await endpoint.close();
const handler: (req: any, res: any) => void = createNotificationHandler({ driver, authToken: 'secret', path: '/hooks/apple', maxBodyBytes: 65536, bodyTimeoutMs: 5000 });
// @ts-expect-error the endpoint checks the bearer itself: authToken is required
createNotificationHandler({ driver });
const relay: (req: any, res: any, next?: () => void) => void = createAppleRelay({ authorize: async () => true, path: '/apple-relay', timeoutMs: 30000 });
// @ts-expect-error the relay forwards nobody's requests without the backend's own check
createAppleRelay({ timeoutMs: 30000 });
const storeRelay: (req: any, res: any, next?: () => void) => void = createStoreRelay({ store: new MemoryStore(), authorize: (req, method: string) => method !== 'load', maxBodyBytes: 1 << 25 });
// @ts-expect-error the store relay serves a LeaseStore only
createStoreRelay({ store: { apply() {}, load: () => [], loadAccount: () => [] }, authorize: () => true });
const remoteStore: LeaseStore = new RemoteStore({ baseUrl: 'https://mdm.example.com/store-relay', headers: { 'x-csrf-token': 't' }, timeoutMs: 30000 });
const consoleKeeper = new LeaseKeeper({ store: remoteStore, ttlMs: 30000 });
// @ts-expect-error inputs are a discriminated union
driver.input({ type: 'refresh' });
await driver.whenIdle();
const sim = await startSimulator({ port: 0, seed: 1 });
const token: string = sim.addOrganization({ apps: 3 }).token;
await sim.close();
const expiresAt: number = decodeToken('...').expiresAt;
const hooks: TokenHooks = aesGcmProtector(new Uint8Array(32));
const stores: Store[] = [
  SqliteStore.open('records.db', hooks),
  await PostgresStore.connect({ connectionString: 'postgres://127.0.0.1/vpp', table: 'records', ...hooks }),
  await IndexedDbStore.open('vpp', { protect: async (t: string) => t, unprotect: async (t: string) => t }),
];
await Promise.all(stores.map((s) => s.apply([{ op: 'delete', key: 'settings' }])));
const ownRecords = await stores[0].loadAccount('a1', { shared: false });
// @ts-expect-error shared is a boolean
stores[0].loadAccount('a1', { shared: 'no' });
const leaseLeft: number | null = (await remoteStore.leaseStates())[0].expiresInMs;
export { consoleKeeper, expiresAt, handler, leaseLeft, notificationStatus, ownRecords, storeRelay, withEndpoint };
`,
  );
  writeFileSync(
    path.join(consumer, 'cjs.cts'),
    `import engine = require('vpp-license-engine');
const e = new engine.Engine({ mdmInfo: { id: 'm1', name: 'Test MDM', metadata: '1' } }, Date.now());
const total: number = e.assignments('a1').total;
export = total;
`,
  );
  const tsc = path.join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    run(process.execPath, [tsc, '-p', consumer], consumer);
  } catch (error) {
    assert.fail(`tsc reported errors:\n${error.stdout}${error.stderr}`);
  }
});
