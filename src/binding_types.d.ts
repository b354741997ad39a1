// ---------------------------------------------------------------------------
// vpp-license-engine — the JavaScript contract of the wasm engine.
// Every value crossing the boundary is plain JSON-compatible data; every union
// is discriminated by `type` (inputs, outputs, events) or `op` (persist ops).
// Times are Unix milliseconds (number). Request ids are safe integers.
// ---------------------------------------------------------------------------

/** Identity this MDM writes into Apple's client config (`mdmInfo`) to claim a location. */
export interface MdmInfo {
  /** Stable unique id of this MDM installation (e.g. a UUID). Compared on every response. */
  id: string;
  /** Human-readable product name shown to other MDMs ("Acme MDM"). */
  name: string;
  /** Free-form metadata (version, host name). */
  metadata: string;
}

export interface EngineConfig {
  mdmInfo: MdmInfo;
  /** URL of Apple's `GET /service/config`. Default `https://vpp.itunes.apple.com/mdm/v2/service/config`.
   *  Every other URL comes from the service config answer (defaults derived from this one until then). */
  serviceConfigUrl?: string;
  /** Seed for backoff jitter (deterministic runs). Default 0. */
  seed?: number;
  /** Service config refresh interval. Default 300000 (5 min). */
  serviceConfigIntervalMs?: number;
  /** Delta sync interval. Default 1800000 (30 min). */
  deltaSyncIntervalMs?: number;
  /** Full refresh interval. Default 86400000 (24 h). */
  fullRefreshIntervalMs?: number;
  /** How often Reconcile runs on its own (it also runs on a `reconcile` input). Default 86400000 (24 h), at least 1000. */
  reconcileIntervalMs?: number;
  /** Page requests in flight per account during a sync, 1..=5. Default 5. */
  maxPagesInFlight?: number;
  /** First exponential backoff delay. Default 1000. */
  backoffBaseMs?: number;
  /** Backoff cap. Default 300000 (5 min). */
  backoffMaxMs?: number;
  /** Added to the 1 s window of `maxRequestPerSecond` to absorb network jitter (Apple counts arrivals). Default 250. */
  rateLimitMarginMs?: number;
  /** An association sent but never answered (crash, lost response) may have reached Apple: instead of sending it
   *  again, the engine waits this long, syncs, and sends only the pairs Apple does not show. Keep it longer than Apple
   *  takes to process an association, or one still in progress is sent again. Default 600000 (10 min). */
  unconfirmedSettleMs?: number;
  /** Coalescing: license work (associations, releases, revokes, user creation) from inputs that arrive close together
   *  is planned and sent as if it had arrived in one input. The first change opens a window; work waits at most this
   *  long for more to join it (a steady trickle of facts costs one request per window instead of one per fact).
   *  Work that already fills a request goes at once; 0 = plan and send at once. 0..=60000. Default 5000. */
  coalesceMs?: number;
  /** The window closes early once no new license work has arrived for this long, so a lone change leaves after it.
   *  Values above `coalesceMs` act as `coalesceMs`. Default 1000. */
  coalesceQuietMs?: number;
  /** Where Apple should POST notifications, and the bearer secret it must send (generate it with a CSPRNG).
   *  Without it the engine relies on `/status` polling alone. The URL gets `/<accountId>` appended. */
  notifications?: { url: string; authToken: string };
  /** A `lowLicenses` event fires when an app's available count drops to this or below. Default 5. */
  lowLicenseThreshold?: number;
  /** Send `notifyUser` for every released license. Default false (also settable at run time). */
  licenseRemovalNotification?: boolean;
}

// ----------------------------- inputs --------------------------------------

