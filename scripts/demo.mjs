#!/usr/bin/env node
// The demo: the Apps and Books simulator with a seeded demo organization, driven by the built engine
// through the host shim on an in-memory store. Prints the simulator URL and a live account table.
//   node scripts/demo.mjs [--port 8080] [--once]
// --once: exit after every account has settled (used by CI to prove the demo works end to end).
import { parseArgs } from 'node:util';
import { Engine } from '../pkg/vpp_license_engine.node.mjs';
import { Driver, MemoryStore, createFetchTransport } from '../pkg/host-shim/index.js';
import { startSimulator } from '../pkg/host-shim/simulator/index.js';

const { values: args } = parseArgs({
  options: { port: { type: 'string', default: '0' }, once: { type: 'boolean', default: false } },
});

const sim = await startSimulator({ port: Number(args.port), seed: 42, pageSize: 100 });
const district = sim.addOrganization({
  orgName: 'Springfield School District', locationName: 'Springfield High', apps: 12, devices: 600, users: 120,
});
const annex = sim.addOrganization({
  orgName: 'Springfield School District', locationName: 'Shelbyville Annex', apps: 12, devices: 300, users: 40,
});
sim.setMdmInfo(annex.token, { id: 'rival-mdm', name: 'Rival MDM', metadata: '7.1' });

const engine = new Engine(
  { mdmInfo: { id: 'vpp-license-engine-demo', name: 'vpp-license-engine demo', metadata: '0.1.0' },
    serviceConfigUrl: sim.serviceConfigUrl },
  Date.now(),
);
const settled = new Set();
const driver = new Driver({
  engine,
  transport: createFetchTransport(),
  store: new MemoryStore(),
  onEvent(event) {
    if (event.type === 'syncProgress') return; // the table shows progress
    console.log(`event  ${JSON.stringify(event)}`);
    if (event.type === 'syncCompleted' || event.type === 'ownershipLost') settled.add(event.accountId);
  },
});
driver.start();
driver.input({ type: 'addAccount', accountId: 'high', name: 'Springfield High', token: district.token });
driver.input({ type: 'addAccount', accountId: 'annex', name: 'Shelbyville Annex', token: annex.token });

console.log(`Apps and Books simulator: ${sim.url}  (service config ${sim.serviceConfigUrl})`);

function printTable() {
  const rows = engine.accounts().map((a) => {
    const counts = engine.appCounts(a.accountId);
    const used = counts.reduce((n, c) => n + c.assignedCount, 0);
    return { account: a.name, status: a.status, reason: a.statusReason, location: a.locationName ?? '', apps: counts.length, licensesUsed: used };
  });
  console.table(rows);
}

const timer = setInterval(() => {
  printTable();
  if (args.once && settled.size === 2) {
    clearInterval(timer);
    driver.stop();
    engine.free();
    sim.close().then(() => process.exit(0));
  }
}, 1000);
process.on('SIGINT', () => { clearInterval(timer); driver.stop(); sim.close().then(() => process.exit(0)); });
