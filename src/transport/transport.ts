/**
 * The transport port: one HTTP POST attempt, no retries. The sender and the outbox own retrying; a
 * transport only reports what happened. Signing wraps a transport (see `signing/`), it does not live in one.
 */

/** One attempt to deliver, fully prepared: final headers (lower-case names) and the exact body bytes. */
export interface TransportRequest {
  /** Absolute http: or https: URL. */
  url: string;
  /** Final request headers, lower-case names. */
  headers: Record<string, string>;
  /** The exact bytes to send; signatures are computed over these. */
  body: Uint8Array;
  /** Overall deadline for this attempt (connect + send + response), in milliseconds. */
  timeoutMs: number;
  /** Aborts the attempt at once. */
  signal?: AbortSignal | undefined;
}

/** What the receiver answered. Any status is a response, including 3xx/4xx/5xx: the caller classifies it. */
export interface TransportResponse {
  status: number;
  /** Response headers, lower-case names. */
  headers: Record<string, string | undefined>;
  /** The start of the response body, bounded (a few KiB), for diagnostics and dead letters. */
  bodyExcerpt: string;
}

/**
 * Sends one request. Resolves with the response for every HTTP status; rejects with a `NetworkError`
 * (`ERR_NETWORK` with `errno`, `ERR_TIMEOUT`, or `ERR_ABORTED`) when no response arrived.
 */
export interface Transport {
  send(request: TransportRequest): Promise<TransportResponse>;
  /** Releases sockets and agents. Optional. */
  close?(): Promise<void>;
}
