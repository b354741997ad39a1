#!/usr/bin/env node
// The demo: the Apps and Books simulator with a seeded district, and the console page that runs the engine in
// the browser. Prints the console URL and the demo's sTokens (also downloadable from the page).
//   node scripts/demo.mjs [--port 8080] [--simulator-port 0] [--relay] [--check]
// --relay: the console reaches the simulator through the Apple relay this server mounts (createAppleRelay), as a
// production console reaches Apple through its backend.
// --check (alias --once): start everything, fetch the console page, its config, the engine and a token with
// the right types, then exit 0 (CI proves the demo works from a clean clone this way).
import { parseArgs } from 'node:util';
import { startDemo } from './demo-server.mjs';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '8080' },
    'simulator-port': { type: 'string', default: '0' },
    relay: { type: 'boolean', default: false },
    check: { type: 'boolean', default: false },
    once: { type: 'boolean', default: false },
  },
});
const check = args.check || args.once;

const port = check ? 0 : Number(args.port);
const demo = await startDemo({ port, simulatorPort: Number(args['simulator-port']), relay: args.relay }).catch((error) => {
  if (error.code !== 'EADDRINUSE') throw error;
  console.error(`${error.message}: pass another --port (or --simulator-port)`);
  process.exit(1);
});
const origin = new URL(demo.url).origin;
console.log(`Apps and Books simulator: ${demo.simulator.url}  (service config ${demo.simulator.serviceConfigUrl})`);
if (demo.relay) console.log(`The console reaches it through the Apple relay at ${demo.relay}`);
for (const account of demo.accounts) {
  console.log(`sToken ${account.name}: ${origin}/tokens/${account.file}\n  ${account.token}`);
}
console.log('"Shelbyville Annex" is held by another MDM ("Rival MDM"): add it, then choose Reclaim Ownership.');
console.log(`\nConsole: ${demo.url}\n`);

if (check) {
  let failed = false;
  const expect = async (pathname, type, test = () => true) => {
    const res = await fetch(new URL(pathname, demo.url));
    const body = await res.text();
    const ok = res.status === 200 && (res.headers.get('content-type') ?? '').startsWith(type) && test(body);
    console.log(`check ${ok ? 'ok  ' : 'FAIL'} GET ${pathname} → ${res.status} ${res.headers.get('content-type')}`);
    failed ||= !ok;
    return body;
  };
  await expect('/console/', 'text/html', (b) => b.includes('console.js'));
  await expect('/console/console.js', 'text/javascript');
  await expect('/console/console.css', 'text/css');
  await expect('/pkg/vpp_license_engine.js', 'text/javascript');
  await expect('/pkg/vpp_license_engine_bg.wasm', 'application/wasm');
  await expect('/pkg/host-shim/index.js', 'text/javascript');
  const config = JSON.parse(await expect('/console-config.json', 'application/json'));
  await expect('/demo-fixtures.json', 'application/json', (b) => JSON.parse(b).locations.length === 2);
  await expect(`/tokens/${demo.accounts[0].file}`, 'application/octet-stream', (b) => b === demo.accounts[0].token);
  if (config.relayPath) {
    // Through the relay: refused without the console's session cookie, answered with it.
    const cookie = (await fetch(new URL('/console-config.json', demo.url))).headers.get('set-cookie').split(';', 1)[0];
    const url = `${demo.relay}/service/config`;
    const refused = await fetch(url);
    const relayed = await fetch(url, { headers: { cookie } });
    const ok = refused.status === 403 && relayed.ok && Array.isArray((await relayed.json()).urls?.getAssignments?.match(/^https:\/\/vpp\.itunes\.apple\.com\//));
    console.log(`check ${ok ? 'ok  ' : 'FAIL'} GET ${url} → ${refused.status} without the session, ${relayed.status} with it`);
    failed ||= !ok;
  } else {
    const serviceConfig = await fetch(config.serviceConfigUrl);
    const cors = serviceConfig.headers.get('access-control-allow-origin') === '*';
    console.log(`check ${serviceConfig.ok && cors ? 'ok  ' : 'FAIL'} GET ${config.serviceConfigUrl} → ${serviceConfig.status} (CORS ${cors})`);
    failed ||= !(serviceConfig.ok && cors);
  }
  await demo.close();
  console.log(failed ? 'demo check failed' : 'demo check passed');
  process.exit(failed ? 1 : 0);
}

const stop = () => demo.close().then(() => process.exit(0));
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
