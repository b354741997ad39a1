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
