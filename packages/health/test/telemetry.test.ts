import { fakeClock } from '@oms/testkit';
import {
  type Attributes,
  type Span,
  type SpanOptions,
  SpanStatusCode,
  type Tracer,
} from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { healthRegistry, instrument } from '../src/index.js';

interface Recorded {
  name: string;
  attributes: Attributes;
  startTime: number;
  endTime?: number;
  status?: { code: SpanStatusCode; message?: string };
}

/** Records the spans `instrument` starts (the API's no-op tracer would hide them). */
function recordingTracer(): { tracer: Tracer; spans: Recorded[] } {
  const spans: Recorded[] = [];
  const tracer = {
    startSpan(name: string, options: SpanOptions = {}) {
      const rec: Recorded = {
        name,
        attributes: { ...options.attributes },
        startTime: options.startTime as number,
      };
      spans.push(rec);
      const span = {
        setStatus(status: Recorded['status']) {
          rec.status = status;
          return span;
        },
        end(endTime?: number) {
          rec.endTime = endTime as number;
        },
      };
      return span as unknown as Span;
    },
  } as unknown as Tracer;
  return { tracer, spans };
}

describe('instrument', () => {
  it('records check durations in seconds and the status gauge by check and kind', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const clock = fakeClock();
    const registry = healthRegistry({ service: 's', version: '1', clock, processChecks: false });
    const stop = instrument(registry, { meter: provider.getMeter('@oms/health') });
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

  it('draws one health.check span per run over its duration, an error when it failed; detach stops both', async () => {
    const { tracer, spans } = recordingTracer();
    const clock = fakeClock();
    const registry = healthRegistry({ service: 's', version: '1', clock, processChecks: false });
    const detach = instrument(registry, { tracer });
    let next: 'pass' | 'never' = 'never';
    registry.register({
      name: 'db:responseTime',
      kinds: ['readiness'],
      critical: true,
      timeoutMs: 100,
      check: () => (next === 'pass' ? { status: 'pass' } : new Promise(() => {})),
    });
    const timedOut = registry.report('readiness');
    await clock.advanceAsync(100);
    await timedOut;
    expect(spans).toHaveLength(1);
    expect(spans[0]).toMatchObject({
      name: 'health.check',
      attributes: {
        'oms.health.check': 'db:responseTime',
        'oms.health.status': 'fail',
        'oms.health.timed_out': true,
      },
      status: { code: SpanStatusCode.ERROR, message: 'timed out' },
    });
    expect((spans[0]?.endTime ?? 0) - (spans[0]?.startTime ?? 0)).toBe(100);
    detach();
    next = 'pass';
    await clock.advanceAsync(0);
    await registry.report('readiness');
    expect(spans).toHaveLength(1);
    await registry.close();
  });
});
