// Token protection hooks for the durable stores (see TokenHooks in ../store.d.ts), with node:crypto:
// AES-256-GCM, a random 96-bit IV per token, stored as `v1:<base64(iv | tag | ciphertext)>`.
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

const PREFIX = 'v1:';
const IV_BYTES = 12;
const TAG_BYTES = 16;

/**
 * `{ protect, unprotect }` with a 32-byte key (a Buffer/Uint8Array, e.g. from a KMS or
 * `Buffer.from(process.env.VPP_TOKEN_KEY, 'base64')`). unprotect throws on a wrong key, a tampered value or
 * a value that was not protected with v1; its messages never include the value.
 */
export function aesGcmProtector(key) {
  if (!(key instanceof Uint8Array) || key.byteLength !== 32) {
    throw new TypeError('aesGcmProtector: key must be 32 bytes (a Buffer or Uint8Array)');
  }
  const secret = Buffer.from(key); // a private copy: later changes to the caller's buffer don't matter
  return {
    protect(plaintext) {
      if (typeof plaintext !== 'string') throw new TypeError('aesGcmProtector.protect: plaintext must be a string');
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', secret, iv);
      const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
      return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), ciphertext]).toString('base64');
    },
    unprotect(stored) {
      if (typeof stored !== 'string' || !stored.startsWith(PREFIX)) {
        throw new Error('aesGcmProtector.unprotect: not a v1 protected value (stored in plain text, or by another protector?)');
      }
      const bytes = Buffer.from(stored.slice(PREFIX.length), 'base64');
      if (bytes.length < IV_BYTES + TAG_BYTES) throw new Error('aesGcmProtector.unprotect: protected value is truncated');
      const decipher = createDecipheriv('aes-256-gcm', secret, bytes.subarray(0, IV_BYTES));
      decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      try {
        return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch {
        throw new Error('aesGcmProtector.unprotect: authentication failed (wrong key or tampered value)');
      }
    },
  };
}
