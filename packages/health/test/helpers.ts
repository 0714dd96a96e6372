import { readFileSync } from 'node:fs';
import { expect } from 'vitest';
import { validate } from './json-schema.js';

export const healthSchema = JSON.parse(
  readFileSync(new URL('./fixtures/health-json.schema.json', import.meta.url), 'utf8'),
) as Record<string, unknown>;

/** Every report body a test sees goes through this. */
export function expectHealthJson(body: unknown): void {
  const errors = validate(healthSchema, JSON.parse(JSON.stringify(body)));
  expect(errors, `health+json body is invalid: ${errors.join('; ')}`).toEqual([]);
}

/** Polls until `fn` returns a truthy value or the deadline passes. */
export async function until<T>(
  fn: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
  what: string,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Measures how long this process's event loop was unavailable while it runs (the machine is shared and
 * loaded): the sum of how late each tick of a 5 ms sampler fired, ignoring jitter under 1 ms per tick.
 * Stalls add up along a sequential path (a late timer, then a late continuation), so deadline assertions
 * add the total: code under test cannot run while the runtime does not, and without the allowance a busy
 * neighbour would fail a correct bound. On an idle machine the total is about 0 and the bound is exact.
 */
export function timerLag(periodMs = 5): { total(): number; stop(): void } {
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
  return {
    total: () => Math.round(total),
    // a stall that ends just before stop() has not been seen by a tick yet: the tick due is late too
    stop: () => {
      clearInterval(t);
      late(performance.now());
    },
  };
}
