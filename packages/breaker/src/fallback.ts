import { type CallContext, kRun, type Next, PolicyBase } from './context.js';
import { Emitter } from './internal/emitter.js';
import type { ExecuteContext, Fallback, FallbackOptions, Unsubscribe } from './types.js';
import { func, policyName, requireObject } from './validate.js';

class FallbackImpl<F> extends PolicyBase implements Fallback<F> {
  readonly kind = 'fallback' as const;
  readonly name: string;
  readonly #value: F | ((err: unknown, ctx: ExecuteContext) => F | PromiseLike<F>);
  readonly #when: (err: unknown) => boolean;
  readonly #ev = new Emitter<{ fallback: { name: string; error: unknown } }>();

  constructor(value: F | ((err: unknown, ctx: ExecuteContext) => F | PromiseLike<F>), o: FallbackOptions) {
    super();
    requireObject('fallback options', o);
    this.name = o.name === undefined ? 'fallback' : policyName('name', o.name);
    this.#value = value;
    this.#when = o.when === undefined ? () => true : func('when', o.when);
  }

  on(event: 'fallback', fn: (e: { name: string; error: unknown }) => void): Unsubscribe {
    return this.#ev.on(event, fn);
  }

  async [kRun](ctx: CallContext, next: Next): Promise<unknown> {
    try {
      return await next.call(ctx);
    } catch (err) {
      // The caller gave up: it wants the abort, not a substitute answer.
      if (ctx.callerAborted() || !this.#when(err)) throw err;
      if (this.#ev.has('fallback')) this.#ev.emit('fallback', { name: this.name, error: err });
      const v = this.#value;
      return typeof v === 'function' ? (v as (err: unknown, ctx: ExecuteContext) => unknown)(err, ctx) : v;
    }
  }

  override async close(): Promise<void> {
    this.#ev.clear();
  }
}

/**
 * Replaces a failure (every error, or those `when` accepts) with a value or with what `fn(err, ctx)` returns.
 * Put it outermost so it also covers open-breaker and timeout rejections.
 *
 * @example
 * declare const cache: { get(key: string): Promise<string[]> };
 * declare const pricing: { list(): Promise<string[]> };
 * const cached = fallback(() => cache.get('prices'), { when: (e) => isOmsBreakerError(e) });
 * const breaker = circuitBreaker({ name: 'pricing' });
 * // typed string[]: the fallback's value is part of the result type
 * const prices = await pipeline(cached, breaker).execute(() => pricing.list());
 */
export function fallback<F>(
  fn: (err: unknown, ctx: ExecuteContext) => F | PromiseLike<F>,
  opts?: FallbackOptions,
): Fallback<F>;
export function fallback<F>(value: F, opts?: FallbackOptions): Fallback<F>;
export function fallback<F>(
  valueOrFn: F | ((err: unknown, ctx: ExecuteContext) => F | PromiseLike<F>),
  opts: FallbackOptions = {},
): Fallback<F> {
  return new FallbackImpl(valueOrFn, opts);
}
