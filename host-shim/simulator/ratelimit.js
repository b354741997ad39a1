// Apple's `maxRequestPerSecond`: per sToken, every request counts (rejected ones too) in a sliding 1000 ms window.

const WINDOW_MS = 1000;

export class RateLimiter {
  #arrivals = new Map(); // token → ascending arrival times within the window

  /** Records a request of `token` at `now`; true when it exceeds `maxPerSecond` in the last 1000 ms. */
  hit(token, now, maxPerSecond) {
    const recent = (this.#arrivals.get(token) ?? []).filter((t) => t > now - WINDOW_MS);
    recent.push(now);
    this.#arrivals.set(token, recent);
    return recent.length > maxPerSecond;
  }
}
