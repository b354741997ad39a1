// What an asset- or user-management event does to the organization when it completes: per-task
// application, successes, and failures grouped by error number (StatusResponse `failures`, notification `error`).
import { errorBody } from './errors.js';
import { assetKey, isActiveUser } from './state.js';

class Outcome {
  numCompleted = 0;
  /** Successfully processed assignments or users, as notifications list them. */
  items = [];
  #groups = new Map(); // errorNumber → { info: {assets, clientUserIds, serialNumbers}, items }

  succeed(...items) {
    this.numCompleted++;
    this.items.push(...items);
  }

  /** A failed task; `info` names what failed: `{asset?, clientUserId?, serialNumber?}`. */
  fail(errorNumber, { asset, clientUserId, serialNumber }, item) {
    if (!this.#groups.has(errorNumber)) {
      this.#groups.set(errorNumber, { info: { assets: new Map(), clientUserIds: new Set(), serialNumbers: new Set() }, items: [] });
    }
    const group = this.#groups.get(errorNumber);
    if (asset) group.info.assets.set(assetKey(asset.adamId, asset.pricingParam), asset);
    if (clientUserId !== undefined) group.info.clientUserIds.add(clientUserId);
    if (serialNumber !== undefined) group.info.serialNumbers.add(serialNumber);
    group.items.push(item);
  }

  /** StatusResponse `failures`: one ErrorResponse per error number, `errorInfo` listing what failed. */
  get failures() {
    return [...this.#groups].map(([errorNumber, { info }]) => {
      const errorInfo = {};
      if (info.assets.size) errorInfo.assets = [...info.assets.values()];
      if (info.clientUserIds.size) errorInfo.clientUserIds = [...info.clientUserIds];
      if (info.serialNumbers.size) errorInfo.serialNumbers = [...info.serialNumbers];
      return errorBody(errorNumber, errorInfo);
    });
  }

  /** Failures for notifications: `{error: {errorMessage, errorNumber}, items}` per error number. */
  get failureGroups() {
    return [...this.#groups].map(([errorNumber, { items }]) => ({ error: errorBody(errorNumber), items }));
  }
}

/** Every (asset × target) task of a ManageAssetsRequest, users first, as `{asset, target}`. */
function assetTasks({ assets, clientUserIds, serialNumbers }) {
  const targets = [...clientUserIds.map((clientUserId) => ({ clientUserId })), ...serialNumbers.map((serialNumber) => ({ serialNumber }))];
  return assets.flatMap((asset) => targets.map((target) => ({ asset, target })));
}

function associate(org, request) {
  const outcome = new Outcome();
  let refusal;
  for (const { asset, target } of assetTasks(request)) {
    const assignment = { ...asset, ...target };
    const user = target.clientUserId !== undefined ? org.user(target.clientUserId) : undefined;
    if (target.clientUserId !== undefined && !(user && isActiveUser(user))) {
      outcome.fail(9609, target, assignment);
    } else if (org.hasAssignment(assignment)) {
      outcome.succeed(assignment); // already held: nothing more is consumed
    } else if (!(org.asset(asset.adamId, asset.pricingParam)?.availableCount > 0)) {
      outcome.fail(9709, { asset, ...target }, assignment);
    } else if ((refusal = org.takeRefusal()) !== undefined) {
      outcome.fail(refusal, { asset, ...target }, assignment); // Apple refuses while its counts show licenses
    } else if (org.takePhantom(assignment)) {
      outcome.succeed(assignment); // Apple reports it done but assigns nothing: COMPLETE is not proof
    } else {
      org.addAssignment(assignment);
      outcome.succeed(assignment);
    }
  }
  return outcome;
}

function disassociate(org, request) {
  const outcome = new Outcome();
  for (const { asset, target } of assetTasks(request)) {
    const assignment = { ...asset, ...target };
    if (target.clientUserId !== undefined && !org.user(target.clientUserId)) {
      outcome.fail(9609, target, assignment);
    } else {
      org.removeAssignment(assignment); // releasing a license the target does not hold is a no-op success
      outcome.succeed(assignment);
    }
  }
  return outcome;
}

/** Releases every revocable license the user or device holds; returns what was released. */
function releaseRevocable(org, target) {
  const released = org.assignmentsOf(target).filter((a) => org.asset(a.adamId, a.pricingParam).revocable);
  for (const a of released) org.removeAssignment(a);
  return released;
}

function revoke(org, { clientUserIds, serialNumbers }) {
  const outcome = new Outcome();
  for (const clientUserId of clientUserIds) {
    if (org.user(clientUserId)) outcome.succeed(...releaseRevocable(org, { clientUserId }));
    else outcome.fail(9609, { clientUserId }, { clientUserId });
  }
  for (const serialNumber of serialNumbers) outcome.succeed(...releaseRevocable(org, { serialNumber }));
  return outcome;
}

/** `fresh` supplies `inviteCode()` and `idHash()` for new users. */
function createUsers(org, { users }, fresh) {
  const outcome = new Outcome();
  for (const { clientUserId, email, managedAppleId } of users) {
    const existing = org.user(clientUserId);
    if (existing && isActiveUser(existing)) {
      outcome.fail(9716, { clientUserId }, existing);
    } else {
      // A Managed Apple ID of the same organization associates the user at once, without an invitation.
      const identity = managedAppleId ? { status: 'Associated', idHash: fresh.idHash() } : { status: 'Registered', inviteCode: fresh.inviteCode() };
      outcome.succeed(org.addUser({ clientUserId, email, managedAppleId, ...identity }));
    }
  }
  return outcome;
}

function updateUsers(org, { users }) {
  const outcome = new Outcome();
  for (const { clientUserId, ...patch } of users) {
    const existing = org.user(clientUserId);
    if (existing && isActiveUser(existing)) outcome.succeed(org.updateUser(clientUserId, patch));
    else outcome.fail(9609, { clientUserId }, { clientUserId });
  }
  return outcome;
}

/** Retiring keeps the user's record (and idHash), drops its invitation and releases its revocable licenses. */
function retireUsers(org, { users }) {
  const outcome = new Outcome();
  for (const { clientUserId } of users) {
    const existing = org.user(clientUserId);
    if (!existing) {
      outcome.fail(9609, { clientUserId }, { clientUserId });
    } else if (!isActiveUser(existing)) {
      outcome.succeed(existing);
    } else {
      releaseRevocable(org, { clientUserId });
      outcome.succeed(org.updateUser(clientUserId, { status: 'Retired', inviteCode: undefined }));
    }
  }
  return outcome;
}

/** eventType → (org, request, fresh) → Outcome */
export const OPERATIONS = {
  ASSOCIATE: associate,
  DISASSOCIATE: disassociate,
  REVOKE: revoke,
  CREATE: createUsers,
  UPDATE: updateUsers,
  RETIRE: retireUsers,
};
