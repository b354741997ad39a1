export { Driver, type DriverEngine, type DriverLeases, type DriverOptions } from './driver.js';
export { APPLE_BASE_URL, createFetchTransport, type FetchTransportOptions, type Transport, type TransportResponse } from './transport.js';
export { MemoryStore } from './memory-store.js';
export { IndexedDbStore, type IndexedDbStoreOptions } from './indexeddb-store.js';
export { LeaseKeeper, type LeaseChange, type LeaseKeeperOptions } from './lease-keeper.js';
export { appReportCsv, assignmentReportCsv, csvField, csvLine, type CsvOptions, type ReportCsvOptions, type ReportEngine } from './report-csv.js';
export { RemoteStore, type RemoteStoreError, type RemoteStoreOptions } from './remote-store.js';
export type { LeaseState, LeaseStore, LoadAccountOptions, LoadedRecords, LoadOptions, Store, TokenHooks } from './store.js';
