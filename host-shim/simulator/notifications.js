// Notifications Apple POSTs to a location's notificationUrl: envelopes, payload shapes, splitting at 100
// elements, delivery with retries, and drop/duplicate/delay faults. Only loopback hosts are ever contacted.
import http from 'node:http';
import https from 'node:https';
import { FaultList } from './faults.js';
import { Sleeper } from './sleeper.js';
import { assetKey } from './state.js';

export const NOTIFICATION_TYPES = ['TEST_NOTIFICATION', 'ASSET_MANAGEMENT', 'USER_MANAGEMENT', 'USER_ASSOCIATED',
  'ASSET_COUNT', 'SUBSCRIPTION_MANAGEMENT', 'SUBSCRIPTION_COUNT', 'UNLIMITED_ASSET'];
const MAX_ELEMENTS = 100;
const ASSET_EVENTS = new Set(['ASSOCIATE', 'DISASSOCIATE', 'REVOKE']);

export function isLoopbackHost(hostname) {
  return hostname === 'localhost' || hostname === '[::1]' || hostname === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(hostname);
}

/** Apple requires https; the simulator also accepts http on loopback so tests need no certificate. */
export function isAcceptableNotificationUrl(text) {
  let url;
  try { url = new URL(text); } catch { return false; }
  return url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
}

function chunk(items, size) {
  const chunks = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/** `items` in chunks of at most `size`; with `perAsset`, each chunk holds the assignments of one asset only. */
function chunks(items, size, perAsset) {
  if (!perAsset) return chunk(items, size);
  const byAsset = new Map();
  for (const item of items) {
    const key = item.adamId === undefined ? '' : assetKey(item.adamId, item.pricingParam);
    if (!byAsset.has(key)) byAsset.set(key, []);
    byAsset.get(key).push(item);
  }
  return [...byAsset.values()].flatMap((list) => chunk(list, size));
}

/**
 * The ASSET_MANAGEMENT or USER_MANAGEMENT payloads of a finished event: SUCCESS ones for what worked, one
 * FAILURE series per error number, each with at most `maxElements` (100) assignments/users — and with `perAsset`,
 * the assignments of one asset only.
 * @returns {{type: string, payloads: object[]}}
 */
export function eventNotifications(event, outcome, { maxElements = MAX_ELEMENTS, perAsset = false } = {}) {
  const assetEvent = ASSET_EVENTS.has(event.eventType);
  const listKey = assetEvent ? 'assignments' : 'users';
  const payloads = chunks(outcome.items, maxElements, perAsset).map((items) =>
    ({ eventId: event.eventId, result: 'SUCCESS', type: event.eventType, [listKey]: items }));
  for (const { error, items } of outcome.failureGroups) {
    for (const part of chunks(items, maxElements, perAsset)) {
      payloads.push({ error, eventId: event.eventId, result: 'FAILURE', type: event.eventType, [listKey]: part });
    }
  }
  return { type: assetEvent ? 'ASSET_MANAGEMENT' : 'USER_MANAGEMENT', payloads };
}

/** POSTs `body` to `url`; resolves `{status}` or `{error}` (never rejects). */
function post(url, authToken, body, timeoutMs) {
  return new Promise((resolve) => {
    const target = new URL(url);
    if (!isLoopbackHost(target.hostname)) {
      resolve({ error: `not contacted: ${target.hostname} is not a loopback host` });
      return;
    }
    const client = target.protocol === 'https:' ? https : http;
    const req = client.request(target, {
      method: 'POST',
      timeout: timeoutMs,
      rejectUnauthorized: false, // loopback test receivers use self-signed certificates
      headers: { Authorization: `Bearer ${authToken}`, 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) },
    }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => resolve({ error: err.message }));
    req.end(body);
  });
}

const delivered = (result) => result.status >= 200 && result.status < 300;

export class Notifier {
  /** Every delivery attempt: { at, notificationId, notificationType, uId, url, attempt, status, error, dropped? }. */
  log = [];
  faults = new FaultList(['token', 'notificationType']);
  #now;
  #newId;
  #options;
  #sleeper = new Sleeper();
  #chains = new Set();
  #closed = false;

