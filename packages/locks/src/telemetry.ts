import { type Meter, metrics } from '@opentelemetry/api';
import type { Locks } from './types.js';
import { VERSION } from './version.js';

/** Options of `instrumentLocks`. */
export interface InstrumentOptions {
  /** Default: `metrics.getMeter('@oms/locks', VERSION)` from the global provider. */
  meter?: Meter;
}

/**
 * Records a store's events as OpenTelemetry metrics: `oms.locks.wait.duration` (histogram, seconds, by
 * backend, mode and outcome), `oms.locks.held` (up/down counter by backend and mode) and `oms.locks.lost`
 * (counter by backend, mode and reason). Lock keys are never attributes. Returns the unsubscribe function.
 *
 * @example
 * const locks = redisLocks({ redis, prefix: 'app:locks:' });
 * const stop = instrumentLocks(locks);
 * // on shutdown: stop(); await locks.close();
 */
export function instrumentLocks(locks: Locks, opts: InstrumentOptions = {}): () => void {
  const meter = opts.meter ?? metrics.getMeter('@oms/locks', VERSION);
  const wait = meter.createHistogram('oms.locks.wait.duration', {
    unit: 's',
    description: 'Time acquire waited, granted or not',
  });
  const held = meter.createUpDownCounter('oms.locks.held', { description: 'Leases currently held' });
  const lost = meter.createCounter('oms.locks.lost', { description: 'Leases lost before release' });
  const offs = [
    locks.on('acquired', (e) => {
      const a = { 'oms.locks.backend': e.backend, 'oms.locks.mode': e.mode };
      wait.record(e.waitMs / 1000, { ...a, 'oms.locks.outcome': 'acquired' });
      held.add(1, a);
    }),
    locks.on('waitFailed', (e) =>
      wait.record(e.waitMs / 1000, {
        'oms.locks.backend': e.backend,
        'oms.locks.mode': e.mode,
        'oms.locks.outcome': e.outcome,
      }),
    ),
    locks.on('released', (e) => held.add(-1, { 'oms.locks.backend': e.backend, 'oms.locks.mode': e.mode })),
    locks.on('lost', (e) => {
      held.add(-1, { 'oms.locks.backend': e.backend, 'oms.locks.mode': e.mode });
      lost.add(1, { 'oms.locks.backend': e.backend, 'oms.locks.mode': e.mode, 'oms.locks.reason': e.reason });
    }),
  ];
  return () => {
    for (const off of offs) off();
  };
}
