// Notification floods, as an MDM saw them (Apple Developer Forums 724381): 1,000 devices × 25 apps produced 250+
// ASSET_MANAGEMENT notifications of 100 devices per app each, duplicates among them, over about 5 minutes, while
// /status said COMPLETE after 30 s. In flood mode a completed asset event's result is delivered as one
// notification per app and at most `maxAssignments` assignments, each at a random time within `spreadMs` after
// the event completed, and a `duplicateFraction` of them a second time, later, with the same notificationId.
import { eventNotifications } from './notifications.js';

/** Apple's 100 elements per notification; about one notification in ten twice; five minutes. */
export const FLOOD_DEFAULTS = Object.freeze({ maxAssignments: 100, duplicateFraction: 0.1, spreadMs: 300_000 });

/** A flood setting with its defaults filled in; throws for a value out of range. */
export function readFlood(spec = {}) {
  if (spec === null || typeof spec !== 'object') throw new TypeError('a notification flood is an object');
  const { maxAssignments, duplicateFraction, spreadMs } = { ...FLOOD_DEFAULTS, ...spec };
  if (!(Number.isInteger(maxAssignments) && maxAssignments >= 1 && maxAssignments <= 100)) {
    throw new RangeError(`notification flood: maxAssignments must be an integer within 1..100 (Apple's limit), got ${maxAssignments}`);
  }
  if (!(typeof duplicateFraction === 'number' && duplicateFraction >= 0 && duplicateFraction <= 1)) {
    throw new RangeError(`notification flood: duplicateFraction must be within 0..1, got ${duplicateFraction}`);
  }
  if (!(Number.isFinite(spreadMs) && spreadMs >= 0)) throw new RangeError(`notification flood: spreadMs must be >= 0, got ${spreadMs}`);
  return { maxAssignments, duplicateFraction, spreadMs };
}

/**
 * The ASSET_MANAGEMENT deliveries of a completed asset event in flood mode, for `Notifier.publishScheduled`:
 * `{payload, delayMs, againMs?}` per notification (SUCCESS ones per app, then the FAILURE series per error number
 * and app), its times drawn from `random`.
 */
export function floodDeliveries(event, outcome, flood, random) {
  const { payloads } = eventNotifications(event, outcome, { maxElements: flood.maxAssignments, perAsset: true });
  return payloads.map((payload) => {
    const delayMs = Math.round(random.next() * flood.spreadMs);
    if (!random.chance(flood.duplicateFraction)) return { payload, delayMs };
    return { payload, delayMs, againMs: delayMs + Math.round(random.next() * (flood.spreadMs - delayMs)) };
  });
}
