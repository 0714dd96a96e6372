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

export { timerLag } from '@oms/testkit';
