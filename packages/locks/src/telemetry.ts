import { type Meter, metrics, type Tracer, trace } from '@opentelemetry/api';
import type { LockMode, Locks } from './types.js';
import { VERSION } from './version.js';

/**
 * Options of `instrument`.
 *
 * @example
 * import { metrics, trace } from '@opentelemetry/api';
 * import { type InstrumentOptions, instrument, memoryLocks } from '@oms/locks';
 * const opts: InstrumentOptions = { meter: metrics.getMeter('app'), tracer: trace.getTracer('app') };
 * const detach = instrument(memoryLocks(), opts);
 */
export interface InstrumentOptions {
  /** Default: `metrics.getMeter('@oms/locks', VERSION)` from the global provider. */
  meter?: Meter;
  /** Default: `trace.getTracer('@oms/locks', VERSION)` from the global provider. */
  tracer?: Tracer;
}

/**
 * Records a store's events as OpenTelemetry metrics and spans: `oms.locks.wait.duration` (histogram, seconds,
 * by backend, mode and outcome), `oms.locks.held` (up/down counter by backend and mode), `oms.locks.lost`
 * (counter by backend, mode and reason), and a `lock.acquire` span per acquire that spans its wait. Lock keys are never attributes. Returns the function that detaches it.
 *
 * @example
 * import { instrument, memoryLocks } from '@oms/locks';
 * const locks = memoryLocks();
 * const detach = instrument(locks);
 * // on shutdown:
 * detach();
 * await locks.close();
 */
export function instrument(target: Locks, opts: InstrumentOptions = {}): () => void {
  const meter = opts.meter ?? metrics.getMeter('@oms/locks', VERSION);
  const tracer = opts.tracer ?? trace.getTracer('@oms/locks', VERSION);
  const wait = meter.createHistogram('oms.locks.wait.duration', {
    unit: 's',
    description: 'Time acquire waited, granted or not',
  });
  const held = meter.createUpDownCounter('oms.locks.held', { description: 'Leases currently held' });
  const lost = meter.createCounter('oms.locks.lost', { description: 'Leases lost before release' });
  const base = (e: { backend: string; mode: LockMode }) => ({
    'oms.locks.backend': e.backend,
    'oms.locks.mode': e.mode,
  });
  // the span covers the wait, which has already happened when the event arrives: start it in the past
  const waitSpan = (e: { backend: string; mode: LockMode; waitMs: number }, outcome: string) => {
    const end = Date.now();
    tracer
      .startSpan('lock.acquire', {
        startTime: end - e.waitMs,
        attributes: { ...base(e), 'oms.locks.outcome': outcome },
      })
      .end(end);
  };
  const offs = [
    target.on('acquired', (e) => {
      wait.record(e.waitMs / 1000, { ...base(e), 'oms.locks.outcome': 'acquired' });
      held.add(1, base(e));
      waitSpan(e, 'acquired');
    }),
    target.on('waitFailed', (e) => {
      wait.record(e.waitMs / 1000, { ...base(e), 'oms.locks.outcome': e.outcome });
      waitSpan(e, e.outcome);
    }),
    target.on('released', (e) => held.add(-1, base(e))),
    target.on('lost', (e) => {
      held.add(-1, base(e));
      lost.add(1, { ...base(e), 'oms.locks.reason': e.reason });
    }),
  ];
  return () => {
    for (const off of offs) off();
  };
}
