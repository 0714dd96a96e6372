import { fakeClock } from '@oms/testkit';
import type { Attributes, Span, SpanOptions, Tracer } from '@opentelemetry/api';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';
import { instrument, isOmsLocksError, memoryLocks, memoryLockTable } from '../src/index.js';

function code(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    if (isOmsLocksError(e)) return `${e.code}: ${e.message}`;
    throw e;
  }
  return 'no error';
}

describe('store options use the shared vocabulary', () => {
  it('rejects bad options with ERR_OMS_LOCKS_INVALID_OPTION and the shared messages', () => {
    expect(code(() => memoryLocks({ ttlMs: Number.NaN }))).toBe(
      'ERR_OMS_LOCKS_INVALID_OPTION: ttlMs must be a duration in ms >= 0 (got NaN)',
    );
    expect(code(() => memoryLocks({ ttlMs: 50 }))).toBe(
      'ERR_OMS_LOCKS_INVALID_OPTION: ttlMs must be at least 200 ms, the heartbeat floor (got 50)',
    );
    expect(code(() => memoryLocks({ waitMs: -1 }))).toBe(
      'ERR_OMS_LOCKS_INVALID_OPTION: waitMs must be a duration in ms >= 0 or Infinity (got -1)',
    );
    expect(code(() => memoryLocks({ pollMs: 5 }))).toBe(
      'ERR_OMS_LOCKS_INVALID_OPTION: pollMs must be a duration in ms >= 10 (got 5)',
    );
    expect(code(() => memoryLocks({ safetyMarginMs: -1 }))).toMatch(
      /^ERR_OMS_LOCKS_INVALID_OPTION: safetyMarginMs/,
    );
    expect(code(() => memoryLocks({ fair: 'yes' as unknown as boolean }))).toMatch(
      /^ERR_OMS_LOCKS_INVALID_OPTION: fair must be true or false/,
    );
  });

  it('checks all three clock methods at construction', () => {
    const half = { now: () => 0, setTimeout: () => 0 } as unknown as api.Clock;
    expect(code(() => memoryLocks({ clock: half }))).toBe(
      'ERR_OMS_LOCKS_INVALID_OPTION: clock must be an object with now(), setTimeout() and clearTimeout()',
    );
    expect(code(() => memoryLocks({ clock: fakeClock() }))).toBe('no error');
  });

  it('keeps Clock, systemClock, VERSION and instrument public, and instrumentLocks gone', () => {
    expect(typeof api.systemClock.now()).toBe('number');
    expect(api.VERSION).toMatch(/^\d+\.\d+\.\d+/);
    expect(typeof api.instrument).toBe('function');
    expect('instrumentLocks' in api).toBe(false);
  });
});

describe('events', () => {
  it('on() returns an unsubscribe that removes exactly that registration', async () => {
    const locks = memoryLocks({ clock: fakeClock() });
    const seen: string[] = [];
    const fn = (e: { mode: string }) => void seen.push(e.mode);
    const off1 = locks.on('acquired', fn);
    const off2 = locks.on('acquired', fn);
    await (await locks.acquire('a')).release();
    expect(seen).toEqual(['exclusive', 'exclusive']);
    off1();
    off1();
    await (await locks.acquire('a')).release();
    expect(seen).toHaveLength(3);
    off2();
    await (await locks.acquire('a')).release();
    expect(seen).toHaveLength(3);
    await locks.close();
  });

  it("emits 'waiting' once per acquire that finds its key taken", async () => {
    const table = memoryLockTable();
    const clock = fakeClock();
    const [a, b] = [memoryLocks({ clock, table }), memoryLocks({ clock, table })];
    let waiting = 0;
    b.on('waiting', () => void waiting++);
    const held = await a.acquire('k');
    await (await b.tryAcquire('other'))?.release();
    const p = b.acquire('k', { waitMs: 5_000 });
    await clock.advanceAsync(3_000); // several polls
    expect(waiting).toBe(1);
    await held.release();
    await (await p).release();
    expect(waiting).toBe(1);
    await Promise.all([a.close(), b.close()]);
  });
});

/** Records what a tracer is asked for; only the calls `instrument` makes are implemented. */
function recordingTracer() {
  const spans: { name: string; attributes: Attributes; start: number; end: number }[] = [];
  const tracer = {
    startSpan(name: string, o: SpanOptions = {}) {
      const rec = { name, attributes: o.attributes ?? {}, start: Number(o.startTime), end: Number.NaN };
      return {
        end(at?: number) {
          rec.end = Number(at);
          spans.push(rec);
        },
      } as unknown as Span;
    },
  } as unknown as Tracer;
  return { tracer, spans };
}

describe('instrument', () => {
  it('records one lock.acquire span per acquire, covering its wait, without keys; detach stops it', async () => {
    const { tracer, spans } = recordingTracer();
    const table = memoryLockTable();
    const clock = fakeClock();
    const [a, b] = [memoryLocks({ clock, table }), memoryLocks({ clock, table })];
    const detach = instrument(b, { tracer });
    const held = await a.acquire('secret-key');
    const timedOut = b.acquire('secret-key', { waitMs: 250 }).catch((e) => e.code);
    await clock.advanceAsync(300);
    expect(await timedOut).toBe('ERR_OMS_LOCKS_TIMEOUT');
    const p = b.acquire('secret-key', { waitMs: 5_000, mode: 'shared' });
    await clock.advanceAsync(100);
    await held.release();
    await (await p).release();
    await b.acquire('secret-key', { waitMs: 10 }); // free now: granted on its first try
    expect(
      spans.map((s) => [s.name, s.attributes['oms.locks.outcome'], s.attributes['oms.locks.mode']]),
    ).toEqual([
      ['lock.acquire', 'timeout', 'exclusive'],
      ['lock.acquire', 'acquired', 'shared'],
      ['lock.acquire', 'acquired', 'exclusive'],
    ]);
    expect(spans[1]!.end - spans[1]!.start).toBeGreaterThanOrEqual(100);
    expect(JSON.stringify(spans)).not.toContain('secret-key');
    detach();
    await b.tryAcquire('other');
    expect(spans).toHaveLength(3);
    await Promise.all([a.close(), b.close()]);
  });
});
