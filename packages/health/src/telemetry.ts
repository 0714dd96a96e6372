import { type Meter, metrics } from '@opentelemetry/api';
import type { CheckKind, HealthRegistry, HealthStatus } from './types.js';
import { VERSION } from './version.js';

const STATUS_VALUE: Record<HealthStatus, number> = { pass: 0, warn: 1, fail: 2 };

/**
 * Records `oms.health.check.duration` (histogram, seconds, by check and outcome) and `oms.health.status`
 * (observable gauge: 0 pass, 1 warn, 2 fail, by check and kind). Returns a function that stops recording.
 *
 * @example
 * import { instrumentHealth } from '@oms/health';
 * const stop = instrumentHealth(health); // uses the global MeterProvider
 */
export function instrumentHealth(
  registry: Pick<HealthRegistry, 'on' | 'checks'>,
  meter: Meter = metrics.getMeter('@oms/health', VERSION),
): () => void {
  const duration = meter.createHistogram('oms.health.check.duration', {
    description: 'Duration of one health check run',
    unit: 's',
  });
  const status = meter.createObservableGauge('oms.health.status', {
    description: 'Health status per check and probe kind: 0 pass, 1 warn, 2 fail',
  });
  const off = registry.on('check', (e) => {
    duration.record(e.durationMs / 1000, {
      'oms.health.check': e.name,
      'oms.health.status': e.status,
      'oms.health.timed_out': e.timedOut,
    });
  });
  const observe = (result: { observe(value: number, attrs: Record<string, string>): void }) => {
    for (const c of registry.checks()) {
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
