export { Driver, type DriverEngine, type DriverOptions } from './driver.js';
export { APPLE_BASE_URL, createFetchTransport, type FetchTransportOptions, type Transport, type TransportResponse } from './transport.js';
export { MemoryStore } from './memory-store.js';
export { IndexedDbStore, type IndexedDbStoreOptions } from './indexeddb-store.js';
export type { Store, TokenHooks } from './store.js';
