// Apps and Books (formerly VPP) API simulator: a faithful fake of Apple's v2 API on loopback.
export { startSimulator } from './simulator.js';
export { makeToken, formatAppleDate } from './token.js';
export { DEFAULT_LIMITS } from './config-api.js';
export { UNLIMITED_COUNT } from './state.js';
