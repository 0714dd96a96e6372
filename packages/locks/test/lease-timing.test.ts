import { fakeClock } from '@oms/testkit';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { instrument, memoryLocks, memoryLockTable } from '../src/index.js';

describe('lease timing on a fake clock', () => {
  it('auto-extends at ttl/3 and never loses a healthy lease', async () => {
    const clock = fakeClock();
    const locks = memoryLocks({ clock, ttlMs: 3_000 });
    const at: number[] = [];
    locks.on('extended', (e) => at.push(e.at));
    const t0 = clock.now();
    const lease = await locks.acquire('k');
    await clock.advanceAsync(10_000);
    expect(lease.lost).toBe(false);
    expect(at.slice(0, 3).map((t) => t - t0)).toEqual([1_000, 2_000, 3_000]);
    expect(lease.validUntil).toBe(at.at(-1)! + 3_000 - 300);
    await lease.release();
    expect(clock.pending()).toBe(0);
    await locks.close();
  });

  it('aborts the signal at last extension + ttl - safety margin when extension stops', async () => {
    const clock = fakeClock();
    const locks = memoryLocks({ clock, ttlMs: 1_000, safetyMarginMs: 100 });
    const lease = await locks.acquire('k', { autoExtend: false });
    const t0 = clock.now();
    await clock.advanceAsync(500);
    await lease.extend();
    await clock.advanceAsync(899);
    expect(lease.signal.aborted).toBe(false);
    await clock.advanceAsync(1);
    expect(lease.signal.aborted).toBe(true);
    expect(clock.now() - t0).toBe(500 + 1_000 - 100);
    await locks.close();
  });

  it('keeps the key from another store until the holder counts its lease lost, then frees it', async () => {
    const clock = fakeClock();
    const table = memoryLockTable();
    const a = memoryLocks({ clock, table, ttlMs: 1_000 });
    const b = memoryLocks({ clock, table, ttlMs: 1_000 });
    const lease = await a.acquire('k', { autoExtend: false });
    await clock.advanceAsync(899); // lost at ttl - default margin (ttl / 10)
    expect(await b.tryAcquire('k')).toBeNull();
    await clock.advanceAsync(1);
    expect(lease.lost).toBe(true);
    const l2 = await b.tryAcquire('k');
    expect(l2?.fencingToken).toBe(lease.fencingToken + 1n);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('instrument', () => {
  it('records wait duration, held leases and losses by backend, mode and reason, never keys', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const clock = fakeClock();
    const locks = memoryLocks({ clock, ttlMs: 1_000 });
    const stop = instrument(locks, { meter: provider.getMeter('@oms/locks') });
    const l1 = await locks.acquire('secret-key-1', { mode: 'shared' });
    await locks.acquire('secret-key-2', { autoExtend: false });
    await clock.advanceAsync(1_000);
    await l1.release();
    await reader.forceFlush();
    const metrics = exporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
    const byName = Object.fromEntries(metrics.map((m) => [m.descriptor.name, m]));
    expect(Object.keys(byName).sort()).toEqual([
      'oms.locks.held',
      'oms.locks.lost',
      'oms.locks.wait.duration',
    ]);
    expect(byName['oms.locks.wait.duration']!.descriptor.unit).toBe('s');
    const lost = byName['oms.locks.lost']!.dataPoints;
    expect(lost).toHaveLength(1);
    expect(lost[0]!.attributes).toEqual({
      'oms.locks.backend': 'memory',
      'oms.locks.mode': 'exclusive',
      'oms.locks.reason': 'expired',
    });
    const held = byName['oms.locks.held']!.dataPoints.map((d) => d.value);
    expect(held).toEqual([0, 0]);
    expect(JSON.stringify(metrics)).not.toContain('secret-key');
    stop();
    await locks.close();
    await provider.shutdown();
  });
});
