import type { Clock } from './internal/clock.js';

export type { Clock } from './internal/clock.js';

/**
 * The algorithms this package implements.
 *
 * @example
 * import type { AlgorithmKind, RateLimiter } from '@oms/ratelimit';
 * declare const limiter: RateLimiter;
 * const kind: AlgorithmKind = limiter.algorithm.kind;
 * const paced = kind === 'gcra';
 */
export type AlgorithmKind =
  | 'token-bucket'
  | 'gcra'
  | 'sliding-window-counter'
  | 'sliding-window-log'
  | 'fixed-window';

/**
 * A configured algorithm, made by `tokenBucket`, `gcra`, `slidingWindow`, `fixedWindow` or `adaptive`.
 *
 * @example
 * const a: Algorithm = gcra({ limit: 10, periodMs: 1000 }); // a.limit === 10
 */
export interface Algorithm {
  readonly kind: AlgorithmKind;
  /** The largest cost one call may ask for: capacity, burst or limit. */
  readonly limit: number;
  /** Units admitted per window at the sustained rate, advertised as `q`: capacity or limit. */
  readonly quota: number;
  /** The window advertised in `RateLimit-Policy` (`w`), in ms. */
  readonly windowMs: number;
  /** True when wrapped by `adaptive()`. */
  readonly adaptive: boolean;
}

/**
 * Options of `tokenBucket`: a bucket of `capacity` tokens refilled continuously at `refillPerSec`.
 *
 * @example
 * tokenBucket({ capacity: 20, refillPerSec: 5 });
 */
export interface TokenBucketOptions {
  /** Tokens the bucket holds when full (the burst). Integer >= 1. */
  capacity: number;
  /** Tokens added per second, continuously. Finite > 0. */
  refillPerSec: number;
}

/**
 * Options of `gcra`: `limit` requests per `periodMs`, evenly spaced, with up to `burst` back to back.
 *
 * @example
 * gcra({ limit: 100, periodMs: 60_000, burst: 10 });
 */
export interface GcraOptions {
  /** Requests per period at the sustained rate. Integer >= 1. */
  limit: number;
  /** The period, in ms. Finite > 0. */
  periodMs: number;
  /** Requests that may arrive back to back. Integer >= 1, default `limit`. */
  burst?: number;
}

/**
 * Options of `slidingWindow`: at most `limit` requests in any window of `windowMs`.
 *
 * @example
 * slidingWindow({ limit: 60, windowMs: 60_000, mode: 'log' });
 */
export interface SlidingWindowOptions {
  /** Requests per window. Integer >= 1. */
  limit: number;
  /** Window length in ms. Integer >= 1. */
  windowMs: number;
  /** `counter` (default): two counters, approximate, O(1) memory. `log`: exact, one timestamp per unit of cost. */
  mode?: 'counter' | 'log';
}

/**
 * Options of `fixedWindow`: at most `limit` requests per window of `windowMs`, aligned to the epoch.
 *
 * @example
 * fixedWindow({ limit: 1000, windowMs: 86_400_000 });
 */
export interface FixedWindowOptions {
  /** Requests per window. Integer >= 1. */
  limit: number;
  /** Window length in ms, aligned to the epoch. Integer >= 1. */
  windowMs: number;
}

/**
 * Options of `adaptive`: how the limit shrinks as the load signal passes `threshold`, down to `floor`.
 *
 * @example
 * import { loadavg } from 'node:os';
 * import { type AdaptiveOptions, adaptive, gcra } from '@oms/ratelimit';
 * const o: AdaptiveOptions = { load: () => loadavg()[0]! / 4, threshold: 0.8, floor: 0.25 };
 * const algorithm = adaptive(gcra({ limit: 100, periodMs: 1000 }), o);
 */
export interface AdaptiveOptions {
  /** The load signal in [0, 1], read on every call; values outside are clamped. */
  load: () => number;
  /** Load at which scaling starts, in [0, 1). Default 0.7. */
  threshold?: number;
  /** Smallest multiplier, in (0, 1]. Default 0.1. */
  floor?: number;
  /** Custom curve from load to multiplier; the result is clamped to [floor, 1]. */
  curve?: (load: number, threshold: number) => number;
}

