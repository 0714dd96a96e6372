/** A running measure of how long this process's event loop was unavailable. */
export interface TimerLag {
  /** Milliseconds of lateness seen so far. */
  total(): number;
  /**
   * Like `total()`, plus a stall still in progress (the tick now due is late too), without stopping: for code
   * that stamps a moment right after a stall, before the sampler's own tick has run.
   */
  current(): number;
  /** Stops the sampler, counting a stall that was still in progress. */
  stop(): void;
}

/**
 * Measures how long the event loop was unavailable while it runs (the machines are shared and loaded): the sum
 * of how late each tick of a `periodMs` sampler fired, ignoring jitter under 1 ms per tick. Stalls add up along
 * a sequential path, so a deadline assertion adds the total: code under test cannot run while the runtime does
 * not, and without the allowance a busy neighbour would fail a correct bound. Idle, the total is about 0.
 *
 * @example
 * const lag = timerLag();
 * const started = Date.now();
 * await registry.report('readiness');
 * lag.stop();
 * expect(Date.now() - started).toBeLessThanOrEqual(timeoutMs + 20 + lag.total());
 */
export function timerLag(periodMs = 5): TimerLag {
  let total = 0;
  let expected = performance.now() + periodMs;
  const late = (now: number) => {
    total += Math.max(0, now - expected - 1);
  };
  const t = setInterval(() => {
    const now = performance.now();
    late(now);
    expected = now + periodMs;
  }, periodMs);
  t.unref();
  return {
    total: () => total,
    current: () => total + Math.max(0, performance.now() - expected - 1),
    // a stall that ends just before stop() has not been seen by a tick yet: the tick due is late too
    stop: () => {
      clearInterval(t);
      late(performance.now());
    },
  };
}
