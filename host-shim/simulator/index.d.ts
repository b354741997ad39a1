// Apps and Books (formerly VPP) API simulator — public types. See README.md.

export type PricingParam = 'STDQ' | 'PLUS';
export type ProductType = 'App' | 'Book';
export type Platform = 'iOS' | 'macOS' | 'tvOS' | 'watchOS' | 'visionOS';
export type UserStatus = 'Registered' | 'Associated' | 'Retired' | 'Deleted';
export type Resource = 'assets' | 'assignments' | 'users';
export type NotificationType =
  | 'TEST_NOTIFICATION' | 'ASSET_MANAGEMENT' | 'USER_MANAGEMENT' | 'USER_ASSOCIATED' | 'ASSET_COUNT'
  | 'SUBSCRIPTION_MANAGEMENT' | 'SUBSCRIPTION_COUNT' | 'UNLIMITED_ASSET';

/** Service-config `limits` (any key → integer; Apple's example keys are listed). */
export interface Limits {
  maxAssets: number;
  maxUsers: number;
  maxNotificationLength: number;
  maxRevokeClientUserIds: number;
  maxClientUserIds: number;
  maxSerialNumbers: number;
  maxRevokeSerialNumbers: number;
  maxRequestPerSecond: number;
  maxSubscriptions: number;
  maxSubscriptionClientUserIds: number;
  maxMdmNameLength: number;
  maxMdmMetadataLength: number;
  maxMdmIdLength: number;
  [key: string]: number;
}

/** Apple's example limits (maxAssets 25, maxRequestPerSecond 15, …). */
export const DEFAULT_LIMITS: Readonly<Limits>;
/** `totalCount` of a free (unlimited) asset: 2147483647. */
export const UNLIMITED_COUNT: 2147483647;

export interface SimulatorOptions {
  /** Loopback address only: '127.0.0.1' (default), '::1' or 'localhost'. */
  host?: string;
  /** Default 0: any free port. */
  port?: number;
  /** Seed of all generated data and identifiers. Default 1. */
  seed?: number;
  /** Records per page of Get Assets / Assignments / Users. Default 1000. */
  pageSize?: number;
  /** Time until a submitted event completes. Default 2000. `Infinity`: only `completeEventsNow()` completes events. */
  eventDelayMs?: number;
  /** Overrides of the service-config limits. */
  limits?: Partial<Limits>;
  /** Clock (Unix ms) for token expiry, rate limiting and log times. Default `Date.now`. */
  now?: () => number;
  /** Delay before every response. Default 0. */
  latencyMs?: number;
  /**
   * The origin the service config advertises for the API (its `urls`), e.g. `https://vpp.itunes.apple.com` as Apple
   * does, for a host that reaches the simulator through a relay (`createAppleRelay`). Default: this server.
   */
  advertisedBaseUrl?: string;
  /** HTTP status of the 9622 (unknown token) answer: 401 (default) or 200, as Fleet observed Apple do. */
  invalidTokenStatus?: number;
  /** Enforce `limits.maxRequestPerSecond` per sToken (429 / 9646). Default true. */
  rateLimit?: boolean;
  /** Per notification delivery attempt. Default 5000. */
  notificationTimeoutMs?: number;
  /** Delivery attempts per notification. Default 3. */
  notificationAttempts?: number;
  /** Pause between delivery attempts. Default 1000. */
  notificationRetryDelayMs?: number;
  /** Request headers copied into each request log entry's `headers` (e.g. a client's instance id). Default none. */
  logHeaders?: string[];
}

export interface OrganizationOptions {
  /** Default: generated, like "ORG2009071600". */
  orgName?: string;
  /** Default: "PS01", "PS02", … */
  locationName?: string;
  /** Default "US". */
  countryCode?: string;
  /** Apps (default 12), of which the last `freeApps` (default 1) are free / unlimited. */
  apps?: number;
  freeApps?: number;
  /** Books (default 2; the second is the PLUS edition of the first). */
  books?: number;
  /** Device serial numbers of the fleet (default 300). */
  devices?: number;
  /** Users (default 50): about 70 % Associated, 20 % Registered, 10 % Retired. */
  users?: number;
  /** Share of devices holding each device-assignable app (default 0.5; users get fewer). */
  assignedFraction?: number;
  /** Token expiry, Unix ms. Default: one year from now. */
  expiresAt?: number;
  /** Default: generated 16-digit library id. */
  uId?: string;
  /** Default 'https://business.apple.com'. */
  websiteURL?: string;
  /** Default 'volumestore'. */
  defaultPlatform?: 'volumestore' | 'enterprisestore';
  /** As `Simulator.setPhantomAssociations` from the start. Default off. */
  phantomAssociations?: { serialNumbers?: string[]; fraction?: number };
  /** As `Simulator.setNotificationFlood` from the start. Default off. */
  notificationFlood?: Partial<NotificationFlood>;
}

