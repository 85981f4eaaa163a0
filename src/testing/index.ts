/**
 * webhook-outbox/testing: helpers for testing code that sends webhooks.
 */
export { FakeClock } from '../clock.js';
export { startFlakyReceiver } from './flaky-receiver.js';
export type {
  FlakyReceiver,
  FlakyReceiverOptions,
  ReceivedRequest,
  Reply,
  ReplySpec,
  ReplyScript,
} from './flaky-receiver.js';
export { failThenSucceed, replySequence } from './nock-helpers.js';
export type {
  FailThenSucceedOptions,
  NockInterceptorLike,
  NockLike,
  NockScopeLike,
  NockStep,
} from './nock-helpers.js';
