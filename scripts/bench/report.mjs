// Merges the native and wasm figures into one table, judges each against its target (issue 7) and,
// with --write, puts the table into BENCHMARKS.md and the README (between their markers).
//   node scripts/bench/report.mjs --dir WORK --pkg PKG_DIR [--cargo-wasm FILE] [--quick] [--write]
// WORK holds native.json, wasm.json and wasm-memory.json (benches/engine, scripts/bench/wasm.mjs), and the other
// rows' files when they ran (restore-*.json, adopt-*.json, wasm-fleet.json, first-sync.json).
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';

const args = process.argv.slice(2);
const option = (name) => { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : undefined; };
const quick = args.includes('--quick');
const write = args.includes('--write');
const dir = option('--dir');
const pkg = option('--pkg');
const cargoWasm = option('--cargo-wasm');

const read = (name) => JSON.parse(readFileSync(join(dir, name), 'utf8'));
const native = read('native.json');
const wasm = read('wasm.json');
const wasmMemory = read('wasm-memory.json');
/** Restart rows (scripts/bench/restore.mjs): the writer, and one read per store it was written to. */
const restoreWrite = existsSync(join(dir, 'restore-write.json')) ? read('restore-write.json') : null;
const restoreReads = ['sqlite', 'postgres'].map((store) => join(dir, `restore-read-${store}.json`)).filter(existsSync)
  .map((file) => JSON.parse(readFileSync(file, 'utf8')));

// ------------------------------------------------------------------------------------------ formatting

const int = (n) => Math.round(n).toLocaleString('en-US');
const fixed = (n, digits) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const seconds = (s) => (s >= 10 ? `${fixed(s, 1)} s` : s >= 0.01 ? `${fixed(s, 3)} s` : `${fixed(s * 1000, 2)} ms`);
const micros = (us) => (us >= 1000 ? `${fixed(us / 1000, 2)} ms` : `${fixed(us, 1)} µs`);
const kb = (bytes) => `${fixed(bytes / 1000, 1)} KB`;
const mb = (bytes) => `${fixed(bytes / 1e6, 1)} MB`;
/** CPU time advances in scheduler ticks (4 ms here): below this it says little, and wall time is shown instead. */
const CPU_RESOLVED = 0.05;
const hasCpu = (m) => m.cpu !== null && m.cpu !== undefined && m.cpu >= CPU_RESOLVED;
/** The figure targets are judged on: CPU time of the engine's thread when it resolves the figure, else wall time. */
const cost = (m) => (hasCpu(m) ? m.cpu : m.wall);
const timing = (m) => (hasCpu(m) ? `${seconds(m.cpu)} CPU (${seconds(m.wall)} wall)` : `${seconds(m.wall)} wall`);

// ------------------------------------------------------------------------------------------ rows

/** The fleet rows' accounts (benches/engine/fleet.rs, scripts/bench/fleet.mjs). */
const DEVICES = '100 devices each';

const rows = [];
/** `met`: true/false, or null when the figure is not judged at these sizes. */
const row = (id, name, wasmText, nativeText, target, met) => rows.push({ id, name, wasmText, nativeText, target, met });
const timed = quick ? () => null : (met) => met; // timing targets are for the full sizes only

const n = native.scale.assignments;
const pages = Math.ceil(n / native.scale.pageSize);
const ratio = cost(wasm.ingest) / cost(native.ingest);
row('1', `full-sync ingest: ${int(n)} assignments in ${int(pages)} pages, plus assets and users`,
  timing(wasm.ingest), `${timing(native.ingest)}; wasm/native ${fixed(ratio, 2)}×`, '≤ 1.0 s wasm, ≤ 1.5× native',
  timed(cost(wasm.ingest) <= 1.0 && ratio <= 1.5));

const s = int(native.scale.scopeChange);
for (const [key, name] of [
  ['scopeLeave', `scope change: ${s} devices leave one app → requests out`],
  ['reconcile', 'Reconcile (everything still wanted) → drained'],
  ['scopeEnter', `scope change: ${s} devices enter one app → requests out`],
]) {
  row('2', `${name} (${int(n)} assignments, ${int(native.scale.devices)} devices, ${int(native.scale.apps)} apps)`,
    timing(wasm.plan[key]), timing(native.plan[key]), '≤ 0.5 s', timed(cost(wasm.plan[key]) <= 0.5));
}

