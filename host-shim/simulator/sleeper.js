// Cancellable pauses: everything the simulator waits for ends at once when it closes.

export class Sleeper {
  #pending = new Map(); // timer → resolve

  /** Resolves after `ms`, or at once when `wakeAll()` is called first. */
  sleep(ms) {
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.#pending.delete(timer); resolve(); }, ms);
      this.#pending.set(timer, resolve);
    });
  }

  wakeAll() {
    for (const [timer, resolve] of this.#pending) {
      clearTimeout(timer);
      resolve();
    }
    this.#pending.clear();
  }
}
