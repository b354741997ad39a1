// sTokens at rest, for the durable Store adapters (browser and Node alike: no `node:` imports): the `token` field of
// `account/<id>` records goes through `protect(plaintext) → stored string` on write and `unprotect(stored) →
// plaintext` on load; nothing else is touched. The default is identity (the token is stored in plain text). The
// hooks may be async; they never see any other field, and nothing here logs a value.
import { ACCOUNT_PREFIX } from './record-accounts.js';

const identity = (text) => text;

/** The `{ protect, unprotect }` pair of an adapter's options; both or neither. */
export function tokenHooks({ protect, unprotect } = {}, storeName) {
  if ((protect === undefined) !== (unprotect === undefined)) {
    throw new TypeError(`${storeName}: pass both protect and unprotect, or neither`);
  }
  for (const [name, hook] of [['protect', protect], ['unprotect', unprotect]]) {
    if (hook !== undefined && typeof hook !== 'function') throw new TypeError(`${storeName}: ${name} must be a function`);
  }
  return { protect: protect ?? identity, unprotect: unprotect ?? identity };
}

/** Whether a record's value carries a token the hooks see (an account record): only these need to be awaited. */
export const holdsToken = (key, value) =>
  key.startsWith(ACCOUNT_PREFIX) && value !== null && typeof value === 'object' && typeof value.token === 'string';

async function mapToken(key, value, hook, hookName, storeName) {
  if (!holdsToken(key, value)) return value;
  const token = await hook(value.token);
  // The message names the key, never the token.
  if (typeof token !== 'string') throw new TypeError(`${storeName}: ${hookName} returned a non-string for ${key}`);
  return { ...value, token };
}

/** A record's value as it is to be stored: the token of an account record protected, anything else as it is. */
export function protectToken(key, value, hooks, storeName) {
  return mapToken(key, value, hooks.protect, 'protect', storeName);
}

/** A stored record's value back: the token of an account record unprotected, anything else as it is. */
export function unprotectToken(key, value, hooks, storeName) {
  return mapToken(key, value, hooks.unprotect, 'unprotect', storeName);
}
