// vpp-license-engine/host: the host shim shared by browsers and Node.
export { Driver } from './driver.js';
export { APPLE_BASE_URL, createFetchTransport } from './transport.js';
export { MemoryStore } from './memory-store.js';
export { IndexedDbStore } from './indexeddb-store.js';
export { LeaseKeeper } from './lease-keeper.js';
export { appReportCsv, assignmentReportCsv, csvField, csvLine } from './report-csv.js';
export { RemoteStore } from './remote-store.js';