/**
 * What `RateLimit-Policy` advertises for a limiter; one frozen object per limiter.
 *
 * @example
 * import type { RateLimiter, RatePolicy } from '@oms/ratelimit';
 * declare const limiter: RateLimiter;
 * const { name, limit, windowSec }: RatePolicy = limiter.policy; // limit units per windowSec seconds
 */
export interface RatePolicy {
  readonly name: string;
  /**
   * Quota (`q`): the units the policy admits per window at its sustained rate. A token bucket's capacity (its
   * window is capacity / refillPerSec), a window's limit, gcra's `limit` per `periodMs` (not its burst).
   */
  readonly limit: number;
  /** Window (`w`) in seconds, rounded up. */
  readonly windowSec: number;
  readonly algorithm: AlgorithmKind;
}

/**
 * The outcome of one call against one limiter. The `'decision'` event carries the same object.
 *
 * @example
 * import type { Decision, RateLimiter } from '@oms/ratelimit';
 * declare const limiter: RateLimiter;
 * const d: Decision = await limiter.consume('user:42');
 * if (!d.allowed) await new Promise((r) => setTimeout(r, d.retryAfterMs));
 */
export interface Decision {
  readonly allowed: boolean;
  /** The quota per window (`q`), scaled down by `adaptive()` under load. */
  readonly limit: number;
  /** Units left after this call (before it, when it was denied or not charged). */
  readonly remaining: number;
  /** Ms until the limiter is back to full capacity for this key. */
  readonly resetMs: number;
  /** When denied, ms until the same call could be admitted (0 when allowed). */
  readonly retryAfterMs: number;
  readonly policy: RatePolicy;
  /** Set when the store failed and `onStoreError` decided instead. */
  readonly degraded?: StoreErrorPolicy;
}

/**
 * What happens when the store fails or exceeds the call time bound.
 *
 * @example
 * import { gcra, rateLimiter, type StoreErrorPolicy } from '@oms/ratelimit';
 * import { redisStore } from '@oms/ratelimit/redis';
 * import type { Redis } from 'ioredis';
 * declare const redis: Redis;
 * const onStoreError: StoreErrorPolicy = 'insurance';
 * const limiter = rateLimiter({
 *   name: 'api',
 *   algorithm: gcra({ limit: 100, periodMs: 1000 }),
 *   store: redisStore({ redis }),
 *   onStoreError,
 *   insuranceFraction: 0.25,
 * });
 */
export type StoreErrorPolicy = 'open' | 'closed' | 'insurance';

/**
 * Where limiter state lives: `memoryStore()` or `redisStore()` from `@oms/ratelimit/redis`.
 *
 * @example
 * const store: RateLimitStore = memoryStore({ maxKeys: 10_000 });
 */
export interface RateLimitStore {
  /** `memory` or `redis`; informational. */
  readonly kind: string;
}

/**
 * Options of `rateLimiter`: its name, algorithm and store, and what it does when the store fails.
 *
 * @example
 * rateLimiter({ name: 'api', algorithm: tokenBucket({ capacity: 10, refillPerSec: 5 }), timeoutMs: 100 });
 */
export interface RateLimiterOptions {
  /** Names the policy in headers, events and metrics: 1-64 of `A-Z a-z 0-9 _ . -`. */
  name: string;
  algorithm: Algorithm;
  /** Default: a fresh `memoryStore({ maxKeys: 100_000 })`. */
  store?: RateLimitStore;
  clock?: Clock;
  /** Default `'closed'`: deny while the store is unavailable. */
  onStoreError?: StoreErrorPolicy;
  /** Bound on every store call in ms; past it the policy decides. Default 250. */
  timeoutMs?: number;
  /** For `'insurance'`: the share of the limit each process may admit on its own. Default 0.1. */
  insuranceFraction?: number;
  /** For `'closed'`: the `retryAfterMs` of a denial. Default 1000. */
  closedRetryAfterMs?: number;
}

/**
 * Options of `consume`: the units the call takes, and a signal to abandon it.
 *
 * @example
 * import type { ConsumeOptions, RateLimiter } from '@oms/ratelimit';
 * declare const limiter: RateLimiter;
 * const o: ConsumeOptions = { cost: 5, signal: AbortSignal.timeout(1000) };
 * const d = await limiter.consume('user:1', o);
 */