export interface MdmInfo { id: string; name: string; metadata: string }

export interface Asset {
  adamId: string;
  assignedCount: number;
  availableCount: number;
  deviceAssignable: boolean;
  pricingParam: PricingParam;
  productType: ProductType;
  retiredCount: number;
  revocable: boolean;
  supportedPlatforms: Platform[];
  totalCount: number;
}

/** Exactly one of `clientUserId` and `serialNumber`. */
export type Assignment =
  | { adamId: string; pricingParam: PricingParam; clientUserId: string; serialNumber?: never }
  | { adamId: string; pricingParam: PricingParam; serialNumber: string; clientUserId?: never };

export interface User {
  clientUserId: string;
  email?: string;
  idHash?: string;
  inviteCode?: string;
  status: UserStatus;
}

export interface NewAsset {
  adamId: string;
  pricingParam?: PricingParam;
  productType?: ProductType;
  deviceAssignable?: boolean;
  revocable?: boolean;
  supportedPlatforms?: Platform[];
  totalCount?: number;
  retiredCount?: number;
  unlimited?: boolean;
}

export interface NewUser {
  clientUserId: string;
  email?: string;
  managedAppleId?: string;
  inviteCode?: string;
  idHash?: string;
  status?: UserStatus;
}

/** One location's live state. Getters return copies; change data through the methods (they bump versionIds). */
export interface Organization {
  /** The current sToken: base64 of JSON {token, expDate, orgName}; the whole string is the bearer value. `renewToken` replaces it. */
  readonly token: string;
  readonly orgName: string;
  readonly locationName: string;
  readonly countryCode: string;
  readonly uId: string;
  readonly websiteURL: string;
  readonly defaultPlatform: string;
  expiresAt: number;
  /** The current token was revoked: 9625. */
  revoked: boolean;
  /** The current token was invalidated: 9622, as for an unknown token. */
  invalidated: boolean;
  mdmInfo: MdmInfo | null;
  notification: { url: string; authToken: string } | null;
  notificationTypes: NotificationType[];
  /** The flood setting while asset events are notified as a flood (`setNotificationFlood`), else null. */
  readonly notificationFlood: NotificationFlood | null;
  /** Fixture: the generated device fleet's serial numbers (Apple keeps no device list). */
  serialNumbers: string[];

  readonly assets: Asset[];
  readonly assignments: Assignment[];
  readonly users: User[];
  /** Current versionId per resource (a new one is minted when a resource is read after a change). */
  readonly versionIds: Record<Resource, string>;

  asset(adamId: string, pricingParam?: PricingParam): Asset | undefined;
  isUnlimited(adamId: string, pricingParam: PricingParam): boolean;
  user(clientUserId: string): User | undefined;
  /** Whether Apple really holds the license (Get Assignments shows it), whatever it reported. */
  hasAssignment(assignment: Assignment): boolean;
  /** Pairs reported associated (COMPLETE, SUCCESS) without a license (`setPhantomAssociations`), until really associated or disassociated. */
  readonly phantomAssignments: Assignment[];
  assignmentsOf(target: { clientUserId: string } | { serialNumber: string }): Assignment[];
  versionId(resource: Resource): string;
  /**
   * What Get Assignments / Get Users page through: every record in order, one frozen array shared by the reads until
   * the resource changes (the `assignments` and `users` getters make a new array each time).
   */
  listed(resource: 'assignments'): readonly Assignment[];
  listed(resource: 'users'): readonly User[];
  /** Records changed after `versionId` (assignments or users), or null when the id is unknown for the resource. */
  changedSince(resource: 'assignments' | 'users', versionId: string): Assignment[] | User[] | null;

