export {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_NOTIFICATION_PATH,
  createNotificationHandler,
  startNotificationServer,
  type NotificationDriver,
  type NotificationHandlerOptions,
  type NotificationRequest,
  type NotificationResponse,
  type NotificationServer,
  type NotificationServerOptions,
} from './notification-endpoint.js';
export { SqliteStore } from './sqlite-store.js';
export { DEFAULT_TABLE as POSTGRES_DEFAULT_TABLE, PostgresStore, type PgPoolLike, type PostgresStoreOptions } from './postgres-store.js';
export { aesGcmProtector } from './aes-gcm-protector.js';
export {
  APPLE_RELAY_ROUTES,
  DEFAULT_RELAY_BODY_TIMEOUT_MS,
  DEFAULT_RELAY_MAX_BODY_BYTES,
  DEFAULT_RELAY_MAX_RESPONSE_BYTES,
  DEFAULT_RELAY_PATH,
  DEFAULT_RELAY_TIMEOUT_MS,
  createAppleRelay,
  type AppleRelayOptions,
  type RelayRequest,
  type RelayResponse,
} from './apple-relay.js';
export {
  DEFAULT_STORE_RELAY_BODY_TIMEOUT_MS,
  DEFAULT_STORE_RELAY_MAX_BODY_BYTES,
  DEFAULT_STORE_RELAY_PATH,
  STORE_RELAY_METHODS,
  createStoreRelay,
  type StoreRelayOptions,
} from './store-relay.js';
