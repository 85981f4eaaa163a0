/**
 * webhook-outbox/testing: helpers for testing code that sends webhooks.
 */
export { FakeClock } from '../clock.js';
