// The simulator: composes organizations, the HTTP server, events, notifications and faults, and offers the
// controls tests use (`startSimulator` is the entry point).
import { DEFAULT_LIMITS } from './config-api.js';
import { populate, generateIdentity } from './data.js';
import { EventQueue } from './events.js';
import { FaultList, validateRequestFault } from './faults.js';
import { floodDeliveries, readFlood } from './flood.js';
import { eventNotifications, isLoopbackHost, Notifier } from './notifications.js';
import { Random } from './random.js';
import { RateLimiter } from './ratelimit.js';
import { routePath } from './routes.js';
import { createServer } from './server.js';
import { Sleeper } from './sleeper.js';
import { Organization, RESOURCES } from './state.js';
import { makeToken } from './token.js';

const DAY_MS = 86400000;

function checkPageSize(n) {
  if (!(Number.isInteger(n) && n > 0)) throw new RangeError(`page size must be a positive integer, got ${n}`);
}

class Simulator {
  #ctx;
  #server;
  #rng;
  #runtimeRng;
  /** Draws which device associations become phantoms (`setPhantomAssociations` with a fraction). */
  #phantomRng;
  #orgCount = 0;
  #host;
  /** Identifiers for users that become Registered or Associated. */
  #fresh = {
    inviteCode: () => this.#runtimeRng.hex(32),
    idHash: () => this.#runtimeRng.base64(20),
  };

  constructor(options) {
    const { host = '127.0.0.1', seed = 1, pageSize = 1000, eventDelayMs = 2000, limits = {}, now = Date.now,
      latencyMs = 0, invalidTokenStatus = 401, rateLimit = true, notificationTimeoutMs = 5000, advertisedBaseUrl = null,
      notificationAttempts = 3, notificationRetryDelayMs = 1000, logHeaders = [] } = options;
    if (!Array.isArray(logHeaders) || !logHeaders.every((h) => typeof h === 'string')) {
      throw new TypeError('logHeaders must be an array of header names');
    }
    if (!isLoopbackHost(host)) throw new Error(`the simulator binds to loopback only, not ${host}`);
    checkPageSize(pageSize);
    this.#rng = new Random(seed);
    this.#runtimeRng = this.#rng.fork('runtime');
    this.#phantomRng = this.#rng.fork('phantom-associations');
    const newId = () => this.#runtimeRng.uuid();
    const floodRng = this.#rng.fork('notification-flood');
    const limiter = new RateLimiter();
    const pageSizes = Object.fromEntries(RESOURCES.map((r) => [r, pageSize]));
    const notifier = new Notifier({ now, newId, timeoutMs: notificationTimeoutMs, attempts: notificationAttempts,
      retryDelayMs: notificationRetryDelayMs });
    if (advertisedBaseUrl !== null && !/^https?:\/\/[^/]+$/.test(String(advertisedBaseUrl))) {
      throw new TypeError(`advertisedBaseUrl must be an origin such as https://vpp.itunes.apple.com, not ${JSON.stringify(advertisedBaseUrl)}`);
    }
    this.#ctx = {
      baseUrl: null,
      advertisedBaseUrl,
      now,
      limits: { ...DEFAULT_LIMITS, ...limits },
      pageSizes,
      pageSize: (resource) => pageSizes[resource],
      organizations: new Map(),
      replacedTokens: new Map(),
      requestLog: [],
      logHeaders: logHeaders.map((h) => h.toLowerCase()),
      replyHook: null,
      faults: new FaultList(['token', 'path', 'method']),
      sleeper: new Sleeper(),
      latencyMs,
      invalidTokenStatus,
      rateLimited: (token, at) => rateLimit && limiter.hit(token, at, this.#ctx.limits.maxRequestPerSecond),
      notifier,
      events: new EventQueue({
        delayMs: eventDelayMs,
        newId,
        fresh: this.#fresh,
        onComplete: (event, outcome) => {
          const { org } = event;
          const { type, payloads } = eventNotifications(event, outcome);
          if (type === 'ASSET_MANAGEMENT' && org.notificationFlood) {
            return notifier.publishScheduled(org, type, floodDeliveries(event, outcome, org.notificationFlood, floodRng));
          }
          return notifier.publish(org, type, payloads);
        },
      }),
      acceptInvitation: (inviteCode) => this.#acceptInvitation(inviteCode),
    };
    this.#server = createServer(this.#ctx);
    this.#host = host;
  }

  /** Starts a simulator listening on loopback (`port` 0 = any free port). */
  static async start(options) {
    const sim = new Simulator(options);
    await sim.#listen(options.port ?? 0);
    return sim;
  }

  async #listen(port) {
    await new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, this.#host, resolve);
    });
    const { address, port: bound } = this.#server.address();
    const hostText = address.includes(':') ? `[${address}]` : address;
    this.#ctx.baseUrl = `http://${hostText}:${bound}`;
  }

  get url() {
    return this.#ctx.baseUrl;
  }

  get serviceConfigUrl() {
    return `${this.url}/mdm/v2/service/config`;
  }

  /**
   * Every request: { at, method, path, query, token, status, errorNumber, answeredAt?, eventId?, headers?, dropped? }
   * (`eventId` for an accepted asset or user request, `headers` when `logHeaders` names some).
   */
  get requestLog() {
    return this.#ctx.requestLog;
  }

  /** Every notification delivery attempt: { at, notificationId, notificationType, uId, url, attempt, status, error, dropped? }. */
  get notificationLog() {
    return this.#ctx.notifier.log;
  }

  get limits() {
    return { ...this.#ctx.limits };
  }

  get organizations() {
    return [...this.#ctx.organizations.values()];
  }

  /** Registers a location with generated content and returns it (`org.token` is its sToken). */
  addOrganization(options = {}) {
    const { phantomAssociations = null, notificationFlood = null } = options;
    const phantoms = phantomAssociations === null ? null : this.#readPhantoms(phantomAssociations);
    const flood = notificationFlood === null ? null : readFlood(notificationFlood);
    const index = this.#orgCount++;
    const rng = this.#rng.fork(`organization-${index}`);
    const generated = generateIdentity(rng, index);
    const { orgName = generated.orgName, locationName = generated.locationName, countryCode = 'US',
      apps = 12, books = 2, devices = 300, users = 50, assignedFraction = 0.5, freeApps = 1,
      expiresAt = this.#ctx.now() + 365 * DAY_MS, uId = generated.uId,
      websiteURL = 'https://business.apple.com', defaultPlatform = 'volumestore' } = options;
    const token = makeToken({ orgName, expiresAt, secret: generated.secret });
    const org = new Organization({ token, orgName, locationName, countryCode, uId, expiresAt, websiteURL, defaultPlatform },
      () => this.#runtimeRng.uuid());
    const emailDomain = `${orgName.toLowerCase()}.example.com`;
    org.serialNumbers = populate(org, rng, { apps, books, freeApps, devices, users, assignedFraction, emailDomain }).serialNumbers;
    this.#ctx.organizations.set(token, org);
    org.setPhantomAssociations(phantoms);
    org.notificationFlood = flood;
    return org;
  }

  /**
   * The organization of an sToken, current or replaced by `renewToken` (its live state: assets, assignments, users,
   * mdmInfo, versionIds, …).
   */
  organization(token) {
    const org = this.#ctx.organizations.get(token) ?? this.#ctx.replacedTokens.get(token);
    if (!org) throw new Error('unknown sToken');
    return org;
  }

  /** The organization whose current sToken is `token`: the token controls refuse one `renewToken` replaced. */
  #holderOf(token) {
    const org = this.organization(token);
    if (org.token !== token) throw new Error('this sToken was replaced by renewToken; use the current one (org.token)');
    return org;
  }

  /** Another MDM takes the location over (`info` = {id, name, metadata}), or `null` releases it. */
  setMdmInfo(token, info) {
    this.organization(token).mdmInfo = info === null ? null : { id: info.id, name: info.name, metadata: info.metadata };
  }

  /** From now on, the token's calls fail with 401 / 9621. */
  expireToken(token) {
    const org = this.#holderOf(token);
    org.expiresAt = Math.min(org.expiresAt, this.#ctx.now());
  }

  /** From now on, the token's calls fail with 401 / 9625. */
  revokeToken(token) {
    this.#holderOf(token).revoked = true;
  }

  /**
   * From now on, the token's calls fail with 9622 as an unknown token's do (HTTP `invalidTokenStatus`): Apple no
   * longer knows it, as when the password of the account that downloaded it changed.
   */
  invalidateToken(token) {
    this.#holderOf(token).invalidated = true;
  }

  /**
   * An administrator downloads the location's token again: returns the new sToken (same orgName, `expiresAt`
   * default one year from now); the old one is revoked (9625). Everything else of the location stays: assets,
   * assignments, users, mdmInfo, the notification configuration. Works on a revoked, invalidated or expired token.
   */
  renewToken(token, { expiresAt = this.#ctx.now() + 365 * DAY_MS } = {}) {
    const org = this.#holderOf(token);
    const renewed = makeToken({ orgName: org.orgName, expiresAt, secret: this.#runtimeRng.base64(96) });
    // The location keeps its place in `organizations`.
    this.#ctx.organizations = new Map([...this.#ctx.organizations].map(([t, o]) => [t === token ? renewed : t, o]));
    this.#ctx.replacedTokens.set(token, org);
    Object.assign(org, { token: renewed, expiresAt, revoked: false, invalidated: false });
    return renewed;
  }

  /** Server-controlled page size, for every paged resource or one of 'assets', 'assignments', 'users'. */
  setPageSize(n, resource) {
    checkPageSize(n);
    if (resource !== undefined && !RESOURCES.includes(resource)) throw new RangeError(`unknown resource ${resource}`);
    for (const r of resource === undefined ? RESOURCES : [resource]) this.#ctx.pageSizes[r] = n;
  }

  /** Changes service-config limits (Apple says they change without notice). */
  setLimits(limits) {
    this.#ctx.limits = { ...this.#ctx.limits, ...limits };
  }

  /** Delay added before every response. */
  setLatency(ms) {
    this.#ctx.latencyMs = ms;
  }

  /** Delay before events submitted from now on complete (Infinity: only completeEventsNow completes them). */
  setEventDelay(ms) {
    this.#ctx.events.setDelay(ms);
  }

  /**
   * Makes Apple refuse the next `count` association tasks of the location that would get a license, with
   * `errorNumber` (default 9709, "not enough assets") in the event's failures and notification, while its counts
   * still show licenses available — as right after a purchase or a license transfer.
   */
  refuseAssociations(token, { count = 1, errorNumber = 9709 } = {}) {
    if (!(Number.isInteger(count) && count > 0)) throw new RangeError('refuseAssociations: count must be a positive integer');
    if (!Number.isInteger(errorNumber)) throw new TypeError('refuseAssociations: errorNumber must be an integer');
    this.organization(token).refuseAssociations(count, errorNumber);
  }

  /**
   * Associations completing from now on of a license to the devices `serialNumbers`, and to `fraction` (0–1,
   * drawn per task) of the other devices, are reported done — COMPLETE at /status, SUCCESS in the notification —
   * but not made: Get Assignments does not show them and the counts do not move (fleet#20449: a non-existent serial
   * completes; #50909: the install then fails for want of a license). Only tasks that would get a license are
   * affected. `org.hasAssignment(pair)` says whether Apple really holds a pair; `org.phantomAssignments` lists
   * those reported but not held. `null` ends it.
   */
  setPhantomAssociations(token, spec) {
    const org = this.organization(token);
    org.setPhantomAssociations(spec === null ? null : this.#readPhantoms(spec));
  }

  /** A phantom-association setting as the organization keeps it; throws for a malformed one. */
  #readPhantoms({ serialNumbers = [], fraction = 0 } = {}) {
    if (!Array.isArray(serialNumbers) || !serialNumbers.every((s) => typeof s === 'string')) {
      throw new TypeError('phantom associations: serialNumbers must be an array of strings');
    }
    if (!(typeof fraction === 'number' && fraction >= 0 && fraction <= 1)) throw new RangeError(`phantom associations: fraction must be within 0..1, got ${fraction}`);
    return { serialNumbers: new Set(serialNumbers), fraction, random: this.#phantomRng };
  }

  /**
   * Notification floods (Apple Developer Forums 724381): from now on, each completed associate, disassociate or
   * revoke of the location — COMPLETE at /status at once — is notified as one ASSET_MANAGEMENT notification per app
   * with at most `maxAssignments` (100) assignments each, every one sent at a random time within `spreadMs` (5
   * minutes) of the completion, and `duplicateFraction` (0.1) of them sent again later with the same
   * notificationId. Times are drawn from the seed. `null` ends it (for events completing from then on).
   */
  setNotificationFlood(token, spec) {
    this.organization(token).notificationFlood = spec === null ? null : readFlood(spec);
  }

  /** Runs `fn(org)` to change the organization's data (each change bumps the affected versionIds). */
  mutate(token, fn) {
    return fn(this.organization(token));
  }

  /**
   * Makes the next `count` matching requests (by token, path, method) answer `status` (with `errorNumber`,
   * `retryAfter`), wait `delayMs` first, or have their connection destroyed (`drop`).
   */
  injectFault(spec) {
    validateRequestFault(spec);
    return this.#ctx.faults.add(spec.path === undefined ? spec : { ...spec, path: routePath(spec.path) });
  }

  /** Makes the next `count` matching notifications (by token, notificationType) be dropped, duplicated or delayed. */
  injectNotificationFault(spec) {
    if (!spec.drop && !spec.duplicate && spec.delayMs === undefined) throw new TypeError('injectNotificationFault needs drop, duplicate or delayMs');
    return this.#ctx.notifier.faults.add(spec);
  }

  clearFaults() {
    this.#ctx.faults.clear();
    this.#ctx.notifier.faults.clear();
  }

  /** A purchase (+) or refund/transfer (−) of licenses; sends ASSET_COUNT. Unknown assets are bought as new apps. */
  purchase(token, adamId, countDelta, pricingParam = 'STDQ') {
    const org = this.organization(token);
    if (org.asset(adamId, pricingParam)) org.adjustAssetCount(adamId, pricingParam, countDelta);
    else if (countDelta > 0) org.addAsset({ adamId, pricingParam, totalCount: countDelta });
    else throw new RangeError(`no asset ${adamId}/${pricingParam} to take licenses from`);
    return this.#ctx.notifier.publish(org, 'ASSET_COUNT', [{ adamId: String(adamId), countDelta, pricingParam }]);
  }

  /** The user accepts the invitation: Registered → Associated with an idHash; sends USER_ASSOCIATED. */
  acceptInvite(token, clientUserId) {
    const org = this.organization(token);
    const user = org.user(clientUserId);
    if (user?.status !== 'Registered') throw new Error(`user ${clientUserId} is not a Registered user`);
    const associated = org.updateUser(clientUserId, { status: 'Associated', idHash: this.#fresh.idHash() });
    return this.#ctx.notifier.publish(org, 'USER_ASSOCIATED', [{ associatedUsers: [associated] }]);
  }

  /**
   * `hook(entry)` is called for each request once it has been handled (its effects applied, `entry.status` set),
   * before its answer is written; a returned promise holds the answer until it settles. `null` removes it. For
   * tests that crash a client between Apple accepting a request and the client reading the answer.
   */
  setReplyHook(hook) {
    if (hook !== null && typeof hook !== 'function') throw new TypeError('setReplyHook takes a function or null');
    this.#ctx.replyHook = hook;
  }

  /**
   * An asset or user event as submitted: { eventId, eventType, eventStatus, numRequested, numCompleted, request }
   * (`request`: the validated assets, serialNumbers, clientUserIds or users), or undefined for an unknown id.
   */
  event(eventId) {
    return this.#ctx.events.describe(eventId);
  }

  /** Completes every pending event now; resolves with their number once their notifications are sent. */
  completeEventsNow() {
    return this.#ctx.events.completeAll();
  }

  /** Resolves when every notification sent so far is delivered or out of attempts. */
  notificationsSettled() {
    return this.#ctx.notifier.settled();
  }

  clearLog() {
    this.#ctx.requestLog.length = 0;
    this.#ctx.notifier.log.length = 0;
  }

  async close() {
    this.#ctx.events.close();
    this.#ctx.notifier.close();
    this.#ctx.sleeper.wakeAll();
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  async #acceptInvitation(inviteCode) {
    for (const org of this.#ctx.organizations.values()) {
      const user = org.users.find((u) => u.inviteCode === inviteCode && u.status === 'Registered');
      if (user) {
        await this.acceptInvite(org.token, user.clientUserId);
        return org.user(user.clientUserId);
      }
    }
    return undefined;
  }
}

/** Starts a simulator listening on loopback (`port` 0 = any free port). */
export function startSimulator(options = {}) {
  return Simulator.start(options);
}
