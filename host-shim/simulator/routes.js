// The endpoint table: path → method → { auth, handle(ctx, {org, query, body}) }.
import { INVITATION_PATH, clientConfig, postClientConfig, serviceConfig } from './config-api.js';
import { acceptInvitation, associateAssets, createUsers, disassociateAssets, retireUsers, revokeAssets, updateUsers } from './manage-api.js';
import { LOOKUP_PATH, lookup } from './metadata-api.js';
import { getAssets, getAssignments, getStatus, getUsers } from './read-api.js';

const API = '/mdm/v2';
const open = (handle) => ({ auth: false, handle });
const authed = (handle) => ({ auth: true, handle });

export const ROUTES = new Map([
  [`${API}/service/config`, { GET: open(serviceConfig) }],
  [`${API}/client/config`, { GET: authed(clientConfig), POST: authed(postClientConfig) }],
  [`${API}/assets`, { GET: authed(getAssets) }],
  [`${API}/assets/associate`, { POST: authed(associateAssets) }],
  [`${API}/assets/disassociate`, { POST: authed(disassociateAssets) }],
  [`${API}/assets/revoke`, { POST: authed(revokeAssets) }],
  [`${API}/assignments`, { GET: authed(getAssignments) }],
  [`${API}/status`, { GET: authed(getStatus) }],
  [`${API}/users`, { GET: authed(getUsers) }],
  [`${API}/users/create`, { POST: authed(createUsers) }],
  [`${API}/users/update`, { POST: authed(updateUsers) }],
  [`${API}/users/retire`, { POST: authed(retireUsers) }],
  [INVITATION_PATH, { GET: open(acceptInvitation) }],
  [LOOKUP_PATH, { GET: open(lookup) }],
]);

/** A fault's `path` may omit the `/mdm/v2` prefix: '/assets' means '/mdm/v2/assets'. */
export function routePath(path) {
  return path.startsWith('/mdm/') || path === INVITATION_PATH || path === LOOKUP_PATH ? path : `${API}${path}`;
}