export type Input =
  | { type: "addAccount"; accountId: string; name: string; token: string }
  | { type: "editAccount"; accountId: string; name?: string; token?: string }
  | { type: "deleteAccount"; accountId: string }
  | { type: "testAccount"; accountId: string }
  | { type: "refresh"; accountId: string }
  | { type: "reclaimOwnership"; accountId: string }
  | { type: "setPolicy"; policy: AppPolicy }
  | { type: "removePolicy"; policyId: string }
  /** Targets entering or leaving a policy's scope (labels / groups changed). Leaving = reclaim now. */
  | { type: "updatePolicyTargets"; policyId: string; add?: string[]; remove?: string[] }
  // device and user facts from the MDM
  /** A device enrolled. Reporting what the engine knows already (a host replaying its facts at start-up) changes
   *  nothing and emits nothing. A re-enrollment (the device was wiped or retired and enrolled again) reports the
   *  licenses it holds with `licenseReady` again: a device the engine knew as retired, or a new `enrollmentId` (any
   *  string that changes with each enrollment, e.g. the enrollment's time). `updatePush` asks for `licenseReady` too.
   *  `userEnrollment: true` (a user-enrolled, BYOD device): Apple ignores device licenses for it, so no device policy
   *  sends its serial to Apple; each (device, app) a device policy wants gets one `assignmentFailed` saying to assign the
   *  app to the device's user instead, and device licenses it held from this MDM are released. Enrolled again without
   *  it, the device is eligible again. `platform` (Apple's spelling: "iOS" (iPhone and iPad), "macOS", "tvOS", "watchOS",
   *  "visionOS"): a device policy for an app whose `supportedPlatforms` lack it is refused per device with one
   *  `assignmentFailed`; any other value, or an app whose platforms Apple did not give, changes nothing. */
  | { type: "deviceEnrolled"; serialNumber: string; clientUserId?: string | null; sharedIpad?: boolean; enrollmentId?: string | null; userEnrollment?: boolean; platform?: string | null }
  | { type: "deviceRetired"; serialNumber: string }
  | { type: "appInstalled"; serialNumber: string; adamId: string }
  | { type: "appRemoved"; serialNumber: string; adamId: string }
  /**
   * The install failed (or was `cancelled`): the license is reclaimed and held. `reason: "licenseNotFound"` (the
   * device found no license, e.g. ASD error 9610) checks the pair with Apple first: associated again
   * (`licenseReady` follows) if Apple does not show it, kept with `assignmentFailed` if it does; a second
   * `licenseNotFound` for the pair within a day reclaims it with `assignmentFailed`. Other reasons count as none.
   */
  | { type: "installFailed"; serialNumber: string; adamId: string; cancelled?: boolean; reason?: string | null }
  | { type: "appConvertedToManaged"; serialNumber: string; adamId: string }
  /** The host wants to push an app update: `licenseReady` again for a device that holds the license. */
  | { type: "updatePush"; serialNumber: string; adamId: string }
  | { type: "userAdded"; clientUserId: string; email?: string | null; managedAppleId?: string | null }
  | { type: "userRemoved"; clientUserId: string }
  // administrator commands
  | { type: "reclaimLicense"; accountId: string; adamId: string; pricingParam: PricingParam; serialNumber?: string; clientUserId?: string }
  | { type: "reclaimApp"; accountId: string; adamId: string; pricingParam: PricingParam }
  | { type: "reclaimAccount"; accountId: string }
  | { type: "reconcile" }
  | { type: "cleanUp"; accountId: string }
  | { type: "setLicenseRemovalNotification"; enabled: boolean }
  | { type: "response"; id: number; status: number; headers: Record<string, string>; body: string }
  | { type: "networkError"; id: number; message: string }
  | { type: "timeout" };

export type LicenseType = "device" | "user";
export type PricingParam = "STDQ" | "PLUS";

export interface AppPolicy {
  policyId: string;
  /** Shown in errors, e.g. when deleting an account that a policy uses. */
  name: string;
  accountId: string;
  adamId: string;
  pricingParam: PricingParam;
  licenseType: LicenseType;
  /** Targets in scope: device serial numbers (device licenses) or client user ids (user licenses). */
  targets: string[];
}

// ----------------------------- outputs -------------------------------------

/** What `pollOutput` returns, one at a time; `pollOutputs` returns them in batches, the `timeout` last in the last one. */
export type Output =
  | RequestOutput
  | { type: "event"; event: EngineEvent }
  | { type: "persist"; ops: PersistOp[] }
  | { type: "timeout"; at: number };

/** An HTTP call for the host to perform, then answer with a `response` or `networkError` input of the same id. */
export interface RequestOutput {
  type: "request";
  id: number;
  /** `null` for account-less calls (service config). */
  accountId: string | null;
  /** What the call is for, for logs: "serviceConfig", "clientConfig", "claimOwnership", "assetsPage", ... */
  purpose: string;
  method: "GET" | "POST";
  url: string;
  /** Includes `Authorization: Bearer <sToken>` for account calls: never log headers. */
  headers: Record<string, string>;
  body: string | null;
}

