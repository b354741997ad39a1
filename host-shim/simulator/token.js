// The sToken a customer downloads from Apple Business/School Manager: base64 of JSON {token, expDate, orgName}.
import { randomBytes } from 'node:crypto';

const pad = (n) => String(n).padStart(2, '0');

/** Apple's date format, e.g. "2030-11-08T22:33:22+0000" (UTC, colon-less offset). */
export function formatAppleDate(ms) {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}+0000`;
}

/**
 * Builds an sToken string. `secret` is the opaque inner `token` value (random base64 when omitted).
 * The whole returned string is what a client sends as `Authorization: Bearer <sToken>`.
 */
export function makeToken({ orgName, expiresAt, secret = randomBytes(96).toString('base64') }) {
  if (typeof orgName !== 'string' || orgName === '') throw new TypeError('makeToken: orgName must be a non-empty string');
  if (!Number.isFinite(expiresAt)) throw new TypeError('makeToken: expiresAt must be a time in Unix milliseconds');
  const json = JSON.stringify({ token: secret, expDate: formatAppleDate(expiresAt), orgName });
  return Buffer.from(json, 'utf8').toString('base64');
}