const inputText = (x) => `median ${micros(x.median)}, p99 ${micros(x.p99)} (${x.samples})`;
for (const [key, name] of [
  ['previewLeave', `preview: ${s} devices leave one app`],
  ['previewEnter', `preview: ${s} devices enter one app`],
]) {
  const f = wasm.plan[key].figures;
  const figures = `assign ${int(f.assign)}, release ${int(f.release)}, ${int(f.requests)} request${f.requests === 1 ? '' : 's'}`;
  row('2', `${name} (${int(n)} assignments; nothing changes)`, `${timing(wasm.plan[key])}; ${figures}`,
    timing(native.plan[key]), '≤ 0.1 s wasm', timed(cost(wasm.plan[key]) <= 0.1));
}

for (const [key, name] of [
  ['pollAnswer', 'one input: a /status answer (PENDING), drained'],
  ['timeout', 'one input: timer with nothing due, drained'],
  ['deviceEnrolled', 'one input: DeviceEnrolled (known device), drained'],
]) {
  const w = wasm.input[key];
  const v = native.input[key];
  row('3', `${name}, loaded engine`, inputText(w), inputText(v), 'median ≤ 20 µs', timed(w.median <= 20));
}
if (wasm.input.notification100 && native.input.notification100) {
  // Issue 17 (notification floods): a cost proportional to the notification, whatever the engine's size; reported.
  row('3', 'one input: an ASSET_MANAGEMENT notification of 100 devices (confirming 100 pending associations), drained, loaded engine',
    inputText(wasm.input.notification100), inputText(native.input.notification100), '(reported)', null);
}

for (const [key, name] of [
  ['synced', 'core memory per assignment after the full sync'],
  ['loaded', '… plus policies (1 per app) and provenance of every assignment'],
]) {
  const growth = wasmMemory.memory[key].growthBytesPerAssignment;
  const v = native.memory[key];
  row('4', name, `${fixed(growth, 1)} B (linear memory growth)`,
    `${fixed(v.bytesPerAssignment, 1)} B live, ${fixed(v.peakBytesPerAssignment, 1)} B peak`,
    key === 'synced' ? '≤ 64 B' : '(not a target)', key === 'synced' ? timed(growth <= 64) : null);
}

if (restoreWrite !== null) {
  const storeName = { sqlite: 'SQLite', postgres: 'PostgreSQL' };
  for (const r of restoreReads) {
    const memory = r.restoredGrowthBytes / restoreWrite.writerGrowthBytes;
    const delta = r.firstSyncKinds[0] === 'delta';
    row('7', `restart from ${storeName[r.store]}: store.load({ json: true }) + Engine.restore of the world of row 4 (policies, provenance; ${int(r.records)} records, values as JSON text)`,
      `${seconds(r.totalSeconds)} wall (load ${seconds(r.loadSeconds)}, restore ${seconds(r.restoreSeconds)}); memory ${fixed(memory, 2)}× the writer's; first sync: ${r.firstSyncKinds[0] ?? 'none'}`,
      '— (the stores are JavaScript)', '≤ 3 s wall from SQLite, memory ≤ 1.2×, a delta sync',
      // A full refresh after a restart is wrong at any size; the time and memory targets are for the full size.
      !delta ? false : timed(memory <= 1.2 && (r.store !== 'sqlite' || r.totalSeconds <= 3)));
  }
}

/** Adopt row (restore.mjs --adopt-read): taking one account of ten over against restoring it alone. */
const [adopted, restoredAlone] = ['adopt-adopt.json', 'adopt-restore.json'].map((f) => (existsSync(join(dir, f)) ? read(f) : null));
if (adopted !== null && restoredAlone !== null) {
  const ratioToAlone = adopted.seconds / restoredAlone.seconds;
  row('7', `take over one account of ten (${int(adopted.records)} records each) from SQLite: store.loadAccount + engine.adopt, against store.load + Engine.restore of a store holding it alone (both { json: true })`,
    `${seconds(adopted.seconds)} against ${seconds(restoredAlone.seconds)}: ${fixed(ratioToAlone, 2)}×`,
    '— (the stores are JavaScript)', '≤ 1.3×', timed(ratioToAlone <= 1.3));
}

