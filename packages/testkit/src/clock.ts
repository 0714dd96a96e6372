import type { Clock } from './types.js';

interface Timer {
  id: number;
  at: number;
  fn: () => void;
}

/** A `Clock` whose time moves only when the test says so. */
export interface FakeClock extends Clock {
  /** Moves time forward by `ms`, running every timer that falls due, in due order, synchronously. */
  advance(ms: number): void;
  /**
   * Like `advance`, but lets promise callbacks run between timers, so code that awaits and then
   * schedules the next timer sees the time it expects.
   */
  advanceAsync(ms: number): Promise<void>;
  /** Sets the absolute time; it must not go backwards. */
  set(ms: number): void;
  /** Timers scheduled and not yet run or cleared. */
  pending(): number;
}

/** Handles look like Node's `Timeout` enough for code that calls `unref()` on them. */
class FakeHandle {
  constructor(readonly id: number) {}
  unref(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  hasRef(): boolean {
    return false;
  }
}

function checkMs(name: string, ms: number): void {
  if (!Number.isFinite(ms) || ms < 0)
    throw new RangeError(`${name} must be a finite number >= 0 (got ${ms})`);
}

/**
 * A fake `Clock` for time logic: `now()` starts at `startMs` and only `advance()` moves it.
 *
 * @example
 * const clock = fakeClock();
 * const fired: number[] = [];
 * clock.setTimeout(() => fired.push(clock.now()), 100);
 * clock.advance(99);  // nothing yet
 * clock.advance(1);   // fired === [startMs + 100]
 */
export function fakeClock(startMs = 1_700_000_000_000): FakeClock {
  let now = startMs;
  let seq = 0;
  const timers: Timer[] = [];

  const nextDue = (until: number): Timer | undefined => {
    let best: Timer | undefined;
    for (const t of timers) {
      if (t.at <= until && (!best || t.at < best.at || (t.at === best.at && t.id < best.id))) best = t;
    }
    if (best) timers.splice(timers.indexOf(best), 1);
    return best;
  };

  return {
    now: () => now,
    setTimeout(fn, ms) {
      const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
      const t = { id: ++seq, at: now + delay, fn };
      timers.push(t);
      return new FakeHandle(t.id);
    },
    clearTimeout(handle) {
      if (!(handle instanceof FakeHandle)) return;
      const i = timers.findIndex((t) => t.id === handle.id);
      if (i >= 0) timers.splice(i, 1);
    },
    advance(ms) {
      checkMs('advance(ms)', ms);
      const until = now + ms;
      for (let t = nextDue(until); t; t = nextDue(until)) {
        now = t.at;
        t.fn();
      }
      now = until;
    },
    async advanceAsync(ms) {
      checkMs('advanceAsync(ms)', ms);
      const until = now + ms;
      const flush = () => new Promise<void>((r) => setImmediate(r));
      await flush();
      for (let t = nextDue(until); t; t = nextDue(until)) {
        now = t.at;
        t.fn();
        await flush();
      }
      now = until;
      await flush();
    },
    set(ms) {
      if (!Number.isFinite(ms) || ms < now)
        throw new RangeError(`set(ms) must not move time backwards (now ${now}, got ${ms})`);
      this.advance(ms - now);
    },
    pending: () => timers.length,
  };
}
