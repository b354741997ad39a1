// The read endpoints: Get Assets, Get Assignments, Get Users (paged, versioned) and Get Events Status.
import { ApiError } from './errors.js';
import { page, readParams } from './query.js';
import { isActiveUser } from './state.js';

const PRICING = ['STDQ', 'PLUS'];

const ASSET_PARAMS = {
  pageIndex: 'int', productType: ['App', 'Book'], pricingParam: PRICING, revocable: 'bool', deviceAssignable: 'bool',
  maxAvailableCount: 'int', minAvailableCount: 'int', maxAssignedCount: 'int', minAssignedCount: 'int',
  adamId: 'string', unlimited: 'bool',
};
const ASSIGNMENT_PARAMS = {
  pageIndex: 'int', adamId: 'string', clientUserId: 'string', serialNumber: 'string', pricingParam: PRICING,
  sinceVersionId: 'string', excludeInactiveUsers: 'bool', includeUserState: 'bool',
};
const USER_PARAMS = { pageIndex: 'int', activeOnly: 'bool', retiredOnly: 'bool', clientUserId: 'string', sinceVersionId: 'string' };

/** Keeps the records whose `field` equals the parameter of the same name, when the parameter is given. */
function whereEqual(records, params, fields) {
  const given = fields.filter((f) => params[f] !== undefined);
  return given.length === 0 ? records : records.filter((r) => given.every((f) => r[f] === params[f]));
}

const within = (value, min, max) => (min === undefined || value >= min) && (max === undefined || value <= max);

/** UnlimitedResponseAsset: a free asset without availableCount, totalCount and retiredCount. */
function unlimitedAsset({ availableCount, totalCount, retiredCount, ...rest }) {
  return rest;
}

/**
 * `unlimited=true` → only free assets, in `unlimitedAssets`; `unlimited=false` → free assets left out;
 * absent → free assets among the others with totalCount 2147483647.
 */
export function getAssets(ctx, { org, query }) {
  const p = readParams(query, ASSET_PARAMS);
  const assets = whereEqual(org.assets, p, ['adamId', 'productType', 'pricingParam', 'revocable', 'deviceAssignable'])
    .filter((a) => p.unlimited === undefined || org.isUnlimited(a.adamId, a.pricingParam) === p.unlimited)
    .filter((a) => within(a.availableCount, p.minAvailableCount, p.maxAvailableCount) &&
      within(a.assignedCount, p.minAssignedCount, p.maxAssignedCount));
  const { items, fields } = page(assets, ctx.pageSize('assets'), p.pageIndex);
  const list = p.unlimited === true ? { unlimitedAssets: items.map(unlimitedAsset) } : { assets: items };
  return { ...list, ...fields, versionId: org.versionId('assets') };
}

/** The records of `resource`, or only those changed since `sinceVersionId` (unknown id → 9721). */
function recordsSince(org, resource, sinceVersionId) {
  if (sinceVersionId === undefined) return org.listed(resource);
  const changed = org.changedSince(resource, sinceVersionId);
  if (changed === null) throw new ApiError(9721);
  return changed;
}

function withUserState(org, assignment) {
  const user = assignment.clientUserId !== undefined && org.user(assignment.clientUserId);
  if (!user) return assignment;
  return user.idHash === undefined ? { ...assignment, userStatus: user.status } : { ...assignment, idHash: user.idHash, userStatus: user.status };
}

export function getAssignments(ctx, { org, query }) {
  const p = readParams(query, ASSIGNMENT_PARAMS);
  const inactive = (a) => {
    const user = a.clientUserId !== undefined && org.user(a.clientUserId);
    return Boolean(user) && !isActiveUser(user);
  };
  const matching = whereEqual(recordsSince(org, 'assignments', p.sinceVersionId), p, ['adamId', 'clientUserId', 'serialNumber', 'pricingParam']);
  const assignments = p.excludeInactiveUsers ? matching.filter((a) => !inactive(a)) : matching;
  const { items, fields } = page(assignments, ctx.pageSize('assignments'), p.pageIndex);
  const shown = p.includeUserState ? items.map((a) => withUserState(org, a)) : items;
  return { assignments: shown, ...fields, versionId: org.versionId('assignments') };
}

/** `activeOnly` → Registered and Associated users; `retiredOnly` → Retired users; both → 9602. */
export function getUsers(ctx, { org, query }) {
  const p = readParams(query, USER_PARAMS);
  if (p.activeOnly && p.retiredOnly) throw new ApiError(9602);
  const users = whereEqual(recordsSince(org, 'users', p.sinceVersionId), p, ['clientUserId'])
    .filter((u) => (!p.activeOnly || isActiveUser(u)) && (!p.retiredOnly || u.status === 'Retired'));
  const { items, fields } = page(users, ctx.pageSize('users'), p.pageIndex);
  return { users: items, ...fields, versionId: org.versionId('users') };
}

export function getStatus(ctx, { org, query }) {
  const { eventId } = readParams(query, { eventId: 'string' });
  if (eventId === undefined) throw new ApiError(9602);
  const status = ctx.events.status(org, eventId);
  if (!status) throw new ApiError(9708);
  return status;
}
