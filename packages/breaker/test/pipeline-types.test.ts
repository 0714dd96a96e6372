import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  circuitBreaker,
  type Fallback,
  fallback,
  type Pipeline,
  type Policy,
  pipeline,
  retry,
} from '../src/index.js';

// Checked by tsc (the package's typecheck, and test/examples.test.ts under the user's strict settings) as
// well as run: a fallback's value must show in the pipeline's result type, since it is what the call returns.
describe('a fallback adds its value to the result type', () => {
  it("pipeline(fallback(0), b).execute(() => ({ name: 'Ada' })) is typed { name: string } | number and resolves 0", async () => {
    const b = circuitBreaker({ name: 'users' });
    const p = pipeline(fallback(0), b);
    expectTypeOf(p).toEqualTypeOf<Pipeline<number>>();
    const r = p.execute((): { name: string } => {
      throw new Error('down');
    });
    expectTypeOf(r).toEqualTypeOf<Promise<{ name: string } | number>>();
    expect(await r).toBe(0);
  });

  it('a function fallback contributes what it resolves to; nested pipelines keep it', async () => {
    const cached = fallback(async () => ['from-cache']);
    expectTypeOf(cached).toEqualTypeOf<Fallback<string[]>>();
    const p = pipeline(pipeline(cached, retry({ maxAttempts: 1 })), circuitBreaker({ name: 'x' }));
    const r = p.execute(() => 42);
    expectTypeOf(r).toEqualTypeOf<Promise<number | string[]>>();
    expect(await r).toBe(42);
  });

  it('without a fallback the result type is exactly the function’s, and a fallback is not a plain Policy', () => {
    const p = pipeline(retry({ maxAttempts: 2 }), circuitBreaker({ name: 'y' }));
    expectTypeOf(p.execute(() => 'v')).toEqualTypeOf<Promise<string>>();
    expectTypeOf(fallback(0)).not.toMatchTypeOf<Policy>();
    expectTypeOf(fallback(0)).toMatchTypeOf<Policy<number>>();
  });
});
