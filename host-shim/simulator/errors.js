// Apple's error catalogue: errorNumber → HTTP status and message, and the error type the simulator throws.
// Messages are the ones Apple publishes in its service-config example (apple-api.md §1.2, §4); the few codes
// that example lacks (9622, 9729, 9634, …) use the wording of apple-api.md §4.2–4.5.

const CATALOGUE = {
  9601: [401, 'Login required.'],
  9602: [400, 'Invalid argument.'],
  9603: [500, 'Internal error.'],
  9609: [400, 'Unable to find the registered user.'],
  9621: [401, "The token has expired. You need to generate a new token online using your organization's account at either school.apple.com or business.apple.com."],
  9622: [401, 'Invalid authentication token.'],
  9625: [401, 'The server has revoked the sToken.'],
  9634: [410, 'Service removed.'],
  9635: [400, 'Unable to associate the Apple Account with this user.'],
  9637: [403, "This operation isn't allowed for facilitator accounts."],
  9641: [400, 'The Apple Account is already associated with another user.'],
  9644: [503, 'The service is in maintenance mode. Try again later.'],
  9646: [429, 'There are too many recent requests. Try again momentarily.'],
  9647: [403, "This operation isn't supported for legacy tokens."],
  9650: [400, 'The provided page index must be greater than 0, and less than the total number of pages.'],
  9700: [400, 'Max assets limit on request has been passed, please stay within given limit.'],
  9701: [400, 'Max clientUserIds limit on request has been passed, please stay within given limit.'],
  9702: [400, 'Max serialNumbers limit on request has been passed, please stay within given limit.'],
  9703: [400, 'Duplicate assets found in request, please send unique assets.'],
  9704: [400, 'Duplicate clientUserIds found in request, please send unique clients.'],
  9705: [400, 'Duplicate serialNumbers found in request, please send unique serials.'],
  9706: [400, 'Asset in request is not revocable, please send revocable assets.'],
  9707: [400, 'Asset in request is not device assignable, please send device assignable assets.'],
  9708: [400, 'EventId could not be found.'],
  9709: [400, 'There are not enough licenses for this app or book available to assign to the selected group.'],
  9710: [400, 'Both the notification URL and the authentication token are necessary.'],
  9711: [400, 'Either the notification URL or the authentication token exceeds its maximum length. Change the request to stay within the specified limit.'],
  9712: [400, 'The provided notification URL must be a valid URL and use HTTPS as the protocol.'],
  9713: [400, 'The MDM metadata exceeds the maximum length. Change the request to stay within the specified limit.'],
  9714: [400, 'The number of users exceeds the maximum. Change the request to stay within the specified limit.'],
  9715: [400, 'This request contains duplicate users. Change the request to send unique users.'],
  9716: [400, 'A registered user already exists with the specified clientUserId.'],
  9717: [400, 'This request contains an invalid email address. Change the request to send valid email addresses.'],
  9718: [400, "This request doesn't contain an asset, which is a required argument. Change the request to provide an asset."],
  9719: [400, 'Either clientUserIds or serialNumbers are required arguments. Change the request to provide assignable users and devices.'],
  9720: [400, 'Users are a required argument. Change the request to provide a user.'],
  9721: [400, 'This request contains an invalid version ID. Change the request to send the version ID from the read APIs.'],
  9722: [401, "This request contains an invalid authorization header. Change the request to send an authorization header that matches the format 'Bearer {sToken}'."],
  9723: [400, 'You must provide an MDM name, ID, and metadata when setting the MDM information.'],
  9724: [400, 'The MDM ID exceeds the maximum length. Change the request to stay within the specified limit.'],
  9725: [400, 'The MDM name exceeds the maximum length. Change the request to stay within the specified limit.'],
  9726: [405, 'This request contains an unsupported HTTP method for the requested endpoint.'],
  9727: [415, 'This request contains an unsupported Content-Type for the requested endpoint.'],
  9728: [400, 'The provided notification URL is unreachable.'],
  9729: [503, 'Service temporarily unavailable. Try again later.'],
};

/** The errorCodes list of Apple's service-config example, in Apple's order. */
const PUBLISHED = [
  9601, 9602, 9603, 9609, 9621, 9625, 9634, 9646, 9650, 9700, 9701, 9702, 9703, 9704, 9705, 9706, 9707, 9708,
  9709, 9710, 9711, 9712, 9713, 9714, 9715, 9716, 9717, 9718, 9719, 9720, 9721, 9722, 9723, 9724, 9725, 9726,
  9727, 9728,
];

/** HTTP status Apple uses for `errorNumber`; 500 for a number the catalogue does not know. */
function errorStatus(errorNumber) {
  return CATALOGUE[errorNumber]?.[0] ?? 500;
}

export function errorMessage(errorNumber) {
  return CATALOGUE[errorNumber]?.[1] ?? 'Internal error.';
}

/** `{errorNumber, errorMessage}`, the ErrorResponse shape, with `errorInfo` when given. */
export function errorBody(errorNumber, errorInfo) {
  const body = { errorMessage: errorMessage(errorNumber), errorNumber };
  if (errorInfo) body.errorInfo = errorInfo;
  return body;
}

export function publishedErrorCodes() {
  return PUBLISHED.map((n) => ({ errorMessage: errorMessage(n), errorNumber: n }));
}

/** A synchronous API error: the server answers `status` with an ErrorResponse body. */
export class ApiError extends Error {
  constructor(errorNumber, errorInfo, status = errorStatus(errorNumber)) {
    super(`${errorNumber} ${errorMessage(errorNumber)}`);
    this.errorNumber = errorNumber;
    this.errorInfo = errorInfo;
    this.status = status;
  }

  get body() {
    return errorBody(this.errorNumber, this.errorInfo);
  }
}
