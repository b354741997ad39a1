// One organizational unit ("location", one sToken): its assets, assignments and users, and the versioning
// behind `versionId` / `sinceVersionId`.
//
// Versioning: every change increments an internal clock and stamps the changed records with it. A resource's
// `versionId` is minted lazily when it is read after a change and remembers the clock value at that moment,
// so `changedSince(resource, versionId)` returns exactly the records stamped later. Removed assignments
// leave no record (Apple documents no tombstones), so a delta never shows them.
//
// Assignments and users are kept as `{ data, version }` where `data` is the frozen object Apple's API shows:
// reads hand those out without copying, so paging a large organization stays cheap.

export const UNLIMITED_COUNT = 2147483647;
export const RESOURCES = ['assets', 'assignments', 'users'];
const ACTIVE_STATUSES = new Set(['Registered', 'Associated']);
const USER_STATUSES = new Set(['Registered', 'Associated', 'Retired', 'Deleted']);

export const assetKey = (adamId, pricingParam) => `${adamId}|${pricingParam}`;
export const isActiveUser = (user) => ACTIVE_STATUSES.has(user.status);

const assignmentKey = (a) =>
  `${assetKey(a.adamId, a.pricingParam)}|${a.clientUserId !== undefined ? `u:${a.clientUserId}` : `d:${a.serialNumber}`}`;

function publicAsset(a) {
  return {
    adamId: a.adamId,
    assignedCount: a.assignedCount,
    availableCount: a.totalCount - a.assignedCount,
    deviceAssignable: a.deviceAssignable,
    pricingParam: a.pricingParam,
    productType: a.productType,
    retiredCount: a.retiredCount,
    revocable: a.revocable,
    supportedPlatforms: [...a.supportedPlatforms],
    totalCount: a.totalCount,
  };
}

const publicAssignment = (a) => Object.freeze(
  a.clientUserId !== undefined
    ? { adamId: a.adamId, clientUserId: a.clientUserId, pricingParam: a.pricingParam }
    : { adamId: a.adamId, pricingParam: a.pricingParam, serialNumber: a.serialNumber });

function publicUser(u) {
  const user = { clientUserId: u.clientUserId };
  if (u.email !== undefined) user.email = u.email;
  if (u.idHash !== undefined) user.idHash = u.idHash;
  if (u.inviteCode !== undefined) user.inviteCode = u.inviteCode;
  user.status = u.status;
  return Object.freeze(user);
}

const USER_FIELDS = ['email', 'managedAppleId', 'status', 'inviteCode', 'idHash'];

function validTarget(a) {
  return (typeof a.clientUserId === 'string') !== (typeof a.serialNumber === 'string');
}

export class Organization {
  #assets = new Map(); // assetKey → mutable asset record
  #assignments = new Map(); // assignmentKey → { data, version }
  #users = new Map(); // clientUserId → { data, managedAppleId, version }
  #clock = 0;
  #changedAt = { assets: 0, assignments: 0, users: 0 };
  #minted = { assets: null, assignments: null, users: null };
  #versions = new Map(); // versionId → { resource, at }
  /** `listed`'s frozen arrays, dropped whenever their resource changes (`#touch`). */
  #lists = { assignments: null, users: null };
  #newVersionId;
  /** Association tasks still to refuse although licenses are available (`refuseAssociations`). */
  #refusals = { remaining: 0, errorNumber: 9709 };
  /** Device associations reported done without a license (`setPhantomAssociations`): `{serialNumbers, fraction, random}`. */
  #phantom = null;
  /** assignmentKey → pair Apple last reported associated although it holds no license for it. */
  #phantoms = new Map();

  /** The next `count` association tasks that would get a license are refused with `errorNumber` instead. */
  refuseAssociations(count, errorNumber) {
    this.#refusals = { remaining: count, errorNumber };
  }

