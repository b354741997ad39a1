// Service config (no auth) and client config (GET/POST): limits, URLs, mdmInfo ownership, notification setup.
import { ApiError, publishedErrorCodes } from './errors.js';
import { NOTIFICATION_TYPES, isAcceptableNotificationUrl } from './notifications.js';
import { LOOKUP_PATH } from './metadata-api.js';

export const DEFAULT_LIMITS = Object.freeze({
  maxAssets: 25, maxUsers: 100, maxNotificationLength: 512, maxRevokeClientUserIds: 100, maxClientUserIds: 1000,
  maxSerialNumbers: 1000, maxRevokeSerialNumbers: 100, maxRequestPerSecond: 15, maxSubscriptions: 25,
  maxSubscriptionClientUserIds: 1000, maxMdmNameLength: 100, maxMdmMetadataLength: 255, maxMdmIdLength: 100,
});

/** The notification types Apple's service-config example advertises. */
const ADVERTISED_TYPES = ['ASSET_MANAGEMENT', 'USER_MANAGEMENT', 'USER_ASSOCIATED', 'ASSET_COUNT'];

export const INVITATION_PATH = '/WebObjects/MZFinance.woa/wa/associateVPPUserWithITSAccount';

/**
 * Service-config `urls`, every one on this server, or under `advertisedBaseUrl` when one was given (the invitation
 * keeps Apple's literal `%25inviteCode%25`).
 */
function serviceUrls(baseUrl) {
  const api = `${baseUrl}/mdm/v2`;
  return {
    invitationEmail: `${baseUrl}${INVITATION_PATH}?inviteCode=%25inviteCode%25&mt=8`,
    clientConfig: `${api}/client/config`,
    createUsers: `${api}/users/create`,
    getAssignments: `${api}/assignments`,
    revokeAssets: `${api}/assets/revoke`,
    contentMetadataLookup: `${baseUrl}${LOOKUP_PATH}`,
    getUsers: `${api}/users`,
    eventStatus: `${api}/status`,
    associateAssets: `${api}/assets/associate`,
    disassociateAssets: `${api}/assets/disassociate`,
    updateUsers: `${api}/users/update`,
    getAssets: `${api}/assets`,
    retireUsers: `${api}/users/retire`,
  };
}

export function serviceConfig(ctx) {
  return {
    errorCodes: publishedErrorCodes(),
    limits: { ...ctx.limits },
    notificationTypes: ADVERTISED_TYPES,
    urls: serviceUrls(ctx.advertisedBaseUrl ?? ctx.baseUrl),
  };
}

export function clientConfig(_ctx, { org }) {
  const config = {
    countryISO2ACode: org.countryCode,
    defaultPlatform: org.defaultPlatform,
    locationName: org.locationName,
    subscribedNotificationTypes: [...org.notificationTypes],
    websiteURL: org.websiteURL,
  };
  if (org.notification) {
    config.notificationAuthToken = org.notification.authToken;
    config.notificationUrl = org.notification.url;
  }
  return config;
}

/** `mdmInfo` as stored: all of id, name, metadata are strings (id and name non-empty) within their limits. */
function readMdmInfo(mdmInfo, limits) {
  const { id, name, metadata } = mdmInfo ?? {};
  const complete = typeof mdmInfo === 'object' && !Array.isArray(mdmInfo) &&
    typeof id === 'string' && id !== '' && typeof name === 'string' && name !== '' && typeof metadata === 'string';
  if (!complete) throw new ApiError(9723);
  if (id.length > limits.maxMdmIdLength) throw new ApiError(9724);
  if (name.length > limits.maxMdmNameLength) throw new ApiError(9725);
  if (metadata.length > limits.maxMdmMetadataLength) throw new ApiError(9713);
  return { id, name, metadata };
}

/**
 * The notification endpoint of a POST: undefined when the request does not touch it, null when both URL
 * and token are empty strings (cleared), else `{url, authToken}`.
 */
function readNotificationEndpoint({ notificationUrl: url, notificationAuthToken: authToken }, limits) {
  if (url === undefined && authToken === undefined) return undefined;
  if (url === undefined || authToken === undefined || (url === '') !== (authToken === '')) throw new ApiError(9710);
  if (typeof url !== 'string' || typeof authToken !== 'string') throw new ApiError(9602);
  if (url === '') return null;
  if (url.length > limits.maxNotificationLength || authToken.length > limits.maxNotificationLength) throw new ApiError(9711);
  if (!isAcceptableNotificationUrl(url)) throw new ApiError(9712);
  return { url, authToken };
}

function readNotificationTypes(types) {
  if (types === undefined) return undefined;
  if (!Array.isArray(types) || !types.every((t) => NOTIFICATION_TYPES.includes(t))) throw new ApiError(9602);
  return [...new Set(types)];
}

/**
 * Stores what the request sets (absent fields are left as they are; last writer wins). A new notification
 * endpoint first receives TEST_NOTIFICATION; when that is not delivered the whole request is rejected (9728).
 */
export async function postClientConfig(ctx, { org, body }) {
  const mdmInfo = body.mdmInfo == null ? undefined : readMdmInfo(body.mdmInfo, ctx.limits);
  const endpoint = readNotificationEndpoint(body, ctx.limits);
  const types = readNotificationTypes(body.notificationTypes);
  if (endpoint && !(await ctx.notifier.test(org, endpoint.url, endpoint.authToken))) throw new ApiError(9728);
  if (mdmInfo !== undefined) org.mdmInfo = mdmInfo;
  if (endpoint !== undefined) org.notification = endpoint;
  if (types !== undefined) org.notificationTypes = types;
  return clientConfig(ctx, { org });
}