const wasmFleetReport = existsSync(join(dir, 'wasm-fleet.json')) ? read('wasm-fleet.json') : { fleet: [] };
const wasmFleet = wasmFleetReport.fleet;
const wasmAcross = wasmFleetReport.fleetAcrossEngines;
if (native.fleet && wasmFleet.length > 0) {
  const largest = (runs) => runs.at(-1);
  for (const [key, name] of [
    ['timeout', 'timer with nothing due'],
    ['pollAnswer', 'a /status answer (PENDING)'],
    ['deviceEnrolledTargeted', 'deviceEnrolled of a device a policy covers'],
    ['deviceEnrolledUntargeted', 'deviceEnrolled of a device no policy covers'],
  ]) {
    const medians = (runs) => runs.map((r) => `${int(r.accounts)}: ${micros(r[key].median)}`).join(', ');
    const growth = (runs) => largest(runs)[key].median / runs[0][key].median;
    // The control: the same inputs on as many engines of one account each (cold caches, no other account in the engine).
    const control = (runs, across) => (across === undefined ? '' : `; ${int(across.engines)} engines of 1 account: ${micros(across[key].median)}, largest ${fixed(largest(runs)[key].median / across[key].median, 1)}× that`);
    const w = largest(wasmFleet);
    row('8', `one input on an engine of many accounts (${DEVICES}), median by accounts: ${name}`,
      `${medians(wasmFleet)}; ${fixed(growth(wasmFleet), 1)}× from 1${control(wasmFleet, wasmAcross)}`,
      `${medians(native.fleet)}; ${fixed(growth(native.fleet), 1)}× from 1${control(native.fleet, native.fleetAcrossEngines)}`,
      'largest ≤ 1.5× the median at 1 account, ≤ 20 µs wasm', timed(growth(wasmFleet) <= 1.5 && w[key].median <= 20));
  }
  const perAccount = (runs) => largest(runs).bytesPerIdleAccount;
  row('8', `memory per idle account (${DEVICES}, synced, one policy)`, `${kb(perAccount(wasmFleet))} (linear memory growth)`,
    `${kb(perAccount(native.fleet))} live`, '(reported)', null);
}

/** Row 9 (scripts/bench/first-sync.mjs): the first full sync end to end, against Apple's rate limit. */
if (existsSync(join(dir, 'first-sync.json'))) {
  const f = read('first-sync.json');
  const r = f.requests;
  const purposes = Object.entries(r.byPurpose).map(([p, c]) => `${int(c)} ${p}`).join(', ');
  row('9', `end-to-end first sync through the simulator over HTTP, Driver, SqliteStore: ${int(f.world.assignments)} assignments; `
    + `${int(r.sent)} requests (${purposes})`,
    `${seconds(f.wallSeconds)} wall to syncCompleted, Apple's floor ${seconds(f.floorSeconds)} (${int(r.rateLimited)} requests ÷ `
    + `${f.limits.maxRequestPerSecond}/s): ${fixed(f.ratio, 2)}×; every record stored at ${seconds(f.storedSeconds)} `
    + `(${fixed(f.storedSeconds / f.floorSeconds, 2)}×)${r.answered429 > 0 ? `; **Apple refused ${r.answered429} for the rate**` : ''}; `
    + `engine ${seconds(f.time.engineSeconds)} in its calls; peak RSS ${mb(f.memory.peakRssBytes)}; `
    + `${int(f.store.puts + f.store.deletes)} records, ${mb(f.store.bytes)} written (keys + values; SQLite file ${mb(f.store.sqliteFileBytes)})`,
    '— (the Driver, transport and store are JavaScript)', '≤ 1.3× Apple\'s floor',
    // An incomplete sync, or one Apple had to refuse for the rate, is wrong at any size; the time is for the full size.
    !f.complete || r.answered429 > 0 ? false : timed(f.ratio <= 1.3));
}

const wasmFile = join(pkg, 'vpp_license_engine_bg.wasm');
const raw = statSync(wasmFile).size;
const gzip = gzipSync(readFileSync(wasmFile), { level: 9 }).length;
const before = cargoWasm && existsSync(cargoWasm) ? `; cargo output before wasm-bindgen/wasm-opt ${kb(statSync(cargoWasm).size)}` : '';
row('5', 'wasm size after wasm-opt -Oz: raw / gzip -9', `${kb(raw)} / ${kb(gzip)}`, `—${before}`, '≤ 300 KB / ≤ 120 KB',
  raw <= 300_000 && gzip <= 120_000);

