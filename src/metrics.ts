/**
 * OpenTelemetry instruments for operators, through `@opentelemetry/api`: a no-op unless the app registers
 * a global meter provider before `Outbox.open()`. Queue depth and the age of the oldest pending event are
 * what show a receiver's outage eating into the outbox's reserve.
 */
import { metrics, ValueType } from '@opentelemetry/api';
import type { Attributes, BatchObservableCallback, Counter, Meter, ObservableGauge } from '@opentelemetry/api';
import type { AttemptResult } from './delivery/attempt.js';
import type { CircuitState } from './delivery/endpoint.js';
import type { DeadReason } from './store/store.js';

/** The instrumentation scope name. */
export const METER_NAME = 'webhook-outbox';

/** Numeric value of a circuit state in the `webhook_outbox.circuit.state` gauge. */
export const CIRCUIT_STATE_VALUE: Readonly<Record<CircuitState, number>> = Object.freeze({
  closed: 0,
  'half-open': 1,
  open: 2,
});

/** The part of `stats()` the gauges read. */
export interface MetricsSnapshot {
  pending: number;
  inFlight: number;
  dead: number;
  oldestPendingAgeMs: number | undefined;
  bytesOnDisk: number;
  endpoints: Record<string, { circuit: CircuitState; concurrency: number }>;
}

/**
 * The endpoint attribute: origin and path only. Query strings and user info may carry credentials and
 * would also explode cardinality.
 */
export function endpointAttribute(url: string): string {
  try {
    const parsed = new URL(url);
    return `${parsed.origin}${parsed.pathname}`;
  } catch {
    return 'invalid';
  }
}

/** One outbox's instruments. */
export class OutboxMetrics {
  readonly #meter: Meter;
  readonly #attempts: Counter;
  readonly #deadLettered: Counter;
  readonly #superseded: Counter;
  readonly #gauges: ObservableGauge[];
  readonly #callback: BatchObservableCallback;
  #closed = false;

  readonly #base: Attributes | undefined;

  /** `name`: the outbox's `name` option, carried by every observation as `webhook_outbox.name`. */
  constructor(snapshot: () => MetricsSnapshot, name?: string, meter: Meter = metrics.getMeter(METER_NAME)) {
    this.#meter = meter;
    const base: Attributes | undefined = name === undefined ? undefined : { 'webhook_outbox.name': name };
    this.#base = base;
    this.#attempts = meter.createCounter('webhook_outbox.attempts', {
      description: 'Delivery attempts, by outcome (delivered, retryable, permanent) and HTTP status',
      unit: '{attempt}',
      valueType: ValueType.INT,
    });
    this.#deadLettered = meter.createCounter('webhook_outbox.dead_lettered', {
      description: 'Events moved to the dead letters, by reason',
      unit: '{event}',
      valueType: ValueType.INT,
    });
    this.#superseded = meter.createCounter('webhook_outbox.superseded', {
      description: 'Events removed unsent because a later event of their ordering key superseded them',
      unit: '{event}',
      valueType: ValueType.INT,
    });
    const gauge = (name: string, description: string, unit: string, valueType = ValueType.INT): ObservableGauge =>
      meter.createObservableGauge(name, { description, unit, valueType });
    const depth = gauge('webhook_outbox.queue.depth', 'Events waiting to be delivered, in flight included', '{event}');
    const age = gauge('webhook_outbox.queue.oldest_age', 'Age of the oldest pending event', 's', ValueType.DOUBLE);
    const inFlight = gauge('webhook_outbox.in_flight', 'Requests being sent', '{request}');
    const dead = gauge('webhook_outbox.dead_letters', 'Dead letters kept (replayable)', '{event}');
    const bytes = gauge('webhook_outbox.bytes_on_disk', 'Bytes the outbox occupies on disk', 'By');
    const circuit = gauge('webhook_outbox.circuit.state', 'Circuit per endpoint: 0 closed, 1 half-open, 2 open', '1');
    const concurrency = gauge('webhook_outbox.endpoint.concurrency', 'Adaptive concurrency limit per endpoint', '{request}');
    this.#gauges = [depth, age, inFlight, dead, bytes, circuit, concurrency];
    this.#callback = (result) => {
      const s = snapshot();
      result.observe(depth, s.pending, base);
      result.observe(age, (s.oldestPendingAgeMs ?? 0) / 1000, base);
      result.observe(inFlight, s.inFlight, base);
      result.observe(dead, s.dead, base);
      result.observe(bytes, s.bytesOnDisk, base);
      // URLs that differ only in their query or user info share an attribute value: one observation each,
      // the worst circuit state and the summed concurrency (an exporter keeps one value per attribute set).
      const byAttribute = new Map<string, { circuit: number; concurrency: number }>();
      for (const [url, endpoint] of Object.entries(s.endpoints)) {
        const key = endpointAttribute(url);
        const seen = byAttribute.get(key);
        const state = CIRCUIT_STATE_VALUE[endpoint.circuit];
        byAttribute.set(key, {
          circuit: Math.max(seen?.circuit ?? 0, state),
          concurrency: (seen?.concurrency ?? 0) + endpoint.concurrency,
        });
      }
      for (const [endpoint, values] of byAttribute) {
        const attributes: Attributes = { ...base, 'webhook_outbox.endpoint': endpoint };
        result.observe(circuit, values.circuit, attributes);
        result.observe(concurrency, values.concurrency, attributes);
      }
    };
    meter.addBatchObservableCallback(this.#callback, this.#gauges);
  }

  /** Counts one attempt. */
  attempt(result: AttemptResult): void {
    const outcome = result.ok ? 'delivered' : result.retryable ? 'retryable' : 'permanent';
    const attributes: Attributes = { ...this.#base, outcome };
    if (result.status !== undefined) attributes['http.response.status_code'] = result.status;
    this.#attempts.add(1, attributes);
  }

  /** Counts one dead letter. */
  dead(reason: DeadReason): void {
    this.#deadLettered.add(1, { ...this.#base, reason });
  }

  /** Counts one superseded event. */
  superseded(): void {
    this.#superseded.add(1, this.#base);
  }

  /** Stops observing (the outbox is closed). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#meter.removeBatchObservableCallback(this.#callback, this.#gauges);
  }
}
