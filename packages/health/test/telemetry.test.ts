import { fakeClock } from '@oms/testkit';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { healthRegistry, instrumentHealth } from '../src/index.js';

describe('instrumentHealth', () => {
  it('records check durations in seconds and the status gauge by check and kind', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const clock = fakeClock();
    const registry = healthRegistry({ service: 's', version: '1', clock, processChecks: false });
    const stop = instrumentHealth(registry, provider.getMeter('@oms/health'));
    registry.register({
      name: 'db:responseTime',
      kinds: ['readiness', 'startup'],
      critical: true,
      timeoutMs: 1000,
      check: () => new Promise((r) => clock.setTimeout(() => r({ status: 'warn' }), 250)),
    });
    const p = registry.report('readiness');
    await clock.advanceAsync(250);
    await p;
    await reader.forceFlush();
    const metrics = exporter.getMetrics().flatMap((rm) => rm.scopeMetrics.flatMap((s) => s.metrics));
    const duration = metrics.find((m) => m.descriptor.name === 'oms.health.check.duration');
    expect(duration?.descriptor.unit).toBe('s');
    const point = duration?.dataPoints[0] as {
      value: { sum: number; count: number };
      attributes: Record<string, unknown>;
    };
    expect(point.value).toMatchObject({ sum: 0.25, count: 1 });
    expect(point.attributes).toMatchObject({
      'oms.health.check': 'db:responseTime',
      'oms.health.status': 'warn',
    });
    const gauge = metrics.find((m) => m.descriptor.name === 'oms.health.status');
    const byKind = Object.fromEntries(
      (gauge?.dataPoints ?? []).map((d) => [String(d.attributes['oms.health.kind']), d.value]),
    );
    expect(byKind).toEqual({ readiness: 1, startup: 1 });
    stop();
    await registry.close();
    await provider.shutdown();
  });
});
