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
 * Measures how late this process's timers fire while it runs (the machine is shared and loaded). Deadline
 * assertions add `max()` once per timer on the path they measure: the code under test cannot fire a timer
 * earlier than the runtime does, and without the allowance a busy neighbour would fail a correct bound.
 */
export function timerLag(periodMs = 5): { max(): number; stop(): void } {
  let max = 0;
  let expected = performance.now() + periodMs;
  const t = setInterval(() => {
    const now = performance.now();
    max = Math.max(max, now - expected);
    expected = now + periodMs;
  }, periodMs);
  return {
    max: () => Math.round(max),
    // a stall that ends just before stop() has not been seen by a tick yet: the tick due is late too
    stop: () => {
      clearInterval(t);
      max = Math.max(max, performance.now() - expected);
    },
  };
}
