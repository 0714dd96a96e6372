import { type Meter, metrics } from '@opentelemetry/api';
import type { RateLimiter } from './types.js';
import { VERSION } from './version.js';

/**
 * Records a limiter's events as OpenTelemetry metrics: `oms.ratelimit.decisions` (counter by policy and
 * outcome), `oms.ratelimit.store.duration` (histogram, seconds) and `oms.ratelimit.store.errors` (counter by
 * policy, store error policy and code). Keys never become attributes. Returns a function that stops it.
 *
 * @example
 * const stop = instrument(limiter);
 * // ... on shutdown
 * stop();
 */
export function instrument(
  limiter: RateLimiter,
  meter: Meter = metrics.getMeter('@oms/ratelimit', VERSION),
): () => void {
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
    limiter.on('decision', (e) =>
      decisions.add(1, {
        'oms.ratelimit.policy': e.name,
        'oms.ratelimit.outcome': e.allowed ? 'allowed' : 'denied',
        ...(e.degraded ? { 'oms.ratelimit.degraded': e.degraded } : {}),
      }),
    ),
    limiter.on('storeCall', (e) =>
      duration.record(e.durationSec, {
        'oms.ratelimit.policy': e.name,
        'oms.ratelimit.store': e.store,
        'oms.ratelimit.outcome': e.ok ? 'ok' : 'error',
      }),
    ),
    limiter.on('storeError', (e) =>
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
