// Seeded pseudo-random numbers (mulberry32) and the identifier shapes Apple uses.

const HEX = '0123456789abcdef';
const BASE64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

export class Random {
  #state;

  constructor(seed) {
    this.#state = seed >>> 0;
  }

  /** A derived, independent stream: same seed and label → same stream. */
  fork(label) {
    let h = this.#state ^ 0x9e3779b9;
    for (const ch of String(label)) h = Math.imul(h ^ ch.charCodeAt(0), 0x85ebca6b) >>> 0;
    return new Random(h);
  }

  /** Uniform in [0, 1). */
  next() {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Integer in [min, max]. */
  int(min, max) {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p) {
    return this.next() < p;
  }

  pick(items) {
    return items[Math.floor(this.next() * items.length)];
  }

  chars(alphabet, n) {
    let s = '';
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.next() * alphabet.length)];
    return s;
  }

  hex(n) {
    return this.chars(HEX, n);
  }

  /** Decimal digits, the first one non-zero. */
  digits(n) {
    return String(this.int(1, 9)) + this.chars('0123456789', n - 1);
  }

  /** Lower-case RFC 4122 version-4 shaped UUID. */
  uuid() {
    const variant = HEX[8 + this.int(0, 3)];
    return `${this.hex(8)}-${this.hex(4)}-4${this.hex(3)}-${variant}${this.hex(3)}-${this.hex(12)}`;
  }

  /** Base64 text of `bytes` random bytes (with padding). */
  base64(bytes) {
    const full = Math.ceil((bytes * 4) / 3);
    return this.chars(BASE64, full).padEnd(Math.ceil(bytes / 3) * 4, '=');
  }
}
