import { exponentialBackoff } from './backoff.js';
import { type CallContext, closedError, kRun, type Next, PolicyBase, sleep } from './context.js';
import { invalid, isRejection, OmsBreakerError } from './errors.js';
import { systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import type {
  Backoff,
  Clock,
  GiveUpReason,
  Retry,
  RetryBudget,
  RetryEvents,
  RetryOptions,
  Unsubscribe,
} from './types.js';
import { func, isObject, policyName, requireObject, v } from './validate.js';

const isAbort = (e: unknown): boolean =>
  e instanceof Error && (e.name === 'AbortError' || (e as { code?: unknown }).code === 'ABORT_ERR');

const defaultShouldRetry = (err: unknown): boolean => !isRejection(err) && !isAbort(err);

/** A `retryAfterMs` the error carries (for example parsed from a 429's Retry-After), if any. */
function retryAfterOf(err: unknown): number | undefined {
  if (!isObject(err)) return undefined;
  const v = (err as { retryAfterMs?: unknown }).retryAfterMs;
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined;
}

/** Says what the budget allows, so the message states the actual cause: more retries than that were asked. */
function budgetSpent(b: RetryBudget): string {
  const { ratio, minPerSec, ttlMs } = b as Partial<RetryBudget>;
  if (typeof ratio !== 'number' || typeof minPerSec !== 'number' || typeof ttlMs !== 'number') {
    return 'its retry budget refused the retry';
  }
  return (
    `its retry budget is spent: retries in the last ${ttlMs / 1000} s already used the ` +
    `${Math.round(ratio * 100)}% of requests it allows plus its floor of ${minPerSec} per second`
  );
}

class RetryImpl extends PolicyBase implements Retry {
  readonly kind = 'retry' as const;
  readonly name: string;
  readonly #max: number;
  readonly #backoff: Backoff;
  readonly #cap: number;
  readonly #shouldRetry: (err: unknown, attempt: number) => boolean;
  readonly #budget: RetryBudget | undefined;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #ev = new Emitter<RetryEvents>();
  readonly #sleepers = new Set<(err: unknown) => void>();
  #closed = false;

  constructor(o: RetryOptions) {
    super();
    requireObject('retry options', o);
    this.name = o.name === undefined ? 'retry' : policyName('name', o.name);
    this.#max = o.maxAttempts === undefined ? 3 : v.integer('maxAttempts', o.maxAttempts, { min: 1 });
    if (o.backoff !== undefined && (!isObject(o.backoff) || typeof o.backoff.delay !== 'function')) {
      throw invalid(
        'backoff must come from constantBackoff(), exponentialBackoff() or another backoff helper',
      );
    }
    this.#backoff = (o.backoff as Backoff | undefined) ?? exponentialBackoff({ initialMs: 100 });
    this.#cap = o.maxDelayMs === undefined ? 30_000 : v.durationMs('maxDelayMs', o.maxDelayMs);
    this.#shouldRetry = o.shouldRetry === undefined ? defaultShouldRetry : func('shouldRetry', o.shouldRetry);
    if (o.budget !== undefined && (!isObject(o.budget) || typeof o.budget.tryWithdraw !== 'function')) {
      throw invalid('budget must come from retryBudget()');
    }
    this.#budget = o.budget as RetryBudget | undefined;
    this.#clock = v.clock(o.clock, systemClock);
    this.#random = o.random === undefined ? Math.random : func('random', o.random);
  }

  on<K extends keyof RetryEvents>(event: K, fn: (e: RetryEvents[K]) => void): Unsubscribe {
    return this.#ev.on(event, fn);
  }

  async [kRun](ctx: CallContext, next: Next): Promise<unknown> {
    if (this.#closed) throw closedError(`retry '${this.name}'`);
    this.#budget?.deposit();
    let attempt = 1;
    let prevDelay = 0;
    let c = ctx.attempt === 1 ? ctx : ctx.withAttempt(1);
    for (;;) {
      try {
        return await next.call(c);
      } catch (err) {
        const delay = this.#decide(err, attempt, prevDelay, ctx);
        if (typeof delay !== 'number') throw delay.error;
        prevDelay = delay;
        if (this.#ev.has('retry'))
          this.#ev.emit('retry', { name: this.name, attempt, delayMs: delay, error: err });
        if (delay > 0) await sleep(this.#clock, delay, ctx, this.#sleepers);
        else if (ctx.isAborted()) throw ctx.abortReason();
        if (this.#closed) throw closedError(`retry '${this.name}'`);
        attempt++;
        c = ctx.withAttempt(attempt);
      }
    }
  }

  /** The delay before the next try, or the error to give up with. */
  #decide(err: unknown, attempt: number, prevDelay: number, ctx: CallContext): number | { error: unknown } {
    let reason: GiveUpReason | undefined;
    let error = err;
    let delay = 0;
    if (ctx.isAborted()) reason = 'aborted';
    else if (attempt >= this.#max) reason = 'max-attempts';
    else if (!this.#safeShouldRetry(err, attempt)) reason = 'not-retryable';
    else {
      delay = Math.max(
        0,
        Math.min(this.#cap, this.#backoff.delay(attempt, prevDelay, this.#random, this.#cap)),
      );
      const after = retryAfterOf(err);
      if (after !== undefined) {
        if (after > this.#cap) reason = 'retry-after-too-long';
        else delay = Math.max(delay, after);
      }
      if (reason === undefined && this.#budget !== undefined && !this.#budget.tryWithdraw()) {
        reason = 'budget-exhausted';
        error = new OmsBreakerError(
          'ERR_OMS_BREAKER_RETRY_BUDGET',
          `retry '${this.name}' gave up after attempt ${attempt}: ${budgetSpent(this.#budget)}`,
          false,
          { cause: err },
        );
      }
    }
    if (reason === undefined) return delay;
    if (this.#ev.has('giveUp')) {
      this.#ev.emit('giveUp', { name: this.name, attempts: attempt, reason, error: err });
    }
    return { error };
  }

  #safeShouldRetry(err: unknown, attempt: number): boolean {
    try {
      return this.#shouldRetry(err, attempt) === true;
    } catch {
      return false;
    }
  }

  override async close(): Promise<void> {
    this.#closed = true;
    const err = closedError(`retry '${this.name}'`);
    for (const cancel of [...this.#sleepers]) cancel(err);
    this.#ev.clear();
  }
}

/**
 * Retries a failed call with backoff. Honours a `retryAfterMs` on the error, stops when the signal aborts
 * (also during the sleep), and, given a `budget`, never multiplies load on a failing dependency.
 *
 * @example
 * class HttpError extends Error {
 *   constructor(readonly status: number) {
 *     super(`HTTP ${status}`);
 *   }
 * }
 * declare const api: { getUser(id: string, o: { signal: AbortSignal; attempt: number }): Promise<{ name: string }> };
 * const r = retry({
 *   maxAttempts: 4,
 *   backoff: decorrelatedJitterBackoff({ baseMs: 100 }),
 *   maxDelayMs: 5_000,
 *   shouldRetry: (e) => !(e instanceof HttpError) || e.status >= 500 || e.status === 429,
 *   budget: retryBudget({ ratio: 0.2 }),
 * });
 * const user = await r.execute(({ signal, attempt }) => api.getUser('42', { signal, attempt }));
 */
export function retry(opts: RetryOptions = {}): Retry {
  return new RetryImpl(opts);
}
