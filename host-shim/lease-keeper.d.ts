import type { Input } from 'vpp-license-engine';
import type { Driver, DriverLeases } from './driver.js';
import type { LeaseStore, Store } from './store.js';

/** What happened to one account's lease (for logs). */
export interface LeaseChange {
  /**
   * `acquired`: this instance drives the account now (adopted, or added here). `lost`: its lease was taken,
   * not renewed in time, or a write was refused; the account was released at once. `released`: given up on
   * purpose (handed over to balance the accounts, account deleted, instance stopping).
   */
  type: 'acquired' | 'lost' | 'released';
  accountId: string;
  reason: string;
}

export interface LeaseKeeperOptions {
  /** Shared by every instance: `PostgresStore` (production) or `MemoryStore` (tests). */
  store: LeaseStore;
  /** This instance's id in the lease rows. Default: a random UUID. Never give two live processes the same one. */
  holder?: string;
  /**
   * Lease duration. Default 30000. A dead instance's accounts are taken over about ttl after its last renewal (the
   * others plan a round at the expiry of its leases), plus the time adopting them takes.
   */
  ttlMs?: number;
  /**
   * Subtracted from the local expiry (time the acquiring statement was sent + ttl): covers the drift between this
   * clock and the store's over one ttl, and the time a request takes to reach Apple. Default ttl / 10.
   */
  marginMs?: number;
  /**
   * Time between rounds (earlier when another instance's lease expires before the next one). Default ttl / 3.
   * renewEveryMs + marginMs must be below ttlMs.
   */
  renewEveryMs?: number;
  /** The Driver's clock (Unix ms). Default Date.now. */
  now?: () => number;
  setTimer?: (callback: () => void, delayMs: number) => unknown;
  clearTimer?: (handle: any) => void;
  onLease?: (change: LeaseChange) => void;
  /** A failed round (store unreachable, …) or a failed adopt. Default console.error. */
  onError?: (error: unknown) => void;
}

/**
 * Keeps one instance's account leases and makes its Driver drive exactly those accounts (see README, "Several
 * backends on one PostgreSQL"). Build the Driver with `store: keeper.store, leases: keeper`, then
 * `keeper.start(driver)`; start every Engine empty (`new Engine`), not with `Engine.restore`. A store that cannot be
 * reached (a database failover or restart) fails the rounds and the writes: the Driver retries its writes in order,
 * the accounts lapse at their local expiry if no renewal got through, and the keeper takes leases again once the
 * store answers. It takes a lease its engine does not drive only once every queued write is stored.
 */
export declare class LeaseKeeper implements DriverLeases {
  constructor(options: LeaseKeeperOptions);
  readonly holder: string;
  /** The Store for the Driver: writes fenced by lease; ops of accounts not held are left out and those accounts released. */
  readonly store: Store;
  /** Announces this instance now; takes leases from the next round on. */
  start(driver: Driver): void;
  /**
   * One round now (heartbeat, renewals; then hand-overs, new leases and adoptions, which go on after it resolves); one
   * runs every renewEveryMs anyway, earlier at the expiry of a lease another instance did not renew.
   */
  round(): Promise<void>;
  holds(accountId: string): boolean;
  lapsed(accountId: string): void;
  /** The accounts this instance drives, sorted. */
  held(): string[];
  /**
   * Adds an account on this instance, taking its lease first. Rejects with code ACCOUNT_EXISTS (the store has
   * it already), LEASE_HELD (another instance is adding it) or the engine's Error.
   */
  addAccount(input: Extract<Input, { type: 'addAccount' }>): Promise<void>;
  /**
   * Graceful stop: releases every account, waits for queued writes, ends its leases and presence. Before driver.stop().
   * Rejects with the store's error when a queued write is failing (its leases then end at their expiry): call it
   * again to retry, or stop anyway.
   */
  stop(): Promise<void>;
}
