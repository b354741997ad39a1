import type { RequestOutput } from 'vpp-license-engine';

/** What a Transport returns for one request: header names lower-cased, body as text. */
export interface TransportResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** Performs the engine's HTTP requests. Rejects on a network error or timeout (the Driver reports it as `networkError`). */
export interface Transport {
  send(request: RequestOutput): Promise<TransportResponse>;
}

export interface FetchTransportOptions {
  /** Default `globalThis.fetch`. */
  fetch?: typeof globalThis.fetch;
  /** Replaces the `https://vpp.itunes.apple.com/mdm/v2` prefix of request URLs (a relay, the simulator). */
  baseUrl?: string;
  /** Abort a request (including reading its body) after this long. Default 60000. */
  timeoutMs?: number;
}

/** `https://vpp.itunes.apple.com/mdm/v2`: the URL prefix that `baseUrl` replaces. */
export declare const APPLE_BASE_URL: string;

export declare function createFetchTransport(options?: FetchTransportOptions): Transport;