export interface ConsumeOptions {
  /** Units this call takes, integer >= 1 and <= the limit. Default 1. */
  cost?: number;
  signal?: AbortSignal;
}

/**
 * Options of `acquire`: as for `consume`, plus how long to wait for capacity.
 *
 * @example
 * import type { AcquireOptions, RateLimiter } from '@oms/ratelimit';
 * declare const limiter: RateLimiter;
 * const o: AcquireOptions = { cost: 1, maxWaitMs: 5000 };
 * const d = await limiter.acquire('jobs', o); // rejects with ERR_OMS_RATELIMIT_TIMEOUT past 5 s
 */
export interface AcquireOptions extends ConsumeOptions {
  /** Longest time to wait for capacity before rejecting with `ERR_OMS_RATELIMIT_TIMEOUT`. */
  maxWaitMs: number;
}

/**
 * The events a limiter emits, by name, with what each listener gets.
 *
 * @example
 * import type { RateLimiter } from '@oms/ratelimit';
 * declare const limiter: RateLimiter;
 * declare const log: { warn(fields: object, message: string): void };
 * const offDecision = limiter.on('decision', (d) => {
 *   if (!d.allowed) log.warn({ policy: d.policy.name, retryAfterMs: d.retryAfterMs }, 'rate limited');
 * });
 * const offError = limiter.on('storeError', (e) => log.warn({ policy: e.policy, code: e.code }, 'store down'));
 */
export interface RateLimiterEvents {
  /** Every decision `consume`, `peek`, `acquire` and `limitAll` return, as the caller gets it. */
  decision: Decision;
  /** A store round trip finished (or failed); duration in seconds. */
  storeCall: { name: string; store: string; durationSec: number; ok: boolean };
  /** The store failed or timed out and `policy` decided instead. */
  storeError: { name: string; store: string; policy: StoreErrorPolicy; code: string; error: unknown };
}

/**
 * A limiter bound to one algorithm and store.
 *
 * @example
 * const limiter: RateLimiter = rateLimiter({ name: 'api', algorithm: gcra({ limit: 5, periodMs: 1000 }) });
 */
export interface RateLimiter {
  readonly name: string;
  readonly algorithm: Algorithm;
  readonly policy: RatePolicy;
  /** Charges `cost` (default 1) to `key` if it fits, atomically. */
  consume(key: string, opts?: ConsumeOptions): Promise<Decision>;
  /** The decision a cost-1 call would get now, without charging. */
  peek(key: string, opts?: { signal?: AbortSignal }): Promise<Decision>;
  /** Forgets `key`: it starts full again. */
  reset(key: string, opts?: { signal?: AbortSignal }): Promise<void>;
  /** Waits (exactly `retryAfterMs`, no polling loop) until the cost fits, up to `maxWaitMs`. */
  acquire(key: string, opts: AcquireOptions): Promise<Decision>;
  on<E extends keyof RateLimiterEvents>(event: E, fn: (e: RateLimiterEvents[E]) => void): () => void;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * One scope of `limitAll`.
 *
 * @example
 * import type { RateLimiter, Scope } from '@oms/ratelimit';
 * declare const perUser: RateLimiter;
 * declare const userId: string;
 * const scope: Scope = { limiter: perUser, key: userId };
 */
export interface Scope {
  limiter: RateLimiter;
  key: string;
}

/**
 * What `limitAll` returns: one decision per scope, and which scope denied.
 *
 * @example
 * import type { ServerResponse } from 'node:http';
 * import { type LimitAllResult, limitAll, type Scope } from '@oms/ratelimit';
 * declare const scopes: Scope[];
 * declare const res: ServerResponse;
 * const r: LimitAllResult = await limitAll(scopes);
 * if (!r.allowed) res.setHeader('X-RateLimit-Scope', r.deniedBy?.name ?? 'unknown');
 */
export interface LimitAllResult {
  /** True when every scope admitted the call and all were charged; false when none was. */
  readonly allowed: boolean;
  /** One decision per scope, in order. */
  readonly decisions: readonly Decision[];
  /** The first scope that denied. */
  readonly deniedBy?: { readonly index: number; readonly name: string; readonly key: string };
}