export type PersistOp =
  | { op: "put"; key: string; value: unknown }
  | { op: "delete"; key: string };

/** A record as read back from the store, for `Engine.restore`. */
export interface StoredRecord { key: string; value: unknown }

/**
 * A record whose value is the JSON text a store kept (`store.load({ json: true })` of the SQLite and PostgreSQL stores):
 * `Engine.restore` and `Engine.adopt` read the text straight into the engine's records, without a JavaScript object or
 * a JSON tree per record — the faster restart of a large store.
 */
export interface StoredRecordJson { key: string; json: string }

/**
 * Where one account's records and (unless `accountKeyRanges(accountId, false)`) the records of no account are
 * stored (`accountKeyRanges`): a record is one of
 * them when its key is in `keys`, starts with one of `prefixes` (each ends in `/`: the range from the prefix up to,
 * not including, the prefix with its last `/` turned into `0`), or starts with a `byValue` prefix and its value's
 * `field` is the account id (policies name their account only in their value).
 */
export interface AccountKeyRanges {
  keys: string[];
  prefixes: string[];
  byValue: { prefix: string; field: string }[];
}

export type AccountStatus =
  | "checking"        // reading client config / claiming
  | "syncing"         // a full refresh is running
  | "active"          // owned by us, in sync
  | "backingOff"      // Apple asked us to wait (Retry-After) or errors are being retried
  | "ownedByOtherMdm" // another MDM's mdmInfo: no requests until reclaimOwnership
  | "tokenInvalid";   // expired / revoked / rejected: no requests until the token is replaced

export type SyncKind = "full" | "delta";

export type EngineEvent =
  | { type: "accountStatusChanged"; accountId: string; status: AccountStatus; reason: string }
  | { type: "tokenExpiring"; accountId: string; thresholdDays: 30 | 15 | 7 | 1; expiresAt: number }
  | { type: "testResult"; accountId: string; ok: boolean; message: string; locationName: string | null }
  | { type: "ownershipLost"; accountId: string; ownerName: string; ownerId: string }
  | { type: "ownershipClaimed"; accountId: string }
  | { type: "syncStarted"; accountId: string; kind: SyncKind }
  | { type: "syncProgress"; accountId: string; kind: SyncKind; pagesDone: number; pagesTotal: number }
  | { type: "syncCompleted"; accountId: string; kind: SyncKind; assets: number; assignments: number; users: number }
  | { type: "backoff"; accountId: string | null; until: number; reason: string }
  | { type: "serviceConfigUpdated"; limits: Record<string, number> }
  | { type: "requestFailed"; accountId: string | null; purpose: string; errorNumber: number | null; message: string }
  /** Apple confirmed the license: send the install (or update) command now. */
  | { type: "licenseReady"; accountId: string; adamId: string; pricingParam: PricingParam; serialNumber: string | null; clientUserId: string | null }
  | { type: "licenseReleased"; accountId: string; adamId: string; pricingParam: PricingParam; serialNumber: string | null; clientUserId: string | null; reason: string }
  /** License removal notification is on: tell the device's user that this app's license was removed. */
  | { type: "notifyUser"; accountId: string; adamId: string; serialNumber: string | null; clientUserId: string | null }
  /**
   * Targets wait for want of licenses of this app: `shortBy` more are needed (sent again when it changes).
   * `shortBy: 0` says the shortfall is over: the counts grew (a purchase: `ASSET_COUNT` or a sync) or fewer
   * targets want the app, and the waiting targets are being assigned (`licenseReady` follows each confirmation).
   */
  | { type: "insufficientLicenses"; accountId: string; adamId: string; pricingParam: PricingParam; shortBy: number }
  | { type: "lowLicenses"; accountId: string; adamId: string; pricingParam: PricingParam; available: number; threshold: number }
  /** A user must accept the invitation (no Managed Apple ID): deliver `inviteUrl` to them. */
  | { type: "inviteUser"; accountId: string; clientUserId: string; email: string | null; inviteUrl: string }
  /**
   * Apple refused the pair (`errorNumber` and Apple's message), or (`errorNumber` null) a `licenseNotFound` install
   * failure: Apple shows the license (kept), or it was the second report within a day (released).
   */
  | { type: "assignmentFailed"; accountId: string; adamId: string; pricingParam: PricingParam; serialNumber: string | null; clientUserId: string | null; errorNumber: number | null; message: string };

