import type { TokenHooks } from '../store.js';

/** AES-256-GCM token protection (random IV, `v1:` prefix) for the stores' `protect` / `unprotect` options. */
export declare function aesGcmProtector(key: Uint8Array): Required<TokenHooks> & {
  protect(plaintext: string): string;
  unprotect(stored: string): string;
};
