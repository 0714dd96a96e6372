import { readFileSync } from 'node:fs';
import { type Meter, metrics, type Tracer, trace } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import {
  bulkhead,
  circuitBreaker,
  constantBackoff,
  instrument,
  pipeline,
  retry,
  retryBudget,
} from '../src/index.js';

describe('instrument()', () => {
  it('records state, calls by outcome, retries and rejections by reason, with names only', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const meter = provider.getMeter('@oms/breaker');
    const cb = circuitBreaker({ name: 'payments', consecutiveFailures: 2 });
    const r = retry({
      name: 'payments-retry',
      maxAttempts: 2,
      backoff: constantBackoff(0),
      budget: retryBudget({ minPerSec: 0, ratio: 0 }),
    });
    const r2 = retry({ name: 'r2', maxAttempts: 2, backoff: constantBackoff(0) });
    const bh = bulkhead({ name: 'pool', maxConcurrent: 1 });
    const detach = [
      instrument(pipeline(r2, cb), { meter }),
      instrument(r, { meter }),
      instrument(bh, { meter }),
    ];
    await cb.execute(() => 1);
    await pipeline(r2, cb)
      .execute(() => Promise.reject(new Error('x')))
      .catch(() => {}); // 2 failures -> open
    await cb.execute(() => 1).catch(() => {}); // rejected
    await r.execute(() => Promise.reject(new Error('x'))).catch(() => {}); // budget
    let release = () => {};
    const hold = bh.execute(() => new Promise<void>((res) => (release = res)));
    await bh.execute(() => 1).catch(() => {});
    release();
    await hold;
    await reader.forceFlush();
    const metrics = exporter.getMetrics().flatMap((m) => m.scopeMetrics.flatMap((s) => s.metrics));
    const points = (name: string) =>
      metrics
        .filter((m) => m.descriptor.name === name)
        .flatMap((m) => m.dataPoints.map((d) => [d.attributes, d.value]));
    expect(points('oms.breaker.state')).toEqual([[{ 'oms.breaker.name': 'payments' }, 2]]);
    expect(points('oms.breaker.calls')).toEqual(
      expect.arrayContaining([
        [{ 'oms.breaker.name': 'payments', 'oms.breaker.outcome': 'success' }, 1],
        [{ 'oms.breaker.name': 'payments', 'oms.breaker.outcome': 'failure' }, 2],
        [{ 'oms.breaker.name': 'payments', 'oms.breaker.outcome': 'rejected' }, 1],
      ]),
    );
    expect(points('oms.breaker.retries')).toEqual([[{ 'oms.breaker.name': 'r2' }, 1]]);
    expect(points('oms.breaker.rejections')).toEqual(
      expect.arrayContaining([
        [
          {
            'oms.breaker.name': 'payments',
            'oms.breaker.policy': 'circuit-breaker',
            'oms.breaker.reason': 'open',
          },
          1,
        ],
        [
          {
            'oms.breaker.name': 'payments-retry',
            'oms.breaker.policy': 'retry',
            'oms.breaker.reason': 'retry-budget',
          },
          1,
        ],
        [
          {
            'oms.breaker.name': 'pool',
            'oms.breaker.policy': 'bulkhead',
            'oms.breaker.reason': 'bulkhead-full',
          },
          1,
        ],
      ]),
    );
    const dur = metrics.find((m) => m.descriptor.name === 'oms.breaker.call.duration');
    expect(dur?.descriptor.unit).toBe('s');
    for (const d of detach) d();
    await provider.shutdown();
  });

  it('records each state change as a short breaker.transition span, and detach() removes every listener', async () => {
    const spans: { name: string; attributes: unknown; ended: boolean }[] = [];
    const tracer = {
      startSpan(name: string, o?: { attributes?: unknown }) {
        const s = { name, attributes: o?.attributes, ended: false };
        spans.push(s);
        return {
          end: () => {
            s.ended = true;
          },
        };
      },
    } as unknown as Tracer;
    const meter = new MeterProvider().getMeter('@oms/breaker');
    const cb = circuitBreaker({ name: 'payments', consecutiveFailures: 1 });
    const detach = instrument(cb, { meter, tracer });
    await cb.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    cb.reset();
    expect(spans).toEqual([
      {
        name: 'breaker.transition',
        attributes: {
          'oms.breaker.name': 'payments',
          'oms.breaker.from': 'closed',
          'oms.breaker.to': 'open',
          'oms.breaker.reason': 'consecutive-failures',
        },
        ended: true,
      },
      {
        name: 'breaker.transition',
        attributes: {
          'oms.breaker.name': 'payments',
          'oms.breaker.from': 'open',
          'oms.breaker.to': 'closed',
          'oms.breaker.reason': 'reset',
        },
        ended: true,
      },
    ]);
    detach();
    await cb.execute(() => Promise.reject(new Error('x'))).catch(() => {});
    expect(cb.state).toBe('open');
    expect(spans.length).toBe(2);
  });

  it("asks the global providers for the meter and tracer '@oms/breaker' at the version in package.json", () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      version: string;
    };
    const asked: string[] = [];
    const meter = new MeterProvider().getMeter('unused');
    metrics.setGlobalMeterProvider({
      getMeter: (name: string, version?: string) => {
        asked.push(`meter ${name}@${version}`);
        return meter as Meter;
      },
    });
    trace.setGlobalTracerProvider({
      getTracer: (name: string, version?: string) => {
        asked.push(`tracer ${name}@${version}`);
        return { startSpan: () => ({ end: () => {} }) } as unknown as Tracer;
      },
    });
    try {
      const detach = instrument(circuitBreaker({ name: 'v' }));
      detach();
      expect(asked).toEqual([`meter @oms/breaker@${pkg.version}`, `tracer @oms/breaker@${pkg.version}`]);
    } finally {
      metrics.disable();
      trace.disable();
    }
  });
});