// ----------------------------- read models ---------------------------------

export interface AccountView {
  accountId: string;
  name: string;
  status: AccountStatus;
  /** Human-readable explanation of `status` (hover text). */
  statusReason: string;
  orgName: string;
  locationName: string | null;
  countryCode: string | null;
  lastSyncedAt: number | null;
  tokenExpiresAt: number;
  /** Name of the MDM that holds the location when status is `ownedByOtherMdm`. */
  otherMdmName: string | null;
  /** Policies using this account (delete is refused while non-empty). */
  policyIds: string[];
}

export interface AppCountView {
  adamId: string;
  pricingParam: PricingParam;
  productType: "App" | "Book";
  /** The platforms Apple says the app supports ("iOS", "macOS", "tvOS", "watchOS", "visionOS"); empty when Apple did not say. */
  supportedPlatforms: string[];
  totalCount: number;
  assignedCount: number;
  availableCount: number;
  retiredCount: number;
  deviceAssignable: boolean;
  revocable: boolean;
  /** Free app or book: `totalCount` is 2147483647. */
  unlimited: boolean;
  /**
   * Licenses the targets waiting for this app lack, as the last plan of the whole account found
   * (0: nobody waits for want of licenses; back to 0 once a purchase lets them be assigned).
   */
  shortBy: number;
}

/** One app (or book) across every account that has it (`appTotals()`): the sums of its counts and each account's share. */
export interface AppTotalView {
  adamId: string;
  pricingParam: PricingParam;
  productType: "App" | "Book";
  /** The platforms Apple says the app supports; empty when Apple did not say. */
  supportedPlatforms: string[];
  /** Summed over the accounts; 2147483647 when the app is free (unlimited) in any of them. */
  totalCount: number;
  assignedCount: number;
  /** Summed over the accounts; 2147483647 when the app is free (unlimited) in any of them. */
  availableCount: number;
  retiredCount: number;
  unlimited: boolean;
  /** Each account's counts, by account id. */
  accounts: AppCountInAccount[];
}

/** One account's counts of an app, in an `AppTotalView`. */
export interface AppCountInAccount {
  accountId: string;
  totalCount: number;
  assignedCount: number;
  availableCount: number;
  retiredCount: number;
}

export interface AssignmentQuery {
  adamId?: string;
  serialNumber?: string;
  clientUserId?: string;
  /** Default 0. */
  offset?: number;
  /** Default 100, at most 10000. */
  limit?: number;
}

export interface AssignmentView {
  adamId: string;
  pricingParam: PricingParam;
  serialNumber: string | null;
  clientUserId: string | null;
}

export interface AssignmentPage { total: number; offset: number; items: AssignmentView[] }

/** One app (or book) of one account in the usage report (`appReport(accountId | null)`). */
export interface AppReportRow {
  accountId: string;
  adamId: string;
  pricingParam: PricingParam;
  productType: "App" | "Book";
  /** Licenses purchased (Apple's `totalCount`; 2147483647 when free). */
  totalCount: number;
  /** Assignments Apple holds that this instance made. */
  usedByUs: number;
  /** Assignments Apple holds that another MDM (or Apple Business Manager) made. */
  usedByOthers: number;
  /** Associations sent or awaited that Apple has not confirmed yet. */
  pending: number;
  /** Apple's `availableCount` as of the last sync. */
  availableCount: number;
  unlimited: boolean;
}

/** A page of `assignmentReport(accountId | null, query)`. */
export interface ReportPageQuery {
  /** The previous page's `next`; absent or null: the first page. Valid for the engine that gave it and the same accountId. */
  after?: string | null;
  /** Only this app's assignments (all editions unless `pricingParam` is given too). */
  adamId?: string | null;
  pricingParam?: PricingParam | null;
  /** Default 100, at most 10000. */
  limit?: number;
}

