import type { NotificationRequest } from './notification-endpoint.js';

/** What the relay reads of a request: node:http's IncomingMessage (or an Express request) has it. */
export type RelayRequest = NotificationRequest;

/** What the relay writes of an answer: node:http's ServerResponse has it. */
export interface RelayResponse {
  readonly headersSent: boolean;
  writeHead(statusCode: number, headers?: Record<string, string>): unknown;
  end(body?: Uint8Array): unknown;
}

/** The default mount path of the relay: the console's transport uses `createFetchTransport({ baseUrl: origin + path })`. */
export declare const DEFAULT_RELAY_PATH: string;
/** Apple's Apps and Books API paths (under https://vpp.itunes.apple.com/mdm/v2) and the methods forwarded for each. */
export declare const APPLE_RELAY_ROUTES: Readonly<Record<string, readonly ('GET' | 'POST')[]>>;
export declare const DEFAULT_RELAY_MAX_BODY_BYTES: number;
export declare const DEFAULT_RELAY_MAX_RESPONSE_BYTES: number;
export declare const DEFAULT_RELAY_TIMEOUT_MS: number;
export declare const DEFAULT_RELAY_BODY_TIMEOUT_MS: number;

export interface AppleRelayOptions {
  /**
   * Decides whether the caller may reach Apple: `true` forwards, anything else is answered 403 before the body is
   * read. Called for every request; use the backend's own administrator session check. A throw is answered 500.
   */
  authorize(req: RelayRequest): boolean | Promise<boolean>;
  /** Where the relay is mounted (default `/apple-relay`). */
  path?: string;
  /** Apple's API base (default https://vpp.itunes.apple.com/mdm/v2; the simulator's `${url}/mdm/v2` in tests). */
  appleBaseUrl?: string;
  /** The fetch used to reach Apple (default globalThis.fetch). */
  fetch?: typeof globalThis.fetch;
  /** Largest request body forwarded (default 1 MiB; larger: 413). */
  maxBodyBytes?: number;
  /** Largest answer relayed (default 16 MiB; larger: 502). */
  maxResponseBytes?: number;
  /** Longest a forwarded request may take, answer included (default 60 s; then 504). */
  timeoutMs?: number;
  /** Longest the caller may take to send its body (default 10 s; then 408). */
  bodyTimeoutMs?: number;
  /** Where failures are reported, one line each, never with the Authorization header (default console.error). */
  onError?(error: Error & { code?: string }): void;
}

/**
 * A `(req, res, next?)` handler for `http.createServer` or Express-style routers that forwards the engine's requests
 * from a browser console to Apple: only Apple's API paths and methods, with query, `Authorization`, `Content-Type`
 * and body; Apple's status, `Content-Type`, `Retry-After` and body come back unchanged.
 */
export declare function createAppleRelay(
  options: AppleRelayOptions,
): (req: RelayRequest, res: RelayResponse, next?: () => void) => void;
