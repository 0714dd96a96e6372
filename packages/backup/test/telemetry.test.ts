import { fakeClock } from '@oms/testkit';
import type { Span, Tracer } from '@opentelemetry/api';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { backupManager, instrument } from '../src/index.js';
import { memorySource } from './fixtures/memory-source.js';
import { memoryStorage } from './fixtures/memory-storage.js';

function recordingTracer() {
  const spans: { name: string; attributes: Record<string, unknown>; status?: unknown; ended: boolean }[] = [];
  const tracer = {
    startSpan(name: string, o: { attributes?: Record<string, unknown> } = {}) {
      const s = { name, attributes: { ...o.attributes }, ended: false } as (typeof spans)[number];
      spans.push(s);
      return {
        setAttribute: (k: string, v: unknown) => {
          s.attributes[k] = v;
        },
        setStatus: (st: unknown) => {
          s.status = st;
        },
        end: () => {
          s.ended = true;
        },
      } as unknown as Span;
    },
  } as unknown as Tracer;
  return { tracer, spans };
}

describe('instrument', () => {
  it('records durations in seconds, bytes, last success and verify failures, one span per operation, and detaches', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 3_600_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const clock = fakeClock(Date.parse('2026-01-01T00:00:00Z'));
    const storage = memoryStorage();
    const backups = backupManager({ source: memorySource(), storage, clock, name: 'orders' });
    const { tracer, spans } = recordingTracer();
    const detach = instrument(backups, { meter: provider.getMeter('test'), tracer });

    const m = await backups.create();
    await backups.verify(m.id);
    async function* junk() {
      yield Buffer.from('x');
    }
    await storage.put(`${m.id}/archive.json`, junk());
    await expect(backups.verify(m.id)).rejects.toMatchObject({ code: 'ERR_OMS_BACKUP_CORRUPT' });

    await reader.forceFlush();
    const metrics = exporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
    const byName = Object.fromEntries(metrics.map((x) => [x.descriptor.name, x]));
    expect(byName['oms.backup.duration']?.descriptor.unit).toBe('s');
    const durations = byName['oms.backup.duration']?.dataPoints.map((p) => p.attributes) ?? [];
    expect(durations).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          'oms.backup.operation': 'create',
          'oms.backup.outcome': 'success',
          'oms.backup.name': 'orders',
        }),
        expect.objectContaining({
          'oms.backup.operation': 'verify',
          'oms.backup.outcome': 'failure',
          'error.type': 'ERR_OMS_BACKUP_CORRUPT',
        }),
      ]),
    );
    expect(byName['oms.backup.bytes']?.dataPoints[0]?.value).toMatchObject({ count: 1, sum: m.bytes });
    expect(byName['oms.backup.last_success']?.dataPoints[0]?.value).toBe(Date.parse(m.time) / 1000);
    expect(byName['oms.backup.verify.failures']?.dataPoints[0]).toMatchObject({
      value: 1,
      attributes: { 'error.type': 'ERR_OMS_BACKUP_CORRUPT', 'oms.backup.name': 'orders' },
    });
    const attrs = JSON.stringify(metrics.map((x) => x.dataPoints.map((p) => p.attributes)));
    expect(attrs).not.toContain(m.id);

    expect(spans.map((s) => [s.name, s.ended])).toEqual([
      ['backup.create', true],
      ['backup.verify', true],
      ['backup.verify', true],
    ]);
    expect(spans[2]?.status).toMatchObject({ message: 'ERR_OMS_BACKUP_CORRUPT' });

    detach();
    await backups.create();
    expect(spans).toHaveLength(3);
    await provider.shutdown();
  });
});
