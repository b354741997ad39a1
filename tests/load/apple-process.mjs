// The parent's side of tests/load/apple.mjs: forks the simulator's process (so that the caller's CPU, event loop and
// peak RSS are its own) and calls its commands over IPC. Used by the load test and the end-to-end first-sync bench
// (scripts/bench/first-sync.mjs).
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const APPLE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'apple.mjs');

/**
 * Forks tests/load/apple.mjs. `call(cmd, args)` resolves with the command's result (rejects with its error, or when
 * the process exits first); `disconnect()` lets the process exit; `child` is the ChildProcess.
 */
export function forkApple() {
  const child = fork(APPLE, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'advanced' });
  let nextCall = 0;
  const calls = new Map();
  child.on('message', ({ id, result, error }) => {
    const call = calls.get(id);
    calls.delete(id);
    if (error) call.reject(new Error(`apple: ${error}`));
    else call.resolve(result);
  });
  child.on('exit', (code) => {
    for (const call of calls.values()) call.reject(new Error(`apple process exited (${code})`));
    calls.clear();
  });
  const call = (cmd, args) => new Promise((resolve, reject) => {
    const id = ++nextCall;
    calls.set(id, { resolve, reject });
    child.send({ id, cmd, args });
  });
  return { child, call, disconnect: () => child.disconnect() };
}
