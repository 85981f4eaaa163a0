/**
 * webhook-outbox: send webhooks without ever losing one.
 * Explicit named exports only.
 */
export {
  WebhookOutboxError,
  InvalidOptionError,
  InvalidMessageError,
  HttpStatusError,
  NetworkError,
  ProxyError,
  SigningError,
  RetriesExhaustedError,
  StoreIoError,
  OutboxFullError,
  OutboxClosedError,
  OutboxLockedError,
  DrainTimeoutError,
} from './errors.js';
export type { ErrorCode } from './errors.js';
export { systemClock } from './clock.js';
export type { Clock, CancelTimer } from './clock.js';
export type { Transport, TransportRequest, TransportResponse } from './transport/transport.js';
export { createSender } from './sender.js';
export type { Sender, SendOptions, SendResult } from './sender.js';
export { Outbox } from './outbox.js';
export type { OutboxEventMap, OutboxStats, EndpointStats, EnqueueOptions, DrainOptions, CloseOptions, DeadLetterSelection, ReplayOptions, FoundEventStatus } from './outbox.js';
export type { OutboxOptions } from './options.js';
export type { DeliveredEvent, RetryEvent, DeadEvent, SupersededEvent, EndpointGoneEvent, CircuitEvent } from './delivery/flusher.js';
export type { CircuitState } from './delivery/endpoint.js';
export type { OutboxMessage, WebhookMessage } from './message.js';
export type { SenderOptions, RetryOptions, SigningSecretResolver, EndpointLimits } from './options.js';
export { createGotTransport } from './transport/got-transport.js';
export { checkEndpointUrl } from './endpoint-check.js';
export type { EndpointCheck, EndpointCheckOptions } from './endpoint-check.js';
export type { HostResolver } from './transport/private-addresses.js';
export type { GotTransportOptions } from './transport/got-transport.js';
export { signPayload, verifyWebhook } from './signing/sign.js';
export type { IncomingHeaders, RawBody, VerifyOptions, VerifyResult } from './signing/sign.js';
export { generateSigningKeyPair, signingPublicKey } from './signing/ed25519-keys.js';
export type { SigningKeyPair } from './signing/ed25519-keys.js';
export { backoffDelay, nextDelay } from './retry/backoff.js';
export type { BackoffPolicy, RandomSource } from './retry/backoff.js';
export { parseRetryAfter } from './retry/retry-after.js';
export { MAX_HISTORY } from './store/store.js';
export { MemoryStore } from './store/memory.js';
export type { MemoryStoreOptions, MemoryStoreSnapshot } from './store/memory.js';
export { LowdbStore } from './store/lowdb.js';
export type { LowdbStoreOptions } from './store/lowdb.js';
export { PostgresStore } from './store/postgres.js';
export type { PostgresStoreOptions, PostgresQueryable, PostgresQuery, PostgresInspectOptions, PostgresStoreInspection } from './store/postgres.js';
export { FileStore } from './store/file/file-store.js';
export type { FileStoreOptions, FileStoreInspection } from './store/file/file-store.js';
export type { FileSystem } from './store/file/file-system.js';
export type {
  OutboxStore,
  AppendOptions,
  NewEvent,
  StoredEvent,
  AttemptRecord,
  ClaimRequest,
  ClaimResult,
  Outcome,
  DeadReason,
  DeadLetter,
  DeadLetterQuery,
  FoundEvent,
  StoreStats,
  EndpointStoreStats,
} from './store/store.js';
