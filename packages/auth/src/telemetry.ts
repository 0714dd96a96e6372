import { type Meter, metrics, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import type { Verifier } from './types.js';
import { VERSION } from './version.js';

/**
 * Options of `instrument`.
 *
 * @example
 * import { metrics } from '@opentelemetry/api';
 * import type { InstrumentOptions } from '@oms/auth';
 * const opts: InstrumentOptions = { meter: metrics.getMeter('orders-api') };
 */
export interface InstrumentOptions {
  /** Default: `metrics.getMeter('@oms/auth', VERSION)` from the global provider. */
  meter?: Meter;
  /** Default: `trace.getTracer('@oms/auth', VERSION)`; each verification becomes an `auth.verify` span. */
  tracer?: Tracer;
}

/**
 * Records a verifier's events as OpenTelemetry metrics: `oms.auth.verifications` (counter by outcome code and
 * cache), `oms.auth.verify.duration` (histogram, seconds), `oms.auth.cache.hits` (counter) and
 * `oms.auth.jwks.fetches` (counter by outcome, reason and error). Each verification is also an `auth.verify`
 * span. Tokens, subjects and kids are never attributes. Returns the function that detaches it.
 *
 * @example
 * import { createVerifier, hmacSecret, instrument } from '@oms/auth';
 * const verifier = createVerifier({
 *   issuer: 'https://idp.example.com/',
 *   audience: 'orders-api',
 *   algorithms: ['HS256'],
 *   keys: hmacSecret(process.env.JWT_SECRET ?? ''),
 * });
 * const detach = instrument(verifier);
 * // on shutdown
 * detach();
 */
export function instrument(verifier: Verifier, opts: InstrumentOptions = {}): () => void {
  const meter = opts.meter ?? metrics.getMeter('@oms/auth', VERSION);
  const tracer = opts.tracer ?? trace.getTracer('@oms/auth', VERSION);
  const verifications = meter.createCounter('oms.auth.verifications', {
    description: 'Token verifications by outcome code',
  });
  const duration = meter.createHistogram('oms.auth.verify.duration', {
    description: 'Time one verification took, cache hits included',
    unit: 's',
  });
  const hits = meter.createCounter('oms.auth.cache.hits', {
    description: 'Verifications answered from the cache',
  });
  const fetches = meter.createCounter('oms.auth.jwks.fetches', {
    description: 'JWKS fetch attempts by outcome',
  });
  const offs = [
    verifier.on('verification', (e) => {
      const attrs = { 'oms.auth.outcome': e.outcome, 'oms.auth.cached': e.cached };
      verifications.add(1, attrs);
      duration.record(e.durationSec, attrs);
      if (e.cached) hits.add(1);
      // The span is made from the fact after it happened, so core logic never touches OpenTelemetry.
      const span = tracer.startSpan('auth.verify', { startTime: e.startTime, attributes: attrs });
      if (e.outcome !== 'ok') span.setStatus({ code: SpanStatusCode.ERROR, message: e.outcome });
      span.end(e.startTime + e.durationSec * 1000);
    }),
    verifier.on('jwksFetch', (e) =>
      fetches.add(1, {
        'oms.auth.outcome': e.outcome,
        'oms.auth.reason': e.reason,
        ...(e.error === undefined ? {} : { 'error.type': e.error }),
      }),
    ),
  ];
  return () => {
    for (const off of offs) off();
  };
}
