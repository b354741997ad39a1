// A queue of async tasks run one at a time, in call order (browser and Node alike).

/**
 * Runs async tasks one at a time in call order (a failed task does not block the next). Store adapters use it so that
 * concurrent apply() calls commit in the order they were made, whatever the hooks or the connection pool do, and a
 * load issued after them sees them all.
 */
export function serialQueue() {
  let tail = Promise.resolve();
  return (task) => {
    const run = tail.then(task);
    tail = run.catch(() => {});
    return run;
  };
}
