// HTTP transport for the Driver, built on fetch (browsers and Node 18+ alike: no `node:` imports).

/** Prefix of every URL the engine addresses at Apple; `baseUrl` replaces it (relay, simulator). */
export const APPLE_BASE_URL = 'https://vpp.itunes.apple.com/mdm/v2';

export function createFetchTransport({ fetch = globalThis.fetch, baseUrl, timeoutMs = 60000 } = {}) {
  if (typeof fetch !== 'function') throw new TypeError('createFetchTransport needs a fetch function');
  const base = baseUrl === undefined ? undefined : String(baseUrl).replace(/\/+$/, '');

  function target(url) {
    return base !== undefined && url.startsWith(`${APPLE_BASE_URL}/`) ? base + url.slice(APPLE_BASE_URL.length) : url;
  }

  return {
    /** Performs one engine request; rejects on a network error or when it takes longer than timeoutMs. */
    async send({ method, url, headers, body }) {
      const controller = new AbortController();
      const timer = setTimeout(
        () => controller.abort(new Error(`${method} ${target(url)} timed out after ${timeoutMs} ms`)),
        timeoutMs,
      );
      try {
        const response = await fetch(target(url), { method, headers, body: body ?? undefined, signal: controller.signal });
        const text = await response.text();
        // Headers iterate with lower-cased names, which is what the engine expects.
        return { status: response.status, headers: Object.fromEntries(response.headers), body: text };
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
