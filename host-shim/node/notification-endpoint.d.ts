/**
 * The part of Node's `http.IncomingMessage` (or an Express request) the handler uses: declared here so the
 * types need no `@types/node`; an `IncomingMessage` satisfies it.
 */
export interface NotificationRequest {
  readonly method?: string | undefined;
  /** The connection: errors are reported once per connection. */
  readonly socket?: unknown;
  readonly url?: string | undefined;
  /** Express: the URL before a mount path was stripped from `url`. */
  readonly originalUrl?: string | undefined;
  readonly headers: { readonly [name: string]: string | string[] | undefined };
  /** True when a body parser already read the stream; `body` is then used. */
  readonly readableEnded: boolean;
  readonly body?: unknown;
  on(event: string, listener: (...args: any[]) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

/** The part of Node's `http.ServerResponse` the handler uses. */
export interface NotificationResponse {
  readonly headersSent: boolean;
  writeHead(statusCode: number, headers?: Record<string, string>): unknown;
  end(): unknown;
}

/** What the endpoint needs of a Driver (`Driver` from `vpp-license-engine/host` has it). */
export interface NotificationDriver {
  notification(accountId: string, authorization: string | null, body: string): number;
}

export interface NotificationHandlerOptions {
  driver: NotificationDriver;
  /**
   * The engine's `notifications.authToken`. A request whose Authorization header is not `Bearer <authToken>` is
   * answered 401 from its headers (compared in constant time), and its body is never read. Required.
   */
  authToken: string;
  /** Path prefix: Apple POSTs to `<path>/<accountId>` (URL-encoded). Default `/apple/notifications`. */
  path?: string;
  /** Larger bodies are answered 413 without reaching the engine. Default 1 MiB. */
  maxBodyBytes?: number;
  /** A body not complete this long after the handler starts reading it is answered 408. Default 10000. */
  bodyTimeoutMs?: number;
  /** Authenticated requests read and handled at once; more are answered 503 at once (Apple retries). Default 32. */
  maxConcurrentRequests?: number;
  /**
   * Failures, at most one per connection: a throwing driver, a client that went away mid-body, a body timeout (and,
   * from startNotificationServer, a header timeout or malformed request). Never given the Authorization header.
   * Default: one line on console.error (message and code, no stack).
   */
  onError?: (error: unknown) => void;
}

/**
 * Answers Apple's notification POSTs: `POST <path>/<accountId>` → `driver.notification(accountId,
 * Authorization header or null, raw body)`, answered with the returned status and an empty body. Other paths:
 * 404, or `next()` when a router (Express) passes one; other methods: 405; an account id that is not valid
 * percent-encoding: 400; an Authorization header other than `Bearer <authToken>`: 401, before the body is read;
 * more than `maxConcurrentRequests` at once: 503; bodies over `maxBodyBytes`: 413; a body not received within
 * `bodyTimeoutMs`: 408. Each of these closes the connection without reading the rest of the body. When the driver
 * throws: 404 for an `UNKNOWN_ACCOUNT` engine error, 400 for another engine error (a retry would fail the same
 * way), 503 otherwise (stopped driver: Apple retries). Mount it before body parsers, or let them leave a string /
 * Buffer / parsed JSON in `req.body` (the bearer is checked first all the same). On your own server, bound the
 * time headers may take too (`server.headersTimeout`, `server.requestTimeout`): startNotificationServer does.
 */
export declare function createNotificationHandler(
  options: NotificationHandlerOptions,
): (req: NotificationRequest, res: NotificationResponse, next?: (error?: unknown) => void) => void;

export interface NotificationServerOptions extends NotificationHandlerOptions {
  /** Default `127.0.0.1`. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** A connection whose request headers are not complete this long after it opened is answered 408 and closed. Default 10000. */
  headersTimeoutMs?: number;
  /** Open connections at most (Node's `server.maxConnections`); more are closed at once. Default 256. */
  maxConnections?: number;
}

export interface NotificationServer {
  /** `http://<host>:<port><path>`: the base URL for the engine's `notifications.url` (behind TLS in production). */
  readonly url: string;
  /** Stops listening; resolves once open connections have ended. */
  close(): Promise<void>;
}

/** An `http` server listening with createNotificationHandler; resolves once it listens. */
export declare function startNotificationServer(options: NotificationServerOptions): Promise<NotificationServer>;

/** `/apple/notifications` */
export declare const DEFAULT_NOTIFICATION_PATH: string;
/** 1 MiB */
export declare const DEFAULT_MAX_BODY_BYTES: number;
/** 10000 */
export declare const DEFAULT_HEADERS_TIMEOUT_MS: number;
/** 10000 */
export declare const DEFAULT_BODY_TIMEOUT_MS: number;
/** 32 */
export declare const DEFAULT_MAX_CONCURRENT_REQUESTS: number;
/** 256 */
export declare const DEFAULT_MAX_CONNECTIONS: number;