  addAsset(asset: NewAsset): Asset;
  /** Throws when fewer licenses would remain than are assigned, or for an unlimited asset. */
  adjustAssetCount(adamId: string, pricingParam: PricingParam, countDelta: number): Asset;
  /** Idempotent (false when already assigned); throws when the asset is unknown or has no license left. */
  addAssignment(assignment: Assignment): boolean;
  /** False when there was no such assignment. */
  removeAssignment(assignment: Assignment): boolean;
  addUser(user: NewUser): User;
  updateUser(clientUserId: string, patch: Partial<Omit<NewUser, 'clientUserId'>>): User;
}

export interface RequestLogEntry {
  /** Arrival time (the simulator clock). */
  at: number;
  method: string;
  path: string;
  query: Record<string, string>;
  /** The bearer value, or null when the header is missing or malformed. */
  token: string | null;
  /** null when the connection was dropped. */
  status: number | null;
  errorNumber: number | null;
  /** When the answer was written (the simulator clock); absent while held by the reply hook or when dropped. */
  answeredAt?: number;
  /** The eventId of an accepted associate / disassociate / revoke / user request (see `Simulator.event`). */
  eventId?: string;
  /** The request headers named in `logHeaders` that the request carried (lower-case names). */
  headers?: Record<string, string>;
  dropped?: true;
}

/** An asset or user event as submitted and as it stands now. */
export interface EventDetails {
  eventId: string;
  eventType: 'ASSOCIATE' | 'DISASSOCIATE' | 'REVOKE' | 'CREATE' | 'UPDATE' | 'RETIRE';
  eventStatus: 'PENDING' | 'COMPLETE' | 'FAILED';
  numRequested: number;
  numCompleted: number;
  /** Per error number, as `GET /status` reports them. */
  failures: unknown[];
  /** The validated request: `{assets, serialNumbers, clientUserIds}`, `{serialNumbers, clientUserIds}` (revoke) or `{users}`. */
  request: {
    assets?: { adamId: string; pricingParam: PricingParam }[];
    serialNumbers?: string[];
    clientUserIds?: string[];
    users?: NewUser[];
  };
}

export interface NotificationLogEntry {
  at: number;
  notificationId: string;
  notificationType: NotificationType;
  uId: string;
  url: string;
  /** 1-based; 0 for a dropped notification. */
  attempt: number;
  /** The receiver's HTTP status, or null. */
  status: number | null;
  /** Network error / timeout / "not contacted" reason, or null. */
  error: string | null;
  dropped?: true;
}

export interface FaultSpec {
  /** Only requests carrying this sToken. */
  token?: string;
  /** Only this path ('/assets' means '/mdm/v2/assets'). */
  path?: string;
  method?: string;
  /** Matching requests consumed (default 1; Infinity for a persistent fault). */
  count?: number;
  /** Answer this HTTP status (e.g. 503, 429, 500, or 200 with an errorNumber). */
  status?: number;
  /** `Retry-After` header: delta-seconds or an HTTP-date. */
  retryAfter?: string | number;
  /** Error body's number (default by status: 429→9646, 500→9603, 503→9729, 401→9601, …). */
  errorNumber?: number;
  /** Wait before answering (alone: a slow but otherwise normal response). */
  delayMs?: number;
  /** Destroy the connection without answering. */
  drop?: boolean;
}

export interface NotificationFaultSpec {
  token?: string;
  notificationType?: NotificationType;
  count?: number;
  /** Never send it (TEST_NOTIFICATION is never faulted). */
  drop?: boolean;
  /** Send it twice with the same notificationId. */
  duplicate?: boolean;
  delayMs?: number;
}

/** How asset events are notified in flood mode (`setNotificationFlood`); the defaults in brackets. */
export interface NotificationFlood {
  /** Assignments per notification, each notification of one app [100]; 1–100. */
  maxAssignments: number;
  /** Share of the notifications sent a second time, later, with the same notificationId [0.1]. */
  duplicateFraction: number;
  /** Every notification leaves at a random time within this many ms of the event's completion [300000]. */
  spreadMs: number;
}

export interface FaultHandle {
  readonly remaining: number;
  cancel(): void;
}

export interface Simulator {
  /** 'http://127.0.0.1:<port>' */
  readonly url: string;
  /** `${url}/mdm/v2/service/config`; its `urls` point back at this server. */
  readonly serviceConfigUrl: string;
  readonly requestLog: RequestLogEntry[];
  readonly notificationLog: NotificationLogEntry[];
  readonly limits: Limits;
  readonly organizations: Organization[];