  /** The error number to refuse one more association task with, if one is still to be refused. */
  takeRefusal() {
    if (this.#refusals.remaining <= 0) return undefined;
    this.#refusals.remaining--;
    return this.#refusals.errorNumber;
  }

  /**
   * From now on, associations of the devices `serialNumbers` (a Set), and of `fraction` of the other devices (drawn
   * from `random`), are reported done without assigning a license; `null` ends it.
   */
  setPhantomAssociations(spec) {
    this.#phantom = spec;
  }

  /**
   * True when this device association, which would get a license, is to be reported done without one; the pair is
   * then recorded in `phantomAssignments`.
   */
  takePhantom(assignment) {
    const p = this.#phantom;
    if (!p || assignment.serialNumber === undefined) return false;
    if (!p.serialNumbers.has(assignment.serialNumber) && !(p.fraction > 0 && p.random.chance(p.fraction))) return false;
    this.#phantoms.set(assignmentKey(assignment), publicAssignment(assignment));
    return true;
  }

  /**
   * @param {object} identity  token, orgName, locationName, countryCode, uId, expiresAt, websiteURL, defaultPlatform
   * @param {() => string} newVersionId  source of fresh versionId strings
   */
  constructor(identity, newVersionId) {
    /** The current sToken (`renewToken` replaces it). */
    this.token = identity.token;
    this.orgName = identity.orgName;
    this.locationName = identity.locationName;
    this.countryCode = identity.countryCode;
    this.uId = identity.uId;
    this.expiresAt = identity.expiresAt;
    this.websiteURL = identity.websiteURL;
    this.defaultPlatform = identity.defaultPlatform;
    /** The current token was revoked (9625). */
    this.revoked = false;
    /** The current token was invalidated (9622), e.g. the downloading account's password changed. */
    this.invalidated = false;
    this.mdmInfo = null;
    /** `{ url, authToken }` once notifications are configured through client config, else null. */
    this.notification = null;
    /** The notification types subscribed to (client config `notificationTypes`). */
    this.notificationTypes = [];
    /** `{maxAssignments, duplicateFraction, spreadMs}` while asset events are notified as a flood, else null. */
    this.notificationFlood = null;
    /** Fixture, not Apple state: serial numbers of the generated device fleet (Apple knows no device list). */
    this.serialNumbers = [];
    this.#newVersionId = newVersionId;
  }

  // ------------------------------------------------------------------ reads

  get assets() {
    return Array.from(this.#assets.values(), publicAsset);
  }

  /** Frozen assignment objects, in the order Get Assignments pages them. */
  get assignments() {
    return Array.from(this.#assignments.values(), (r) => r.data);
  }

  /** Frozen user objects, in the order Get Users pages them. */
  get users() {
    return Array.from(this.#users.values(), (r) => r.data);
  }

  /**
   * What Get Assignments / Get Users page through: the frozen records of `resource` ('assignments' or 'users') in order,
   * in one frozen array the reads share until the resource changes, so that a page of a large location costs a slice
   * rather than a copy of every record.
   */
  listed(resource) {
    if (!(resource in this.#lists)) throw new RangeError(`listed: 'assignments' or 'users', not ${resource}`);
    const records = resource === 'users' ? this.#users : this.#assignments;
    this.#lists[resource] ??= Object.freeze(Array.from(records.values(), (r) => r.data));
    return this.#lists[resource];
  }

  /** The current versionId of every resource. */
  get versionIds() {
    return Object.fromEntries(RESOURCES.map((r) => [r, this.versionId(r)]));
  }

  asset(adamId, pricingParam = 'STDQ') {
    const a = this.#assets.get(assetKey(adamId, pricingParam));
    return a && publicAsset(a);
  }

  /** True when the asset is free: Apple reports it with totalCount 2147483647 or in `unlimitedAssets`. */
  isUnlimited(adamId, pricingParam) {
    return this.#assets.get(assetKey(adamId, pricingParam))?.unlimited === true;
  }

  user(clientUserId) {
    return this.#users.get(clientUserId)?.data;
  }

  /** Whether Apple really holds the license (what Get Assignments shows), whatever it reported. */
  hasAssignment(a) {
    return this.#assignments.has(assignmentKey(a));
  }

  /**
   * Pairs Apple reported associated (COMPLETE, SUCCESS notification) without holding a license for them
   * (`setPhantomAssociations`), until the pair is really associated or disassociated.
   */
  get phantomAssignments() {
    return [...this.#phantoms.values()];
  }

  /** Assignments held by one user or device (`{clientUserId}` or `{serialNumber}`). */
  assignmentsOf(target) {
    const field = target.clientUserId !== undefined ? 'clientUserId' : 'serialNumber';
    return this.assignments.filter((a) => a[field] === target[field]);
  }

  /** The versionId describing the resource's current data set (a new one after every change). */
  versionId(resource) {
    const minted = this.#minted[resource];
    if (minted && minted.at >= this.#changedAt[resource]) return minted.id;
    const id = this.#newVersionId();
    this.#minted[resource] = { id, at: this.#clock };
    this.#versions.set(id, { resource, at: this.#clock });
    return id;
  }

  /** Assignments or users changed after `versionId` was issued; null when the id is unknown for the resource. */
  changedSince(resource, versionId) {
    const v = this.#versions.get(versionId);
    if (!v || v.resource !== resource || resource === 'assets') return null;
    const records = resource === 'users' ? this.#users : this.#assignments;
    const changed = [];
    for (const r of records.values()) if (r.version > v.at) changed.push(r.data);
    return changed;
  }

  // ------------------------------------------------------------------ changes

  /**
   * Adds an asset the organization owns. `unlimited: true` makes it a free asset (totalCount 2147483647).
   * @returns the asset as Get Assets shows it
   */
  addAsset({ adamId, pricingParam = 'STDQ', productType = 'App', deviceAssignable = productType === 'App',
    revocable = productType === 'App', supportedPlatforms = ['iOS'], totalCount = 0, retiredCount = 0, unlimited = false }) {
    const key = assetKey(adamId, pricingParam);
    if (this.#assets.has(key)) throw new Error(`asset ${adamId}/${pricingParam} already exists`);
    this.#assets.set(key, {
      adamId: String(adamId), pricingParam, productType, deviceAssignable, revocable,
      supportedPlatforms: [...supportedPlatforms], totalCount: unlimited ? UNLIMITED_COUNT : totalCount,
      assignedCount: 0, retiredCount, unlimited,
    });
    this.#touch('assets');
    return this.asset(adamId, pricingParam);
  }

  /** Purchase (+) or refund/transfer (−) of licenses. Throws when fewer licenses would remain than are assigned. */
  adjustAssetCount(adamId, pricingParam, countDelta) {
    const a = this.#requireAsset(adamId, pricingParam);
    if (a.unlimited) throw new Error(`asset ${adamId}/${pricingParam} is unlimited; its count cannot change`);
    if (a.totalCount + countDelta < a.assignedCount) {
      throw new RangeError(`asset ${adamId}/${pricingParam}: ${a.assignedCount} assigned, cannot go to ${a.totalCount + countDelta}`);
    }
    a.totalCount += countDelta;
    this.#touch('assets');
    return publicAsset(a);
  }

  /**
   * Assigns a license (`{adamId, pricingParam, clientUserId}` or `{…, serialNumber}`). Idempotent: an existing
   * assignment is left as is and `false` returned. Throws when the asset is unknown or has no license left.
   */
  addAssignment(a) {
    if (!validTarget(a)) throw new TypeError('an assignment has exactly one of clientUserId and serialNumber');
    const key = assignmentKey(a);
    if (this.#assignments.has(key)) return false;
    const asset = this.#requireAsset(a.adamId, a.pricingParam);
    if (asset.assignedCount >= asset.totalCount) throw new RangeError(`no license of ${a.adamId}/${a.pricingParam} available`);
    const data = publicAssignment(a);
    this.#phantoms.delete(key);
    asset.assignedCount++;
    if (this.#heldByInactiveUser(data)) asset.retiredCount++;
    this.#assignments.set(key, { data, version: this.#touch('assignments', 'assets') });
    return true;
  }

  /** Releases a license. Returns false when there was no such assignment. */
  removeAssignment(a) {
    const key = assignmentKey(a);
    this.#phantoms.delete(key);
    const record = this.#assignments.get(key);
    if (!record) return false;
    const asset = this.#assets.get(assetKey(record.data.adamId, record.data.pricingParam));
    asset.assignedCount--;
    if (this.#heldByInactiveUser(record.data)) asset.retiredCount--;
    this.#assignments.delete(key);
    this.#touch('assignments', 'assets');
    return true;
  }

  /** Registers a user record as Apple stores it (`status` defaults to Registered). */
  addUser({ clientUserId, status = 'Registered', ...fields }) {
    if (typeof clientUserId !== 'string' || clientUserId === '') throw new TypeError('clientUserId must be a non-empty string');
    const existing = this.#users.get(clientUserId);
    if (existing && isActiveUser(existing.data)) throw new Error(`user ${clientUserId} already exists`);
    return this.#putUser(clientUserId, { status, ...fields }, existing);
  }

  /** Changes a user's email, managedAppleId, status, inviteCode or idHash. */
  updateUser(clientUserId, patch) {
    const existing = this.#users.get(clientUserId);
    if (!existing) throw new Error(`unknown user ${clientUserId}`);
    const fields = { ...existing.data, managedAppleId: existing.managedAppleId };
    for (const field of USER_FIELDS) if (field in patch) fields[field] = patch[field];
    return this.#putUser(clientUserId, fields, existing);
  }

  // ------------------------------------------------------------------ internals

  #touch(...resources) {
    this.#clock++;
    for (const r of resources) {
      this.#changedAt[r] = this.#clock;
      if (r in this.#lists) this.#lists[r] = null;
    }
    return this.#clock;
  }

  #requireAsset(adamId, pricingParam) {
    const asset = this.#assets.get(assetKey(adamId, pricingParam));
    if (!asset) throw new Error(`unknown asset ${adamId}/${pricingParam}`);
    return asset;
  }

  #heldByInactiveUser(assignment) {
    const user = assignment.clientUserId !== undefined && this.#users.get(assignment.clientUserId);
    return Boolean(user) && !isActiveUser(user.data);
  }

  /**
   * Stores a user and stamps the change. When its status or idHash changed, the user's assignments change
   * too (their `userStatus`/`idHash`); when it became inactive (Retired/Deleted) or active again, they also
   * move in or out of the assets' retiredCount.
   */
  #putUser(clientUserId, fields, before) {
    if (!USER_STATUSES.has(fields.status)) throw new TypeError(`unknown user status ${fields.status}`);
    const data = publicUser({ ...fields, clientUserId });
    const wasActive = before === undefined || isActiveUser(before.data);
    const activityChanged = wasActive !== isActiveUser(data);
    const stateChanged = before === undefined || before.data.status !== data.status || before.data.idHash !== data.idHash;
    const held = stateChanged ? [...this.#assignments.values()].filter((r) => r.data.clientUserId === clientUserId) : [];
    const touched = ['users'];
    if (held.length > 0) touched.push('assignments');
    if (held.length > 0 && activityChanged) touched.push('assets');
    const version = this.#touch(...touched);
    this.#users.set(clientUserId, { data, managedAppleId: fields.managedAppleId, version });
    for (const r of held) {
      r.version = version;
      if (activityChanged) this.#assets.get(assetKey(r.data.adamId, r.data.pricingParam)).retiredCount += isActiveUser(data) ? -1 : 1;
    }
    return data;
  }
}
