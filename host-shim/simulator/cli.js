#!/usr/bin/env node
// Standalone Apps and Books simulator:
//   node host-shim/simulator/cli.js --port 8080 --seed 1 --orgs 2 --apps 12 --devices 300 --users 50
// Prints the base URL, the service-config URL and each organization's sToken, then serves until SIGINT/SIGTERM.
import { parseArgs } from 'node:util';
import { startSimulator } from './index.js';

const USAGE = `usage: node host-shim/simulator/cli.js [options]
  --host ADDR             loopback address to bind (default 127.0.0.1)
  --port N                port (default 8080; 0 = any free port)
  --seed N                seed of the generated data (default 1)
  --orgs N                organizations (locations), one sToken each (default 1)
  --apps N                apps per organization (default 12)
  --free-apps N           of which free, unlimited apps (default 1)
  --books N               books per organization (default 2)
  --devices N             device serial numbers per organization (default 300)
  --users N               users per organization (default 50)
  --assigned-fraction X   share of devices holding each app (default 0.5)
  --page-size N           records per page (default 1000)
  --event-delay-ms N      time until an event completes (default 2000)
  --latency-ms N          delay before every response (default 0)
  --no-rate-limit         do not enforce maxRequestPerSecond
  --phantom-fraction X    share of device associations reported COMPLETE that Apple does not hold (default 0)
  --flood-spread-ms N     notify asset events as a flood over N ms: one notification per app of at most 100
                          assignments, a tenth of them twice (default: off)
  --help`;

const OPTIONS = {
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '8080' },
  seed: { type: 'string', default: '1' },
  orgs: { type: 'string', default: '1' },
  apps: { type: 'string', default: '12' },
  'free-apps': { type: 'string', default: '1' },
  books: { type: 'string', default: '2' },
  devices: { type: 'string', default: '300' },
  users: { type: 'string', default: '50' },
  'assigned-fraction': { type: 'string', default: '0.5' },
  'page-size': { type: 'string', default: '1000' },
  'event-delay-ms': { type: 'string', default: '2000' },
  'latency-ms': { type: 'string', default: '0' },
  'no-rate-limit': { type: 'boolean', default: false },
  'phantom-fraction': { type: 'string', default: '0' },
  'flood-spread-ms': { type: 'string' },
  help: { type: 'boolean', default: false },
};

function number(values, name) {
  const n = Number(values[name]);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${values[name]}`);
  return n;
}

async function main() {
  const { values } = parseArgs({ options: OPTIONS, strict: true });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const sim = await startSimulator({
    host: values.host,
    port: number(values, 'port'),
    seed: number(values, 'seed'),
    pageSize: number(values, 'page-size'),
    eventDelayMs: number(values, 'event-delay-ms'),
    latencyMs: number(values, 'latency-ms'),
    rateLimit: !values['no-rate-limit'],
  });
  const content = {
    apps: number(values, 'apps'),
    freeApps: number(values, 'free-apps'),
    books: number(values, 'books'),
    devices: number(values, 'devices'),
    users: number(values, 'users'),
    assignedFraction: number(values, 'assigned-fraction'),
  };
  if (number(values, 'phantom-fraction') > 0) content.phantomAssociations = { fraction: number(values, 'phantom-fraction') };
  if (values['flood-spread-ms'] !== undefined) content.notificationFlood = { spreadMs: number(values, 'flood-spread-ms') };
  console.log(`Apps and Books simulator listening on ${sim.url}`);
  console.log(`service config: ${sim.serviceConfigUrl}`);
  for (let i = 0; i < number(values, 'orgs'); i++) {
    const org = sim.addOrganization(content);
    console.log(`\norganization ${org.orgName}, location ${org.locationName}, uId ${org.uId}: ` +
      `${org.assets.length} assets, ${org.assignments.length} assignments, ${org.users.length} users`);
    console.log(`sToken: ${org.token}`);
  }
  const stop = async () => {
    await sim.close();
    process.exit(0);
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err) => {
  console.error(err.message);
  console.error(USAGE);
  process.exit(2);
});
