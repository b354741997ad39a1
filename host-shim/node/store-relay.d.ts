import type { LeaseStore } from '../store.js';
import type { RelayRequest, RelayResponse } from './apple-relay.js';

/** The default mount path: the console's store is `new RemoteStore({ baseUrl: origin + path })`. */
export declare const DEFAULT_STORE_RELAY_PATH: string;
/** The LeaseStore methods the relay serves (those a LeaseKeeper calls); the unfenced `apply` is refused. */
export declare const STORE_RELAY_METHODS: readonly string[];
export declare const DEFAULT_STORE_RELAY_MAX_BODY_BYTES: number;
export declare const DEFAULT_STORE_RELAY_BODY_TIMEOUT_MS: number;

export interface StoreRelayOptions {
  /** The backend's own LeaseStore, shared with its instances: PostgresStore (MemoryStore in tests). */
  store: LeaseStore;
  /**
   * Decides whether the caller may call `method` on the store: `true` goes on, anything else is answered 403 before
   * the body is read. Called for every request; use the backend's own administrator session check, and admit only
   * administrators who may hold the accounts' sTokens (`loadAccount` hands the browser an account's records). A throw
   * is answered 500.
   */
  authorize(req: RelayRequest, method: string): boolean | Promise<boolean>;
  /** Where the relay is mounted (default `/store-relay`). */
  path?: string;
  /** Largest request body (default 32 MiB: a persist output of a large sync fits; larger: 413). */
  maxBodyBytes?: number;
  /** Longest the caller may take to send its body (default 30 s; then 408). */
  bodyTimeoutMs?: number;
  /** Where failures are reported, one line each, never with record values (default console.error). */
  onError?(error: Error & { code?: string }): void;
}

/**
 * A `(req, res, next?)` handler for `http.createServer` or Express-style routers that serves the store to browser
 * consoles: `POST <path>/<method>` with body `{ "args": [...] }` (`Content-Type: application/json`) is answered
 * `{ "result": ... }`; a refusal `{ "error": { "code", "message" } }`: 400 bad JSON or arguments, 403 `apply` or not
 * authorized, 404 unknown method, 405 not POST, 415 not JSON, 500 the store failed, 503 the store cannot be reached
 * (the store's error goes to onError, never into the answer); 408 / 413 (empty) for a body too slow or too large.
 */
export declare function createStoreRelay(
  options: StoreRelayOptions,
): (req: RelayRequest, res: RelayResponse, next?: () => void) => void;
