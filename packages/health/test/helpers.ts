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

export { timerLag } from '@oms/testkit';
