import { type Meter, metrics, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import type { RateLimiter } from './types.js';
import { VERSION } from './version.js';

/**
 * Where `instrument` records. Each defaults to the global provider's `@oms/ratelimit` meter or tracer.
 *
 * @example
 * import { metrics } from '@opentelemetry/api';
 * import type { InstrumentOptions } from '@oms/ratelimit';
 * const o: InstrumentOptions = { meter: metrics.getMeter('my-service') };
 */
export interface InstrumentOptions {
  meter?: Meter;
  tracer?: Tracer;
}

/**
 * Records a limiter's events with OpenTelemetry. Metrics: `oms.ratelimit.decisions` (counter by policy and
 * outcome), `oms.ratelimit.store.duration` (histogram, seconds) and `oms.ratelimit.store.errors` (counter by
 * policy, store error policy and code). Spans: one short `ratelimit.store` span per store round trip (none on
 * memory). Keys never become attributes. Returns a function that detaches every listener.
 *
 * @example
 * import { instrument, rateLimiter, tokenBucket } from '@oms/ratelimit';
 * const limiter = rateLimiter({ name: 'api', algorithm: tokenBucket({ capacity: 10, refillPerSec: 5 }) });
 * const detach = instrument(limiter);
 * // on shutdown
 * detach();
 */
export function instrument(target: RateLimiter, o: InstrumentOptions = {}): () => void {
  const meter = o.meter ?? metrics.getMeter('@oms/ratelimit', VERSION);
  const tracer = o.tracer ?? trace.getTracer('@oms/ratelimit', VERSION);
  const decisions = meter.createCounter('oms.ratelimit.decisions', {
    description: 'Rate-limit decisions by outcome',
  });
  const duration = meter.createHistogram('oms.ratelimit.store.duration', {
    description: 'Store round trip of a rate-limit decision',
    unit: 's',
  });
  const errors = meter.createCounter('oms.ratelimit.store.errors', {
    description: 'Store failures and timeouts, each decided by the onStoreError policy',
  });
  const off = [
    target.on('decision', (d) =>
      decisions.add(1, {
        'oms.ratelimit.policy': d.policy.name,
        'oms.ratelimit.outcome': d.allowed ? 'allowed' : 'denied',
        ...(d.degraded ? { 'oms.ratelimit.degraded': d.degraded } : {}),
      }),
    ),
    target.on('storeCall', (e) => {
      const attributes = {
        'oms.ratelimit.policy': e.name,
        'oms.ratelimit.store': e.store,
        'oms.ratelimit.outcome': e.ok ? 'ok' : 'error',
      };
      duration.record(e.durationSec, attributes);
      // the event comes when the call ends, so the span is laid out backwards from now
      const end = Date.now();
      const span = tracer.startSpan('ratelimit.store', { startTime: end - e.durationSec * 1000, attributes });
      if (!e.ok) span.setStatus({ code: SpanStatusCode.ERROR });
      span.end(end);
    }),
    target.on('storeError', (e) =>
      errors.add(1, {
        'oms.ratelimit.policy': e.name,
        'oms.ratelimit.store': e.store,
        'oms.ratelimit.on_store_error': e.policy,
        'error.type': e.code,
      }),
    ),
  ];
  return () => {
    for (const f of off) f();
  };
}