for (const w of wasm.requests) {
  const v = native.requests.find((r) => r.name === w.name);
  const purposes = Object.entries(w.byPurpose).map(([p, c]) => `${c} ${p}`).join(', ') || 'none';
  row('6', `Apple requests: ${w.name} (one per install: ${int(w.perInstall)})`, `${w.issued} (${purposes})`,
    v ? String(v.issued) : 'not run', `= lower bound ${w.lowerBound}`, w.issued === w.lowerBound && v?.issued === w.issued);
}

// ------------------------------------------------------------------------------------------ table

rows.sort((a, b) => Number(a.id) - Number(b.id)); // stable: within a row number, in the order measured
const verdict = (met) => (met === null ? (quick ? 'n/a (quick sizes)' : '—') : met ? 'ok' : 'MISSED');
const header = ['#', 'benchmark', 'wasm in Node', 'native (release)', 'target', 'result'];
const cells = rows.map((r) => [r.id, r.name, r.wasmText, r.nativeText, r.target, verdict(r.met)]);
const table = [header, header.map(() => '---'), ...cells].map((c) => `| ${c.join(' | ')} |`).join('\n');

const git = (...a) => { try { return execFileSync('git', a, { encoding: 'utf8' }).trim(); } catch { return ''; } };
// bench.sh notes the tree before building (it may change while the benchmarks run).
const commit = process.env.BENCH_COMMIT ?? (git('rev-parse', '--short', 'HEAD') || 'unknown');
const dirtyTree = process.env.BENCH_DIRTY === undefined ? git('status', '--porcelain', '--untracked-files=no') !== '' : Number(process.env.BENCH_DIRTY) > 0;
const dirty = dirtyTree ? ' + uncommitted changes in the work tree' : '';
const model = (/^model name\s*:\s*(.*)$/m.exec(existsSync('/proc/cpuinfo') ? readFileSync('/proc/cpuinfo', 'utf8') : '') ?? [])[1] ?? 'unknown CPU';
const nproc = (() => { try { return execFileSync('nproc', { encoding: 'utf8' }).trim(); } catch { return String(cpus().length); } })();
const machine = `${nproc} cores (nproc), ${model}, ${fixed(totalmem() / 2 ** 30, 1)} GiB memory; Node ${process.version}; ${process.env.RUSTC_VERSION ?? 'rustc'}`;
const sameBytes = wasm.pageBytes === native.pageBytes && wasmMemory.pageBytes === native.pageBytes;
const run = [
  `Run ${new Date().toISOString().replace(/\.\d+Z$/, 'Z')} at commit \`${commit}\`${dirty}${quick ? ' — **--quick sizes**' : ''}.`,
  `Machine: ${machine}. Load average when the report was written: ${loadavg().map((l) => fixed(l, 2)).join(', ')}.`,
  `Both runtimes parsed the same ${int(native.pageBytes)} bytes of Apple pages${sameBytes ? '' : ' — **MISMATCH: the wasm run built different pages**'}.`,
].join('\n');

const missed = rows.filter((r) => r.met === false).length;
const summary = `${rows.length - missed - rows.filter((r) => r.met === null).length} ok, ${missed} MISSED`;
process.stdout.write(`\n${run}\n\n${table}\n\n${summary}\n`);
if (!sameBytes) process.exitCode = 1;

// ------------------------------------------------------------------------------------------ files

/** Replaces what stands between `start` and `end` in `file` (which must have both markers). */
function replaceBetween(file, start, end, text) {
  const content = readFileSync(file, 'utf8');
  const from = content.indexOf(start);
  const to = content.indexOf(end);
  if (from < 0 || to < from) {
    process.stderr.write(`report: ${file} lacks the markers ${start} … ${end}; left unchanged\n`);
    return;
  }
  writeFileSync(file, `${content.slice(0, from + start.length)}\n${text}\n${content.slice(to)}`);
  process.stdout.write(`report: wrote the table into ${file}\n`);
}

if (write) {
  replaceBetween('BENCHMARKS.md', '<!-- bench:generated -->', '<!-- bench:end -->', `${run}\n\n${table}\n\n${summary}.`);
  replaceBetween('README.md', '<!-- bench:table -->', '<!-- bench:end -->',
    `${table}\n\nFrom a full run at commit \`${commit}\` on ${nproc} cores (${model}); details and method in [BENCHMARKS.md](BENCHMARKS.md).`);
}
