#!/usr/bin/env node
// `vpp-license-engine <command>`: the package's command line (Node only).
const USAGE = `usage: vpp-license-engine <command> [options]

commands:
  simulate [options]   run the Apps and Books simulator (a fake Apple server on loopback);
                       'simulate --help' lists its options`;

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case 'simulate':
    // The simulator's CLI reads its options from process.argv: hand it the arguments after 'simulate'.
    process.argv.splice(2, process.argv.length - 2, ...args);
    await import('./simulator/cli.js');
    break;
  case undefined:
  case 'help':
  case '--help':
  case '-h':
    console.log(USAGE);
    break;
  default:
    console.error(`vpp-license-engine: unknown command '${command}'\n\n${USAGE}`);
    process.exitCode = 2;
}
