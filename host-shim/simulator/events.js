// Asynchronous events (eventId): PENDING until they complete after a delay (or on demand), then COMPLETE,
// or FAILED when any task failed; the status Get Events Status reports.
import { OPERATIONS } from './operations.js';

export class EventQueue {
  #events = new Map(); // eventId → event
  #timers = new Map(); // event → timer
  #delayMs;
  #newId;
  #fresh;
  #onComplete;

  /**
   * @param {object} o
   * @param {number} o.delayMs  time from submission to completion; Infinity = only `completeAll()` completes
   * @param {() => string} o.newId  source of eventIds
   * @param {{inviteCode: () => string, idHash: () => string}} o.fresh  identifiers for created users
   * @param {(event: object, outcome: object) => Promise<void>} o.onComplete  e.g. send notifications
   */
  constructor({ delayMs, newId, fresh, onComplete }) {
    this.#delayMs = delayMs;
    this.#newId = newId;
    this.#fresh = fresh;
    this.#onComplete = onComplete;
  }

  /** Queues an operation of `eventType` ('ASSOCIATE', 'CREATE', …) on a validated request. Returns the eventId. */
  submit(org, eventType, request, numRequested) {
    const event = { eventId: this.#newId(), org, eventType, request, numRequested, eventStatus: 'PENDING', numCompleted: 0, failures: [] };
    this.#events.set(event.eventId, event);
    this.#schedule(event);
    return event.eventId;
  }

  /** StatusResponse fields of an event of `org`, or undefined when the organization has no such event. */
  status(org, eventId) {
    const event = this.#events.get(eventId);
    if (!event || event.org !== org) return undefined;
    const status = { eventStatus: event.eventStatus, eventType: event.eventType, numCompleted: event.numCompleted, numRequested: event.numRequested };
    if (event.failures.length > 0) status.failures = event.failures;
    return status;
  }

  /** A copy of an event (without its organization) as submitted and as it stands, or undefined. */
  describe(eventId) {
    const event = this.#events.get(eventId);
    if (!event) return undefined;
    const { org, ...fields } = event;
    return structuredClone(fields);
  }

  /** Changes the delay of events submitted from now on. */
  setDelay(ms) {
    this.#delayMs = ms;
  }

  /** Completes every pending event now, in submission order; resolves once their notifications are sent. */
  completeAll() {
    const pending = [...this.#timers.keys()];
    return Promise.all(pending.map((event) => this.#complete(event))).then(() => pending.length);
  }

  close() {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  #schedule(event) {
    const timer = Number.isFinite(this.#delayMs) ? setTimeout(() => this.#complete(event), this.#delayMs) : null;
    this.#timers.set(event, timer);
  }

  #complete(event) {
    clearTimeout(this.#timers.get(event));
    this.#timers.delete(event);
    const outcome = OPERATIONS[event.eventType](event.org, event.request, this.#fresh);
    event.numCompleted = outcome.numCompleted;
    event.failures = outcome.failures;
    event.eventStatus = event.failures.length > 0 ? 'FAILED' : 'COMPLETE';
    return this.#onComplete(event, outcome);
  }
}
