// vpp-license-engine/node: Node-only helpers (node:http) around the host shim.
export {
  DEFAULT_MAX_BODY_BYTES,
  DEFAULT_NOTIFICATION_PATH,
  createNotificationHandler,
  startNotificationServer,
} from './notification-endpoint.js';
