import { systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import type { Clock, RetryBudget, RetryBudgetOptions, Unsubscribe } from './types.js';
import { requireObject, v } from './validate.js';

const BUCKETS = 10;

class RetryBudgetImpl implements RetryBudget {
  readonly kind = 'retry-budget' as const;
  readonly ratio: number;
  readonly minPerSec: number;
  readonly ttlMs: number;
  readonly #clock: Clock;
  readonly #ratio: number;
  readonly #minPerSec: number;
  readonly #reserveCap: number;
  readonly #width: number;
  /** Unspent deposits per time bucket; a retry spends the oldest first, so each is backed by real requests. */
  readonly #tokens = new Float64Array(BUCKETS);
  #cur = Number.NEGATIVE_INFINITY;
  #reserve: number;
  #reserveAt: number;
  #requests = 0;
  #retries = 0;
  #denied = 0;
  readonly #ev = new Emitter<{ denied: { balance: number; reason: 'exhausted' } }>();

  constructor(o: RetryBudgetOptions) {
    requireObject('retryBudget options', o);
    this.#clock = v.clock(o.clock, systemClock);
    this.#ratio = o.ratio === undefined ? 0.2 : v.fraction('ratio', o.ratio);
    this.#minPerSec = o.minPerSec === undefined ? 10 : v.nonNegativeFinite('minPerSec', o.minPerSec);
    const ttlMs = o.ttlMs === undefined ? 10_000 : v.positiveFinite('ttlMs', o.ttlMs);
    this.ratio = this.#ratio;
    this.minPerSec = this.#minPerSec;
    this.ttlMs = ttlMs;
    this.#width = ttlMs / BUCKETS;
    this.#reserveCap = (this.#minPerSec * ttlMs) / 1000;
    // The floor (Finagle's minRetriesPerSec) holds from the first second: a process that just started, or a
    // caller with little traffic, may retry minPerSec times a second before any deposit exists.
    this.#reserve = Math.min(this.#reserveCap, this.#minPerSec);
    this.#reserveAt = this.#clock.now();
  }

  #roll(now: number): number {
    const b = Math.floor(now / this.#width);
    if (b > this.#cur) {
      const steps = Math.min(BUCKETS, b - this.#cur);
      for (let k = 1; k <= steps; k++) this.#tokens[(b - steps + k) % BUCKETS] = 0;
      this.#cur = b;
    }
    return this.#cur % BUCKETS;
  }

  #refill(now: number): void {
    // The reserve refills at minPerSec up to minPerSec × ttl, so reserve-funded retries never exceed
    // minPerSec × (elapsed seconds + 1).
    const dt = now - this.#reserveAt;
    if (dt > 0) {
      this.#reserve = Math.min(this.#reserveCap, this.#reserve + (dt * this.#minPerSec) / 1000);
      this.#reserveAt = now;
    }
  }

  deposit(): void {
    this.#requests++;
    this.#tokens[this.#roll(this.#clock.now())]! += this.#ratio;
  }

  tryWithdraw(): boolean {
    const now = this.#clock.now();
    const cur = this.#roll(now);
    let sum = 0;
    for (let k = 0; k < BUCKETS; k++) sum += this.#tokens[k]!;
    // A little slack for float sums like 5 × 0.2.
    if (sum >= 1 - 1e-9) {
      let need = 1;
      for (let k = 1; k <= BUCKETS && need > 1e-12; k++) {
        const i = (cur + k) % BUCKETS; // oldest bucket first
        const take = Math.min(need, this.#tokens[i]!);
        this.#tokens[i]! -= take;
        need -= take;
      }
      this.#retries++;
      return true;
    }
    this.#refill(now);
    if (this.#reserve >= 1) {
      this.#reserve -= 1;
      this.#retries++;
      return true;
    }
    this.#denied++;
    if (this.#ev.has('denied'))
      this.#ev.emit('denied', { balance: sum + this.#reserve, reason: 'exhausted' });
    return false;
  }

  balance(): number {
    const now = this.#clock.now();
    this.#roll(now);
    this.#refill(now);
    let sum = 0;
    for (let k = 0; k < BUCKETS; k++) sum += this.#tokens[k]!;
    return sum + this.#reserve;
  }

  stats(): { requests: number; retries: number; denied: number } {
    return { requests: this.#requests, retries: this.#retries, denied: this.#denied };
  }

  on(event: 'denied', fn: (e: { balance: number; reason: 'exhausted' }) => void): Unsubscribe {
    return this.#ev.on(event, fn);
  }
}

/**
 * A Finagle-style retry budget, shareable by every retry policy that calls the same dependency: retries stay
 * within `ratio × requests + minPerSec × (seconds + 1)`, so a failing dependency sees at most `1 + ratio`
 * times its normal load instead of `maxAttempts` times. `minPerSec` (default 10) is a floor available from the
 * start, so the first failures after start-up can retry too. Deposits expire after `ttlMs`.
 *
 * @example
 * const budget = retryBudget({ ratio: 0.1, minPerSec: 5 });
 * const users = retry({ maxAttempts: 3, budget });
 * const orders = retry({ maxAttempts: 5, budget });
 */
export function retryBudget(opts: RetryBudgetOptions = {}): RetryBudget {
  return new RetryBudgetImpl(opts);
}