/** One assignment Apple holds, in the usage report. */
export interface AssignmentReportRow {
  accountId: string;
  adamId: string;
  pricingParam: PricingParam;
  serialNumber: string | null;
  clientUserId: string | null;
  /** Whether this instance made it (else another MDM or Apple Business Manager did). */
  ours: boolean;
  /** When this engine first saw Apple confirm it (Unix ms, whole seconds); null when unknown (stored by an older engine). */
  confirmedSince: number | null;
  /** The policy that wants it, if one does. */
  policyId: string | null;
}

/** Rows in account id, then target, then app order; `next` is the cursor of the following page (null: the last page),
 *  `total` the rows of the whole report (with the app filter) when this page was read. */
export interface AssignmentReportPage { rows: AssignmentReportRow[]; next: string | null; total: number }

/** When the engine next wants to be called, and why. `reason` is one of: "service config refresh", "Reconcile",
 *  "token expiry", "token expiry warning", "backoff ends", "rate limit window", "full refresh", "delta sync",
 *  "sync to confirm unanswered assignments", "event status poll", "coalescing" (license work is collecting in its
 *  window; see `coalesceMs`). */
export interface Wakeup { at: number; reason: string; accountId: string | null }

export interface EngineStats {
  requestsIssued: number;
  responsesHandled: number;
  /** Responses whose id the engine did not know (late, duplicated or forged): counted and dropped. */
  unknownResponses: number;
  requestsInFlight: number;
  /** Times a `now` far behind the engine's clock showed an earlier `now` was glitched ahead (deadlines re-derived). */
  clockRewinds: number;
}

export interface TokenInfo { orgName: string; expiresAt: number }

export interface PendingOperation {
  operationId: number;
  kind: "associate" | "disassociate" | "revoke" | "createUsers";
  /** Set once Apple accepted the request. */
  eventId: string | null;
  /** `unconfirmed`: an association sent without an answer, waiting for a sync to show what Apple made of it. */
  state: "queued" | "submitting" | "pending" | "unconfirmed";
  assets: number;
  targets: number;
  submittedAt: number | null;
  reason: string;
}

export interface LicenseExplanation {
  hasLicense: boolean;
  /** Why the target has or lacks a license of the app, in words. */
  reason: string;
}

/** What a change would do (`Engine.preview`), over everything, per account, or per app of an account. */
export interface PreviewFigures {
  /** Licenses that would be assigned. */
  assign: number;
  /** Licenses that would be released (reclaimed): ours, and other MDMs' by Clean Up. */
  release: number;
  /** Licenses the targets in scope would lack afterwards (see `AppCountView.shortBy`), where that changes. */
  shortBy: number;
  /** Of `release`, licenses another MDM assigned (Clean Up). */
  otherMdmReleased: number;
  /** Requests to Apple that would be sent (associate, disassociate, revoke, create users); an app counts each request that concerns it. */
  requests: number;
  /** Devices that would get or lose a license. */
  devices: number;
  /** Users that would get or lose a license. */
  users: number;
}

export interface AccountPreview {
  accountId: string;
  figures: PreviewFigures;
  /** Apple's rate limit (service config), requests per second. */
  maxRequestPerSecond: number;
  /** How long the account may not send yet (Retry-After, backoff). */
  waitMs: number;
  /** Why it may not send yet (or decide licenses), when it waits. */
  waitReason: string | null;
  /** About how long until its last request is sent: the wait, then the requests at the rate limit. */
  estimatedMs: number;
}

export interface AppPreview { accountId: string; adamId: string; pricingParam: PricingParam; figures: PreviewFigures }

export interface ReleaseReason { reason: string; count: number }

/** The answer of `Engine.preview(inputs, now)`: what applying the inputs would do. Nothing is changed or output. */
export interface PreviewReport {
  totals: PreviewFigures;
  /** The accounts the change touches, by id. */
  accounts: AccountPreview[];
  /** The apps with something to do, by account and app. */
  apps: AppPreview[];
  releasesByReason: ReleaseReason[];
  /** About how long until every account sent its last request (accounts send in parallel). */
  estimatedMs: number;
}

export interface ExplainQuery { adamId: string; pricingParam: PricingParam; serialNumber?: string; clientUserId?: string }