  /**
   * @param {object} o
   * @param {() => number} o.now
   * @param {() => string} o.newId  source of notificationIds
   * @param {number} o.timeoutMs  per attempt
   * @param {number} o.attempts  deliveries tried per notification ("up to three times")
   * @param {number} o.retryDelayMs  pause between attempts
   */
  constructor({ now, newId, timeoutMs, attempts, retryDelayMs }) {
    this.#now = now;
    this.#newId = newId;
    this.#options = { timeoutMs, attempts, retryDelayMs };
  }

  /** Sends TEST_NOTIFICATION to a URL being configured (one attempt, no faults); true when delivered. */
  async test(org, url, authToken) {
    const envelope = this.#envelope(org, 'TEST_NOTIFICATION', {});
    return delivered(await this.#attempt(url, authToken, envelope, 1));
  }

  /**
   * Sends notifications of `type` to the organization's configured URL when it subscribed to that type.
   * Resolves when every one is delivered or out of attempts.
   */
  publish(org, type, payloads) {
    const config = org.notification;
    if (!config || !org.notificationTypes.includes(type)) return Promise.resolve();
    const chains = payloads.map((p) => this.#deliver(config, this.#envelope(org, type, p), org.token));
    return Promise.all(chains).then(() => undefined);
  }

  /**
   * Like `publish`, but each notification (`deliveries`: `{payload, delayMs, againMs?}`) leaves `delayMs` after the
   * call, and when `againMs` is given is sent again with the same notificationId that long after the call (a
   * duplicate). Faults apply to the first sending. Resolves when every sending is delivered or out of attempts.
   */
  publishScheduled(org, type, deliveries) {
    const config = org.notification;
    if (!config || !org.notificationTypes.includes(type)) return Promise.resolve();
    const sendings = deliveries.flatMap(({ payload, delayMs, againMs }) => {
      const envelope = this.#envelope(org, type, payload);
      const first = this.#track(this.#after(delayMs, () => this.#faultedDelivery(config, envelope, org.token)));
      if (againMs === undefined) return [first];
      return [first, this.#track(this.#after(againMs, () => this.#withRetries(config.url, config.authToken, envelope)))];
    });
    return Promise.all(sendings).then(() => undefined);
  }

  /** Resolves when every notification sent so far is delivered or out of attempts. */
  async settled() {
    while (this.#chains.size > 0) await Promise.all([...this.#chains]);
  }

  /** Stops delivering: pending retries and delays end at once without sending. */
  close() {
    this.#closed = true;
    this.#sleeper.wakeAll();
  }

  #envelope(org, notificationType, notification) {
    return { notification, notificationId: this.#newId(), notificationType, uId: org.uId };
  }

  #deliver(config, envelope, token) {
    return this.#track(this.#faultedDelivery(config, envelope, token));
  }

  /** Counts a sending in progress until it settles (`settled()` waits for it). */
  #track(sending) {
    const chain = sending.finally(() => this.#chains.delete(chain));
    this.#chains.add(chain);
    return chain;
  }

  /** Runs `send` after `ms`, unless the simulator closed meanwhile. */
  async #after(ms, send) {
    await this.#sleeper.sleep(ms);
    if (!this.#closed) await send();
  }

  async #faultedDelivery({ url, authToken }, envelope, token) {
    const fault = this.faults.take({ token, notificationType: envelope.notificationType });
    if (fault?.delayMs) await this.#sleeper.sleep(fault.delayMs);
    if (fault?.drop) {
      this.#record(url, envelope, 0, { dropped: true });
      return;
    }
    await this.#withRetries(url, authToken, envelope);
    if (fault?.duplicate) await this.#withRetries(url, authToken, envelope);
  }

  async #withRetries(url, authToken, envelope) {
    for (let attempt = 1; attempt <= this.#options.attempts && !this.#closed; attempt++) {
      if (attempt > 1) await this.#sleeper.sleep(this.#options.retryDelayMs);
      if (delivered(await this.#attempt(url, authToken, envelope, attempt))) return;
    }
  }

  async #attempt(url, authToken, envelope, attempt) {
    if (this.#closed) return { error: 'simulator closed' };
    const result = await post(url, authToken, JSON.stringify(envelope), this.#options.timeoutMs);
    this.#record(url, envelope, attempt, result);
    return result;
  }

  #record(url, envelope, attempt, { status = null, error = null, dropped = false }) {
    const entry = { at: this.#now(), notificationId: envelope.notificationId, notificationType: envelope.notificationType,
      uId: envelope.uId, url, attempt, status, error };
    if (dropped) entry.dropped = true;
    this.log.push(entry);
  }
}
