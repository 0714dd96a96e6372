import { describe, expect, it } from 'vitest';
import { fakeClock } from '../src/clock.js';

describe('fakeClock', () => {
  it('only moves when advanced', () => {
    const clock = fakeClock(1_000);
    expect(clock.now()).toBe(1_000);
    clock.advance(250);
    expect(clock.now()).toBe(1_250);
  });

  it('fires a timer exactly at its due time, not a millisecond before', () => {
    const clock = fakeClock(0);
    const fired: number[] = [];
    clock.setTimeout(() => fired.push(clock.now()), 100);
    clock.advance(99);
    expect(fired).toEqual([]);
    clock.advance(1);
    expect(fired).toEqual([100]);
    expect(clock.pending()).toBe(0);
  });

  it('runs due timers in time order, ties in scheduling order, with now() at each due time', () => {
    const clock = fakeClock(0);
    const log: string[] = [];
    clock.setTimeout(() => log.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => log.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => log.push(`c@${clock.now()}`), 20);
    clock.advance(50);
    expect(log).toEqual(['a@10', 'b@20', 'c@20']);
    expect(clock.now()).toBe(50);
  });

  it('runs timers scheduled by a firing timer when they fall inside the same advance', () => {
    const clock = fakeClock(0);
    const log: number[] = [];
    clock.setTimeout(() => {
      log.push(clock.now());
      clock.setTimeout(() => log.push(clock.now()), 30);
    }, 10);
    clock.advance(100);
    expect(log).toEqual([10, 40]);
  });

  it('never fires a cleared timer', () => {
    const clock = fakeClock(0);
    let fired = false;
    const h = clock.setTimeout(() => {
      fired = true;
    }, 5);
    clock.clearTimeout(h);
    clock.advance(10);
    expect(fired).toBe(false);
    expect(clock.pending()).toBe(0);
  });

  it('returns handles that accept unref() like Node timers', () => {
    const clock = fakeClock(0);
    const h = clock.setTimeout(() => {}, 5) as { unref(): unknown };
    expect(() => h.unref()).not.toThrow();
  });

  it('lets awaited code schedule its next timer during advanceAsync', async () => {
    const clock = fakeClock(0);
    const sleep = (ms: number) => new Promise<void>((r) => clock.setTimeout(r, ms));
    const seen: number[] = [];
    const loop = (async () => {
      for (let i = 0; i < 3; i++) {
        await sleep(10);
        seen.push(clock.now());
      }
    })();
    await clock.advanceAsync(30);
    await loop;
    expect(seen).toEqual([10, 20, 30]);
  });

  it('rejects negative and non-finite advances and backwards set()', () => {
    const clock = fakeClock(100);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(() => clock.advance(Number.NaN)).toThrow(RangeError);
    expect(() => clock.set(50)).toThrow(/backwards/);
    clock.set(200);
    expect(clock.now()).toBe(200);
  });
});
