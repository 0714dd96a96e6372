import { type Meter, metrics, SpanStatusCode, type Tracer, trace } from '@opentelemetry/api';
import type { CheckKind, HealthRegistry, HealthStatus } from './types.js';
import { VERSION } from './version.js';

const STATUS_VALUE: Record<HealthStatus, number> = { pass: 0, warn: 1, fail: 2 };

/**
 * Options of {@link instrument}: the meter and tracer to use instead of the global ones.
 *
 * @example
 * import { metrics, trace } from '@opentelemetry/api';
 * import type { InstrumentOptions } from '@oms/health';
 * const options: InstrumentOptions = { meter: metrics.getMeter('orders'), tracer: trace.getTracer('orders') };
 */
export interface InstrumentOptions {
  /** Default `metrics.getMeter('@oms/health', VERSION)`. */
  meter?: Meter | undefined;
  /** Default `trace.getTracer('@oms/health', VERSION)`. */
  tracer?: Tracer | undefined;
}

/**
 * OpenTelemetry for a registry, fed by its `check` events:
 * - `oms.health.check.duration`: histogram in seconds, by `oms.health.check`, `oms.health.status` and
 *   `oms.health.timed_out`;
 * - `oms.health.status`: observable gauge (0 pass, 1 warn, 2 fail) by `oms.health.check` and `oms.health.kind`;
 * - one `health.check` span per run, with the same attributes, and an error status when the run failed.
 *
 * Returns a function that stops recording.
 *
 * @example
 * import { healthRegistry, instrument } from '@oms/health';
 * const health = healthRegistry({ service: 'orders', version: '1.4.0' });
 * const detach = instrument(health); // the global MeterProvider and TracerProvider
 * detach();
 */
export function instrument(
  target: Pick<HealthRegistry, 'on' | 'checks'>,
  options: InstrumentOptions = {},
): () => void {
  const meter = options.meter ?? metrics.getMeter('@oms/health', VERSION);
  const tracer = options.tracer ?? trace.getTracer('@oms/health', VERSION);
  const duration = meter.createHistogram('oms.health.check.duration', {
    description: 'Duration of one health check run',
    unit: 's',
  });
  const status = meter.createObservableGauge('oms.health.status', {
    description: 'Health status per check and probe kind: 0 pass, 1 warn, 2 fail',
  });
  const off = target.on('check', (e) => {
    const attributes = {
      'oms.health.check': e.name,
      'oms.health.status': e.status,
      'oms.health.timed_out': e.timedOut,
    };
    duration.record(e.durationMs / 1000, attributes);
    // The run is over when the event arrives: the span is drawn after the fact over the run's duration.
    const end = Date.now();
    const span = tracer.startSpan('health.check', { startTime: end - e.durationMs, attributes });
    if (e.status === 'fail') {
      span.setStatus({ code: SpanStatusCode.ERROR, message: e.timedOut ? 'timed out' : 'failed' });
    }
    span.end(end);
  });
  const observe = (result: { observe(value: number, attrs: Record<string, string>): void }) => {
    for (const c of target.checks()) {
      if (c.status === 'unknown') continue;
      for (const kind of c.kinds as CheckKind[]) {
        result.observe(STATUS_VALUE[c.status], { 'oms.health.check': c.name, 'oms.health.kind': kind });
      }
    }
  };
  status.addCallback(observe);
  return () => {
    off();
    status.removeCallback(observe);
  };
}