  addOrganization(options?: OrganizationOptions): Organization;
  /** The location of a current or replaced (`renewToken`) sToken; throws for an unknown one. */
  organization(token: string): Organization;
  /** Another MDM takes the location over; null releases it. */
  setMdmInfo(token: string, info: MdmInfo | null): void;
  /** Later calls: 401 / 9621. */
  expireToken(token: string): void;
  /** Later calls: 401 / 9625. */
  revokeToken(token: string): void;
  /** Later calls: 9622 as for an unknown token (HTTP `invalidTokenStatus`), e.g. after a password change. */
  invalidateToken(token: string): void;
  /**
   * The location's token is downloaded again: returns the new sToken (`expiresAt` default one year from now); the old
   * one answers 401 / 9625 from then on. The location keeps its data, events, mdmInfo and notification configuration.
   * The token controls (expire, revoke, invalidate, renew) throw for a replaced token.
   */
  renewToken(token: string, options?: { expiresAt?: number }): string;
  /** For every paged resource, or one. */
  setPageSize(n: number, resource?: Resource): void;
  setLimits(limits: Partial<Limits>): void;
  setLatency(ms: number): void;
  setEventDelay(ms: number): void;
  /** Apple refuses the next `count` (default 1) association tasks that would get a license with `errorNumber`
   *  (default 9709) while its counts still show licenses (as right after a purchase or a license transfer). */
  refuseAssociations(token: string, options?: { count?: number; errorNumber?: number }): void;
  /**
   * "COMPLETE is not proof" (fleet#20449, #50909): associations completing from now on of a license to the devices
   * `serialNumbers`, and to `fraction` (0–1, seeded draw per task) of the other devices, are reported done (COMPLETE,
   * SUCCESS notification) but not made: Get Assignments lacks the pair and the counts do not move. Only device tasks
   * that would get a license. `null` ends it.
   */
  setPhantomAssociations(token: string, spec: { serialNumbers?: string[]; fraction?: number } | null): void;
  /**
   * Notification floods (Apple Developer Forums 724381): each associate / disassociate / revoke completing from now on
   * (COMPLETE at /status at once) is notified as one ASSET_MANAGEMENT notification per app of at most `maxAssignments`
   * assignments, each at a random time within `spreadMs`, a `duplicateFraction` of them twice with the same
   * notificationId. Unset fields take the defaults; `null` ends it.
   */
  setNotificationFlood(token: string, spec?: Partial<NotificationFlood> | null): void;
  /** Runs `fn` on the organization; its changes bump the affected versionIds. Returns what `fn` returns. */
  mutate<T>(token: string, fn: (org: Organization) => T): T;
  injectFault(spec: FaultSpec): FaultHandle;
  injectNotificationFault(spec: NotificationFaultSpec): FaultHandle;
  clearFaults(): void;
  /** Purchase (+) or refund/transfer (−) of licenses; sends ASSET_COUNT. Resolves when delivered. */
  purchase(token: string, adamId: string, countDelta: number, pricingParam?: PricingParam): Promise<void>;
  /** A Registered user accepts the invitation; sends USER_ASSOCIATED. Resolves when delivered. */
  acceptInvite(token: string, clientUserId: string): Promise<void>;
  /**
   * `hook(entry)` runs for each request once it is handled (effects applied, `entry.status` set), before the answer
   * is written; a returned promise holds the answer until it settles. `null` removes it. For crash tests: kill a
   * client after Apple accepted its request and before it reads the answer.
   */
  setReplyHook(hook: ((entry: RequestLogEntry) => void | Promise<unknown>) | null): void;
  /** An event by its eventId, or undefined. */
  event(eventId: string): EventDetails | undefined;
  /** Completes all pending events; resolves with how many, once their notifications are delivered. */
  completeEventsNow(): Promise<number>;
  notificationsSettled(): Promise<void>;
  /** Empties the request log and the notification log. */
  clearLog(): void;
  close(): Promise<void>;
}

export function startSimulator(options?: SimulatorOptions): Promise<Simulator>;

/** An sToken string (not registered with any simulator). `secret` defaults to random bytes. */
export function makeToken(options: { orgName: string; expiresAt: number; secret?: string }): string;

/** "2030-11-08T22:33:22+0000" */
export function formatAppleDate(ms: number): string;
