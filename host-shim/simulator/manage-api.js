// Asset and user management endpoints: synchronous validation (HTTP 400 with Apple's 97xx numbers, after
// which nothing is processed), then an asynchronous event whose eventId is returned.
import { ApiError } from './errors.js';
import { readParams } from './query.js';
import { assetKey } from './state.js';

const PRICING = new Set(['STDQ', 'PLUS']);
const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

/** An optional list of non-empty strings (absent → []). */
function stringList(value) {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string' && v !== '')) throw new ApiError(9602);
  return value;
}

function checkCount(list, max, errorNumber) {
  if (list.length > max) throw new ApiError(errorNumber);
}

function checkUnique(keys, errorNumber) {
  if (new Set(keys).size !== keys.length) throw new ApiError(errorNumber);
}

/** `assets` of a ManageAssetsRequest; `pricingParam` defaults to STDQ (Apple's v1 default, unstated for v2). */
function readAssets(value) {
  if (value === undefined || value === null || (Array.isArray(value) && value.length === 0)) throw new ApiError(9718);
  if (!Array.isArray(value)) throw new ApiError(9602);
  return value.map((a) => {
    const adamId = typeof a?.adamId === 'number' ? String(a.adamId) : a?.adamId;
    const pricingParam = a?.pricingParam ?? 'STDQ';
    if (typeof adamId !== 'string' || adamId === '' || !PRICING.has(pricingParam)) throw new ApiError(9602);
    return { adamId, pricingParam };
  });
}

/** Known assets of the request that fail `allowed`; 400 with them in `errorInfo.assets`. */
function rejectAssets(org, assets, allowed, errorNumber) {
  const offending = assets.filter((a) => {
    const asset = org.asset(a.adamId, a.pricingParam);
    return asset && !allowed(asset);
  });
  if (offending.length > 0) throw new ApiError(errorNumber, { assets: offending });
}

/** `clientUserIds` and `serialNumbers`: at least one target (9719), within the limits (9701, 9702), unique (9704, 9705). */
function readTargets(body, maxClientUserIds, maxSerialNumbers) {
  const clientUserIds = stringList(body.clientUserIds);
  const serialNumbers = stringList(body.serialNumbers);
  if (clientUserIds.length === 0 && serialNumbers.length === 0) throw new ApiError(9719);
  checkCount(clientUserIds, maxClientUserIds, 9701);
  checkCount(serialNumbers, maxSerialNumbers, 9702);
  checkUnique(clientUserIds, 9704);
  checkUnique(serialNumbers, 9705);
  return { clientUserIds, serialNumbers };
}

function readManageAssets(ctx, org, body, { disassociate }) {
  const assets = readAssets(body.assets);
  checkCount(assets, ctx.limits.maxAssets, 9700);
  checkUnique(assets.map((a) => assetKey(a.adamId, a.pricingParam)), 9703);
  const targets = readTargets(body, ctx.limits.maxClientUserIds, ctx.limits.maxSerialNumbers);
  if (targets.serialNumbers.length > 0) rejectAssets(org, assets, (a) => a.deviceAssignable, 9707);
  if (disassociate) rejectAssets(org, assets, (a) => a.revocable, 9706);
  return { assets, ...targets };
}

function submitAssets(eventType, disassociate) {
  return (ctx, { org, body }) => {
    const request = readManageAssets(ctx, org, body, { disassociate });
    const numRequested = request.assets.length * (request.clientUserIds.length + request.serialNumbers.length);
    return { eventId: ctx.events.submit(org, eventType, request, numRequested) };
  };
}

export const associateAssets = submitAssets('ASSOCIATE', false);
export const disassociateAssets = submitAssets('DISASSOCIATE', true);

/** RevokeAssetsRequest: every revocable license of the users and devices named; one task per target. */
export function revokeAssets(ctx, { org, body }) {
  const targets = readTargets(body, ctx.limits.maxRevokeClientUserIds, ctx.limits.maxRevokeSerialNumbers);
  const numRequested = targets.clientUserIds.length + targets.serialNumbers.length;
  return { eventId: ctx.events.submit(org, 'REVOKE', targets, numRequested) };
}

/** ManageUsersRequest `users`, reduced to clientUserId, email and managedAppleId. */
function readUsers(ctx, body) {
  const { users } = body;
  if (users === undefined || users === null || (Array.isArray(users) && users.length === 0)) throw new ApiError(9720);
  if (!Array.isArray(users)) throw new ApiError(9602);
  const requested = users.map((u) => {
    if (typeof u?.clientUserId !== 'string' || u.clientUserId === '') throw new ApiError(9602);
    if (u.email !== undefined && !(typeof u.email === 'string' && EMAIL.test(u.email))) throw new ApiError(9717);
    if (u.managedAppleId !== undefined && typeof u.managedAppleId !== 'string') throw new ApiError(9602);
    const user = { clientUserId: u.clientUserId };
    if (u.email !== undefined) user.email = u.email;
    if (u.managedAppleId !== undefined) user.managedAppleId = u.managedAppleId;
    return user;
  });
  checkCount(requested, ctx.limits.maxUsers, 9714);
  checkUnique(requested.map((u) => u.clientUserId), 9715);
  return requested;
}

function submitUsers(eventType) {
  return (ctx, { org, body }) => {
    const users = readUsers(ctx, body);
    return { eventId: ctx.events.submit(org, eventType, { users }, users.length) };
  };
}

export const createUsers = submitUsers('CREATE');
export const updateUsers = submitUsers('UPDATE');
export const retireUsers = submitUsers('RETIRE');

/**
 * Not part of the MDM API: the page a user's invitation link (service config `invitationEmail`) opens.
 * Opening it associates the Registered user holding `inviteCode` with an Apple Account.
 */
export async function acceptInvitation(ctx, { query }) {
  const { inviteCode } = readParams(query, { inviteCode: 'string' });
  const user = inviteCode === undefined ? undefined : await ctx.acceptInvitation(inviteCode);
  if (!user) throw new ApiError(9602);
  return { clientUserId: user.clientUserId, status: user.status };
}
