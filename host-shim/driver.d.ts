import type { EngineEvent, Input, Output, StoredRecord, StoredRecordJson } from 'vpp-license-engine';
import type { Store } from './store.js';
import type { Transport } from './transport.js';

/** The part of `Engine` the Driver uses. */
export interface DriverEngine {
  handleInput(input: Input, now: number): void;
  /** Every output due now, ending with the `timeout` (one call per drain instead of a `pollOutput` loop). */
  pollOutputs(now: number): Output[];
  /** Checks and applies one notification Apple POSTed; returns the HTTP status to answer with. */
  handleNotification(accountId: string, authorization: string | null, body: string, now: number): number;
  /** Needed only for `Driver.adopt` (several instances on one store). */
  adopt?(accountId: string, records: Array<StoredRecord | StoredRecordJson>, now: number): void;
  /** Needed only for `Driver.release`. */
  release?(accountId: string, now: number): void;
}

/**
 * The lease check the Driver makes before each request of an account leaves (several instances on one store;
 * `LeaseKeeper` from `vpp-license-engine/host` implements it).
 */
export interface DriverLeases {
  /** Whether this instance's lease of the account is valid now, by the local clock. */
  holds(accountId: string): boolean;
  /**
   * A request of the account was about to leave without a valid lease: release the account now (`Driver.release`).
   * The request is not sent, and its answer never comes.
   */
  lapsed(accountId: string): void;
}

export interface DriverOptions {
  engine: DriverEngine;
  transport: Transport;
  store: Store;
  /** Clock in Unix milliseconds, read on every engine call. Default `Date.now`. */
  now?: () => number;
  /** Engine events (status changes, sync progress, ...). A throw here goes to onError. */
  onEvent?: (event: EngineEvent) => void;
  /**
   * Failures with no caller to throw to: each failed attempt of a store write (the Driver retries it, see
   * `writeRetry`), an engine error while feeding a response or timeout, an onEvent throw. Default: console.error.
   */
  onError?: (error: unknown) => void;
  /** Default `globalThis.setTimeout`. */
  setTimer?: (callback: () => void, delayMs: number) => unknown;
  /** Default `globalThis.clearTimeout`. */
  clearTimer?: (handle: any) => void;
  /**
   * Several instances on one store: no request of an account leaves unless `leases.holds(accountId)`; a
   * notification for an account not held throws (the endpoint answers 503). Absent: every account is driven.
   */
  leases?: DriverLeases;
  /**
   * A store write that fails (`store.apply` rejects or throws: the database restarting, a dropped connection) is
   * tried again after `initialDelayMs`, then twice as long after each failure, at most every `maxDelayMs`, until it
   * is stored. Meanwhile the writes after it and every request queued after it wait: writes are never reordered,
   * and no request leaves before the records output ahead of it are stored. Default `{ initialDelayMs: 100,
   * maxDelayMs: 5000 }`.
   */
  writeRetry?: { initialDelayMs?: number; maxDelayMs?: number };
  /**
   * The engine's `rateLimitMarginMs` (pass the same value if you changed it there), 0..=1000. Default 250. The engine
   * counts a request for `maxRequestPerSecond` when it emits it; a request that had to wait for a store write leaves
   * later than counted. A request emitted a second or more after such a one is held so that it leaves no sooner after
   * it than it was emitted after it, up to 1 s + this margin: no more requests of an account leave within a second
   * (or within 1 s + the margin) than the engine let go in one. Requests that did not wait are never held.
   */
  rateLimitMarginMs?: number;
}

/**
 * Drives an Engine: sends its requests through the transport and feeds the answers back, writes its
 * persist records to the store (in order, before any later request leaves; a failed write is retried until
 * it is stored), surfaces its events and
 * keeps one timer armed at its next deadline. Request headers carry the sToken and are never logged.
 *
 * Back-pressure: while a store write is in flight, inputs, notifications, answers and timeouts are handed to the
 * engine at once, but its outputs (requests, records, events) stay in the engine until every queued write is
 * stored; then they are drained with the current time, so that the engine paces its requests by the time they
 * actually leave rather than bunching behind a slow store (see `rateLimitMarginMs` for the requests that still wait).
 */
export declare class Driver {
  constructor(options: DriverOptions);
  /** Drains the engine's pending outputs and arms the timer. */
  start(): void;
  /** Feeds one input and drains. Throws the engine's Error (with `.code`) when it rejects the input. */
  input(input: Input): void;
  /**
   * Feeds one notification Apple POSTed to `<notifications.url>/<accountId>` (raw body text, the request's
   * `Authorization` header or null) and drains. Returns the HTTP status to answer Apple with, empty body.
   * Throws the engine's Error, or when the driver is stopped: answer a 5xx then, so that Apple retries.
   * `vpp-license-engine/node` has a ready-made endpoint for Node's `http` servers.
   */
  notification(accountId: string, authorization: string | null, body: string): number;
  /**
   * Takes over one account (its lease was acquired) from its records and the records of no account
   * (`store.loadAccount(accountId)`; every record works too; after another adoption, its own records alone:
   * `store.loadAccount(accountId, { shared: false })`), then drains. Throws the engine's Error (UNKNOWN_ACCOUNT: the
   * records hold no such account).
   */
  adopt(accountId: string, records: Array<StoredRecord | StoredRecordJson>): void;
  /** Stops driving one account (its lease was lost or handed over), keeping its records, then drains. Throws the engine's Error. */
  release(accountId: string): void;
  /**
   * Resolves once every write queued so far (by the inputs, notifications and answers handled before the call) is
   * stored — records of calls handled while a write was in flight, still in the engine, included: it waits for the
   * drain that queues them. Rejects with the store's error as soon as one of them fails an attempt, and at once while one is
   * failing: the Driver keeps retrying it in order (see `writeRetry`), so a rejection means "not stored yet", not
   * "lost"; a later call waits for the retries. A host answers its caller with an error (the input was accepted but
   * is not durable yet) and may call again to wait; if the process ends before the write lands, the input is lost
   * as in a crash: send it again after the restart. After `stop()`, a write that fails is not retried: it and every
   * later write are given up, and writesSettled() rejects with that error from then on.
   */
  writesSettled(): Promise<void>;
  /** Requests of one account waiting to be sent (for a write, or held for the rate) or for their answer. */
  requestsInFlight(accountId: string): number;
  /**
   * Clears the timer and ignores later responses; no request leaves any more. Writes already queued are still applied
   * — with the records (and events) of calls handled while a write was in flight, drained once it lands — but one
   * that fails (or is waiting to be retried) is given up with every write after it.
   */
  stop(): void;
  /** Resolves when no request is in flight and no store write is pending. */
  whenIdle(): Promise<void>;
}
