import type { Clock } from './internal/clock.js';

export type { Clock };

/**
 * Removes the listener it was returned for.
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * const off = breaker.on('stateChange', (e) => log.info(e));
 * off(); // stop listening
 */
export type Unsubscribe = () => void;

/**
 * What the wrapped function receives: the signal to honour and the attempt number (1-based).
 *
 * @example
 * declare const policy: Policy;
 * const url = 'http://users.internal/';
 * await policy.execute(({ signal, attempt }) => fetch(url, { signal, headers: { 'x-attempt': String(attempt) } }));
 */
export interface ExecuteContext {
  /** Aborts when the caller's signal aborts, a timeout expires, or the policy is closed. */
  readonly signal: AbortSignal;
  /** 1 for the first try; the innermost `retry` counts up from there. */
  readonly attempt: number;
}

/**
 * The function a policy runs. It may throw synchronously or return a plain value.
 *
 * @example
 * declare const policy: Policy;
 * const op: Operation<Response> = ({ signal }) => fetch('http://users.internal/', { signal });
 * const res = await policy.execute(op);
 */
export type Operation<T> = (ctx: ExecuteContext) => T | PromiseLike<T>;

/**
 * One interface for every policy, so they compose with `pipeline()` and with your own implementations.
 *
 * @example
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * // your own policy composes with ours
 * const logged: Policy = {
 *   async execute(fn, signal) {
 *     log.debug('call');
 *     return fn({ signal: signal ?? new AbortController().signal, attempt: 1 });
 *   },
 * };
 * pipeline(logged, circuitBreaker({ name: 'users' }));
 */
export interface Policy<F = never> {
  /** Runs `fn` under the policy. A policy that substitutes a value (a fallback) may resolve to an `F`. */
  execute<T>(fn: Operation<T>, signal?: AbortSignal): Promise<T | F>;
  /** Type-only, never present at runtime: carries `F` so `pipeline()` can add it to its result type. */
  readonly [substitutes]?: () => F;
}

/** Type-only key of {@link Policy}'s substitute brand; it has no runtime value. */
declare const substitutes: unique symbol;

/**
 * What a policy may resolve to instead of the function's result: a fallback's value, `never` for the rest.
 *
 * @example
 * const cached = fallback([] as string[]);
 * type Cached = Substitute<typeof cached>; // string[]
 */
export type Substitute<P> = P extends { readonly [substitutes]?: infer S }
  ? S extends () => infer F
    ? F
    : never
  : never;

/**
 * A policy that owns timers or connections and can be closed.
 *
 * @example
 * declare function work(): Promise<void>;
 * export async function job() {
 *   await using b = bulkhead({ maxConcurrent: 8 }); // closed when the scope ends
 *   await b.execute(() => work());
 * }
 */
export interface ClosablePolicy<F = never> extends Policy<F> {
  /** Stops timers, rejects queued work with `ERR_OMS_BREAKER_CLOSED` and removes listeners it added. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

// ---------------------------------------------------------------------------------------------- breaker

/**
 * The three states of a circuit breaker.
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * declare const res: import('node:http').ServerResponse;
 * if (breaker.state === 'open') res.setHeader('x-degraded', 'payments');
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * A window over the last `calls` calls.
 *
 * @example
 * circuitBreaker({ name: 'db', failureRate: { threshold: 0.5, minimumThroughput: 20, window: { calls: 100 } } });
 */
export interface CountWindowOptions {
  calls: number;
}

/**
 * A window over the last `ms` milliseconds, kept as a ring of `buckets` (default 10) buckets.
 *
 * @example
 * circuitBreaker({ name: 'db', failureRate: { threshold: 0.5, minimumThroughput: 20, window: { ms: 10_000, buckets: 10 } } });
 */
export interface TimeWindowOptions {
  ms: number;
  buckets?: number | undefined;
}

/**
 * Where a rate is measured: over the last N calls, or over the last N milliseconds.
 *
 * @example
 * const window: WindowOptions = { ms: 30_000 };
 */
export type WindowOptions = CountWindowOptions | TimeWindowOptions;

/**
 * Trip on the share of failed calls in a window, once the window holds enough calls.
 *
 * @example
 * circuitBreaker({ name: 'api', failureRate: { threshold: 0.5, minimumThroughput: 20, window: { ms: 10_000 } } });
 */
export interface FailureRateOptions {
  /** Trip when failures / calls >= threshold, in [0, 1]. */
  threshold: number;
  /** Calls the window must hold before the rate is judged. */
  minimumThroughput: number;
  window: WindowOptions;
}

/**
 * Trip on the share of slow calls (as in resilience4j), whether they succeed or not.
 *
 * @example
 * circuitBreaker({ name: 'search', slowCall: { thresholdMs: 2_000, rate: 0.8, minimumThroughput: 10 } });
 */
export interface SlowCallOptions {
  /** A call that takes at least this long is slow (whether it succeeds or not). */
  thresholdMs: number;
  /** Trip when slow calls / calls >= rate, in [0, 1]. */
  rate: number;
  /** Defaults to `failureRate.minimumThroughput`, else 10. */
  minimumThroughput?: number | undefined;
  /** Defaults to `failureRate.window`, else `{ calls: 100 }`. */
  window?: WindowOptions | undefined;
}

/**
 * Open for `initialMs` after the first trip, multiplied by `factor` (default 2) per repeated trip, up to `maxMs`.
 *
 * @example
 * circuitBreaker({ name: 'db', openMs: { initialMs: 1_000, maxMs: 60_000, factor: 2 } }); // 1 s, 2 s, 4 s, …
 */
export interface OpenBackoffOptions {
  initialMs: number;
  maxMs: number;
  factor?: number | undefined;
}

/**
 * How the breaker finds out whether the dependency recovered.
 *
 * @example
 * circuitBreaker({ name: 'db', halfOpen: { maxConcurrent: 3, successesToClose: 3, maxWaitMs: 5_000 } });
 */
export interface HalfOpenOptions {
  /** Probes allowed at once (default 1). */
  maxConcurrent?: number | undefined;
  /** Successful probes needed to close (default 1). */
  successesToClose?: number | undefined;
  /** Longest time in half-open before the breaker gives up and opens again (default: no limit). */
  maxWaitMs?: number | undefined;
}

/**
 * Options of `circuitBreaker()`. With no trigger given it trips after 5 failures in a row.
 *
 * @example
 * class HttpError extends Error {
 *   constructor(readonly status: number) {
 *     super(`HTTP ${status}`);
 *   }
 * }
 * const opts: CircuitBreakerOptions = {
 *   name: 'payments',
 *   failureRate: { threshold: 0.5, minimumThroughput: 20, window: { ms: 10_000 } },
 *   openMs: { initialMs: 5_000, maxMs: 60_000 },
 *   isFailure: (e) => !(e instanceof HttpError && e.status < 500),
 * };
 * const breaker = circuitBreaker(opts);
 */
export interface CircuitBreakerOptions {
  /** Low-cardinality name, used in events, telemetry and the shared store key. */
  name: string;
  /** Trip after this many failures in a row. The default (5) applies when no other trigger is given. */
  consecutiveFailures?: number | undefined;
  failureRate?: FailureRateOptions | undefined;
  slowCall?: SlowCallOptions | undefined;
  /** How long to stay open: a constant in ms (default 10 000) or a backoff that grows on repeated trips. */
  openMs?: number | OpenBackoffOptions | undefined;
  halfOpen?: HalfOpenOptions | undefined;
  /**
   * Which errors count against the dependency. Others count as successes: the dependency answered.
   * Default: every error except this package's own rejections (open, bulkhead full, budget, limit).
   */
  isFailure?: ((err: unknown) => boolean) | undefined;
  /** Share OPEN and the half-open probe with other instances, e.g. `redisBreakerStore()`. */
  store?: BreakerStore | undefined;
  clock?: Clock | undefined;
  /** Start from a `toJSON()` snapshot (for example in a serverless function). */
  restore?: BreakerSnapshot | undefined;
}

/**
 * Why a breaker changed state (the `reason` of a `stateChange` event).
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * breaker.on('stateChange', (e) => {
 *   if (e.reason === 'remote-open') log.warn('another instance tripped payments');
 * });
 */
export type TransitionReason =
  | 'consecutive-failures'
  | 'failure-rate'
  | 'slow-call-rate'
  | 'open-elapsed'
  | 'probe-failed'
  | 'probes-succeeded'
  | 'half-open-timeout'
  | 'isolated'
  | 'reset'
  | 'remote-open'
  | 'remote-close'
  | 'restored';

/**
 * Emitted on every state transition.
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * breaker.on('stateChange', ({ name, from, to, reason, openMs }) => log.warn({ name, from, to, reason, openMs }));
 */
export interface StateChangeEvent {
  name: string;
  from: BreakerState;
  to: BreakerState;
  reason: TransitionReason;
  /** Clock time of the transition. */
  at: number;
  /** For transitions to open: how long it stays open. */
  openMs?: number;
}

/**
 * A call the breaker admitted has settled.
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * breaker.on('success', (e) => e.slow && log.info(`${e.name} took ${e.durationMs} ms`));
 */
export interface CallOutcomeEvent {
  name: string;
  /** The state the call was admitted in. */
  state: BreakerState;
  /** Measured only when a slow-call trigger or a listener needs it. */
  durationMs: number | undefined;
  slow: boolean;
}

/**
 * A call the breaker admitted failed (as judged by `isFailure`).
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * breaker.on('failure', (e) => log.debug({ name: e.name, state: e.state, err: e.error }));
 */
export interface CallFailureEvent extends CallOutcomeEvent {
  error: unknown;
}

/**
 * Why the breaker refused a call without running it.
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * let waitingForProbe = 0;
 * breaker.on('rejected', (e) => {
 *   if (e.reason === 'probe-elsewhere') waitingForProbe++;
 * });
 */
export type BreakerRejectReason = 'open' | 'isolated' | 'half-open-full' | 'probe-elsewhere';

/**
 * Emitted when the breaker refuses a call (it then throws `ERR_OMS_BREAKER_OPEN`).
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * breaker.on('rejected', ({ name, state, reason }) => log.debug({ name, state, reason }));
 */
export interface RejectedEvent {
  name: string;
  state: BreakerState;
  reason: BreakerRejectReason;
}

/**
 * The events of a circuit breaker, by name.
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * declare function alert(e: StateChangeEvent): void;
 * const off = breaker.on('stateChange', (e: CircuitBreakerEvents['stateChange']) => alert(e));
 */
export interface CircuitBreakerEvents {
  stateChange: StateChangeEvent;
  success: CallOutcomeEvent;
  failure: CallFailureEvent;
  rejected: RejectedEvent;
}

/**
 * JSON-safe breaker state, for `toJSON()` and `restore`.
 *
 * @example
 * declare const kv: { get<T>(key: string): Promise<T | null>; set(key: string, value: unknown): Promise<void> };
 * // serverless: keep the breaker across invocations
 * const saved = await kv.get<BreakerSnapshot>('breaker:payments');
 * const breaker = circuitBreaker({ name: 'payments', restore: saved ?? undefined });
 * // … at the end of the invocation
 * await kv.set('breaker:payments', breaker.toJSON());
 */
export interface BreakerSnapshot {
  v: 1;
  name: string;
  state: BreakerState;
  isolated: boolean;
  /** Clock time at which an open breaker lets probes through. */
  openUntil: number;
  /** Trips since the breaker last closed (drives the open backoff). */
  trips: number;
  consecutiveFailures: number;
  /** Oldest first; bit 0 = failure, bit 1 = slow. */
  window?: WindowSnapshot;
  /** Present when the slow-call trigger has a window of its own. */
  slowWindow?: WindowSnapshot;
}

/**
 * The window part of a `BreakerSnapshot` (count window or time buckets).
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * const w: WindowSnapshot | undefined = breaker.toJSON().window;
 */
export type WindowSnapshot = { kind: 'calls'; size: number; outcomes: number[] } | WindowBucketsSnapshot;

/**
 * A time window in a `BreakerSnapshot`.
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * const w = breaker.toJSON().window;
 * if (w?.kind === 'time') log.debug({ buckets: w.buckets.length }, 'time buckets with calls');
 */
export interface WindowBucketsSnapshot {
  kind: 'time';
  bucketMs: number;
  /** [bucket index, calls, failures, slow] */
  buckets: [number, number, number, number][];
}

/**
 * A circuit breaker, as returned by `circuitBreaker()`.
 *
 * @example
 * declare function charge(orderId: string, o: { signal: AbortSignal }): Promise<{ id: string }>;
 * const breaker: CircuitBreaker = circuitBreaker({ name: 'payments' });
 * const receipt = await breaker.execute(({ signal }) => charge('order-1', { signal }));
 * if (process.env.MAINTENANCE === '1') breaker.isolate();
 */
export interface CircuitBreaker extends ClosablePolicy {
  readonly kind: 'circuit-breaker';
  readonly name: string;
  /** The current state; reading it applies time-based transitions (open -> half-open). */
  readonly state: BreakerState;
  /** True between `isolate()` and `reset()`. */
  readonly isolated: boolean;
  /** Calls in the window, failures and slow calls, and failures in a row. */
  stats(): { calls: number; failures: number; slow: number; consecutiveFailures: number; trips: number };
  on<K extends keyof CircuitBreakerEvents>(event: K, fn: (e: CircuitBreakerEvents[K]) => void): Unsubscribe;
  /** Holds the breaker open until `reset()`. */
  isolate(): void;
  /** Closes the breaker and clears its counters. */
  reset(): void;
  toJSON(): BreakerSnapshot;
  /** Replaces the state with a snapshot's (from `toJSON()`, possibly from another process). */
  restore(snapshot: BreakerSnapshot): void;
}

// ------------------------------------------------------------------------------------------ shared state

/**
 * How a store talks back to the breaker it serves. Implemented by the breaker.
 *
 * @example
 * declare const bus: { on(t: 'open', f: (m: { name: string; remainingMs: number; trips: number }) => void): void };
 * declare const link: BreakerStoreLink;
 * // a custom BreakerStore
 * const store: BreakerStore = {
 *   attach(peer: BreakerPeer) {
 *     bus.on('open', (m) => m.name === peer.name && peer.remoteOpen(m.remainingMs, m.trips));
 *     return link;
 *   },
 * };
 */
export interface BreakerPeer {
  readonly name: string;
  /** Another instance tripped (or a quorum was reached): stay open for `remainingMs`. */
  remoteOpen(remainingMs: number, trips: number): void;
  /** A probe elsewhere succeeded. */
  remoteClose(): void;
  /** What this instance believes, for resynchronising after an outage. */
  localView(): {
    state: BreakerState;
    shared: boolean;
    openRemainingMs: number;
    trips: number;
    isolated: boolean;
  };
}

/**
 * One breaker's connection to a store. Every method returns at once or soon and never throws.
 *
 * @example
 * declare const bus: { publish(m: object): void; off(): void };
 * const link: BreakerStoreLink = {
 *   trip: (openMs, trips) => bus.publish({ t: 'open', openMs, trips }),
 *   acquireProbe: async () => true, // no coordination: every instance probes
 *   closed: () => {},
 *   detach: () => bus.off(),
 * };
 */
export interface BreakerStoreLink {
  /** This instance tripped. The store decides whether the trip is global (it then calls `remoteOpen`). */
  trip(openMs: number, trips: number): void;
  /** Half-open: may this instance run the probe? Resolves within the store's command timeout. */
  acquireProbe(leaseMs: number): Promise<boolean>;
  /** Half-open ended in close; `shared` says whether the open was a global one. */
  closed(shared: boolean): void;
  detach(): void;
}

/**
 * A place where breakers of the same name share state. See `@oms/breaker/redis`.
 *
 * @example
 * declare const redis: import('ioredis').Redis;
 * const store: BreakerStore = redisBreakerStore({ redis, prefix: 'svc:cb:' });
 * const breaker = circuitBreaker({ name: 'payments', store });
 */
export interface BreakerStore {
  attach(peer: BreakerPeer): BreakerStoreLink;
}

// ------------------------------------------------------------------------------------------------- retry

/**
 * Computes the delay before retry number `retry` (1 for the first retry).
 *
 * @example
 * // a custom backoff: fixed steps
 * const steps: Backoff = { kind: 'linear', delay: (n) => [100, 500, 2_000][n - 1] ?? 2_000 };
 * retry({ maxAttempts: 4, backoff: steps });
 */
export interface Backoff {
  readonly kind: 'constant' | 'linear' | 'exponential' | 'full-jitter' | 'decorrelated-jitter';
  delay(retry: number, prevDelayMs: number, random: () => number, capMs: number): number;
}

/**
 * Options of `retry()`; every field has a default.
 *
 * @example
 * class HttpError extends Error {
 *   constructor(readonly status: number) {
 *     super(`HTTP ${status}`);
 *   }
 * }
 * retry({
 *   maxAttempts: 4,
 *   backoff: fullJitterBackoff({ initialMs: 100 }),
 *   maxDelayMs: 5_000,
 *   shouldRetry: (e, attempt) => !(e instanceof HttpError && e.status < 500),
 *   budget: retryBudget({ ratio: 0.2 }),
 * });
 */
export interface RetryOptions {
  name?: string | undefined;
  /** Total tries including the first (default 3). */
  maxAttempts?: number | undefined;
  /** Default `exponentialBackoff({ initialMs: 100 })`. */
  backoff?: Backoff | undefined;
  /** Upper bound of one delay (default 30 000). A `retryAfterMs` above it ends the retries. */
  maxDelayMs?: number | undefined;
  /** Default: retry everything except aborts and this package's rejections. */
  shouldRetry?: ((err: unknown, attempt: number) => boolean) | undefined;
  /** Shared Finagle-style budget; a retry it refuses fails with `ERR_OMS_BREAKER_RETRY_BUDGET`. */
  budget?: RetryBudget | undefined;
  clock?: Clock | undefined;
  /** Random source in [0, 1) for jitter (default Math.random). */
  random?: (() => number) | undefined;
}

/**
 * Why a retry policy stopped retrying (the `reason` of its `giveUp` event).
 *
 * @example
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * declare const r: Retry;
 * r.on('giveUp', (e) => e.reason === 'budget-exhausted' && log.warn('retries shed'));
 */
export type GiveUpReason =
  | 'max-attempts'
  | 'not-retryable'
  | 'budget-exhausted'
  | 'retry-after-too-long'
  | 'aborted';

/**
 * The events of a retry policy.
 *
 * @example
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * declare const r: Retry;
 * r.on('retry', ({ attempt, delayMs, error }) => log.debug({ attempt, delayMs, err: error }));
 * r.on('giveUp', ({ attempts, reason }) => log.warn({ attempts, reason }));
 */
export interface RetryEvents {
  retry: { name: string; attempt: number; delayMs: number; error: unknown };
  giveUp: { name: string; attempts: number; reason: GiveUpReason; error: unknown };
}

/**
 * A retry policy, as returned by `retry()`.
 *
 * @example
 * declare const api: { getUser(id: string, o: { attempt: number }): Promise<{ name: string }> };
 * const r: Retry = retry({ maxAttempts: 3 });
 * const user = await r.execute(({ attempt }) => api.getUser('42', { attempt }));
 */
export interface Retry extends ClosablePolicy {
  readonly kind: 'retry';
  readonly name: string;
  on<K extends keyof RetryEvents>(event: K, fn: (e: RetryEvents[K]) => void): Unsubscribe;
}

/**
 * Options of `retryBudget()`.
 *
 * @example
 * const budget = retryBudget({ ratio: 0.1, minPerSec: 5, ttlMs: 10_000 });
 */
export interface RetryBudgetOptions {
  /** Retries allowed per request, in [0, 1] (default 0.2). */
  ratio?: number | undefined;
  /** Retries per second allowed regardless of traffic, from the first second on (default 10). */
  minPerSec?: number | undefined;
  /** How long a request's deposit stays spendable (default 10 000). */
  ttlMs?: number | undefined;
  clock?: Clock | undefined;
}

/**
 * A Finagle-style retry budget, shared by the retry policies of one dependency.
 *
 * @example
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * const budget: RetryBudget = retryBudget({ ratio: 0.2 });
 * budget.on('denied', (e) => log.warn({ balance: e.balance }, 'retry refused'));
 * const r = retry({ maxAttempts: 3, budget });
 */
export interface RetryBudget {
  readonly kind: 'retry-budget';
  /** Retries allowed per request, as configured. */
  readonly ratio: number;
  /** The floor of retries per second, whatever the traffic. */
  readonly minPerSec: number;
  /** How long a request's deposit stays spendable, in ms. */
  readonly ttlMs: number;
  /** Records a request (every retry policy using the budget calls this once per execute). */
  deposit(): void;
  /** Takes one retry if the budget allows it. */
  tryWithdraw(): boolean;
  /** Retries available right now. */
  balance(): number;
  stats(): { requests: number; retries: number; denied: number };
  on(event: 'denied', fn: (e: { balance: number; reason: 'exhausted' }) => void): Unsubscribe;
}

// ----------------------------------------------------------------------------------------------- timeout

/**
 * Options of `timeout()`.
 *
 * @example
 * timeout(2_000, { strategy: 'cooperative', name: 'pricing' });
 */
export interface TimeoutOptions {
  name?: string | undefined;
  /**
   * `aggressive` (default): at the deadline abort `ctx.signal` and reject the caller with
   * `ERR_OMS_BREAKER_TIMEOUT`, leaving the function to finish in the background, so the caller's promise
   * settles even if the function ignores its signal. The caller's own abort rejects at once too.
   * `cooperative`: abort `ctx.signal` at the deadline and wait for the function to settle (the caller gets
   * `ERR_OMS_BREAKER_TIMEOUT` if it then fails); a function that ignores the signal and never settles leaves
   * the caller waiting.
   */
  strategy?: 'cooperative' | 'aggressive' | undefined;
  clock?: Clock | undefined;
}

/**
 * A timeout policy, as returned by `timeout()`.
 *
 * @example
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * const t: Timeout = timeout(1_000);
 * t.on('timeout', (e) => log.warn(`${e.name} exceeded ${e.ms} ms`));
 */
export interface Timeout extends ClosablePolicy {
  readonly kind: 'timeout';
  readonly name: string;
  readonly ms: number;
  on(event: 'timeout', fn: (e: { name: string; ms: number }) => void): Unsubscribe;
}

// ---------------------------------------------------------------------------------------------- bulkhead

/**
 * Options of `bulkhead()`.
 *
 * @example
 * bulkhead({ maxConcurrent: 10, maxQueue: 50, queueTimeoutMs: 200 });
 */
export interface BulkheadOptions {
  name?: string | undefined;
  maxConcurrent: number;
  /** Calls that may wait for a slot (default 0). */
  maxQueue?: number | undefined;
  /** Longest wait in the queue (default: until a slot frees or the signal aborts). */
  queueTimeoutMs?: number | undefined;
  clock?: Clock | undefined;
}

/**
 * A bulkhead, as returned by `bulkhead()`.
 *
 * @example
 * declare const gauge: { set(v: number): void };
 * const b: Bulkhead = bulkhead({ maxConcurrent: 10 });
 * gauge.set(b.active + b.queued);
 */
export interface Bulkhead extends ClosablePolicy {
  readonly kind: 'bulkhead';
  readonly name: string;
  readonly active: number;
  readonly queued: number;
  on(event: 'rejected', fn: (e: { name: string; reason: 'full' | 'queue-timeout' }) => void): Unsubscribe;
}

// ---------------------------------------------------------------------------------- adaptive concurrency

/**
 * Options of `adaptiveConcurrency()`.
 *
 * @example
 * adaptiveConcurrency({ algorithm: 'aimd', initialLimit: 20, maxLimit: 200, latencyThresholdMs: 250 });
 */
export interface AdaptiveConcurrencyOptions {
  name?: string | undefined;
  algorithm: 'aimd' | 'gradient';
  initialLimit?: number | undefined;
  minLimit?: number | undefined;
  maxLimit?: number | undefined;
  /** Which errors mean overload (default: every error except this package's rejections). */
  isDrop?: ((err: unknown) => boolean) | undefined;
  /** AIMD: a call slower than this counts as a drop (default: latency is ignored). */
  latencyThresholdMs?: number | undefined;
  /** AIMD: multiply the limit by this on a drop (default 0.9). */
  backoffRatio?: number | undefined;
  /** Gradient: how much the short RTT may exceed the long RTT before the limit shrinks (default 1.5). */
  tolerance?: number | undefined;
  /** Gradient: weight of the newest estimate, in (0, 1] (default 0.2). */
  smoothing?: number | undefined;
  /** Gradient: samples in the long-term RTT average (default 600). */
  longWindow?: number | undefined;
  clock?: Clock | undefined;
}

/**
 * An adaptive concurrency limit, as returned by `adaptiveConcurrency()`.
 *
 * @example
 * declare const log: { warn(...a: unknown[]): void; info(...a: unknown[]): void; debug(...a: unknown[]): void };
 * const limiter: AdaptiveConcurrency = adaptiveConcurrency({ algorithm: 'gradient' });
 * limiter.on('limitChange', (e) => log.info(`limit ${e.from} -> ${e.to}`));
 */
export interface AdaptiveConcurrency extends ClosablePolicy {
  readonly kind: 'adaptive-concurrency';
  readonly name: string;
  readonly limit: number;
  readonly inflight: number;
  on(event: 'limitChange', fn: (e: { name: string; from: number; to: number }) => void): Unsubscribe;
  on(event: 'rejected', fn: (e: { name: string; limit: number }) => void): Unsubscribe;
}

// ---------------------------------------------------------------------------------------------- fallback

/**
 * Options of `fallback()`.
 *
 * @example
 * fallback([], { name: 'empty-list', when: (e) => isOmsBreakerError(e) });
 */
export interface FallbackOptions {
  name?: string | undefined;
  /** Which errors to replace (default: all). */
  when?: ((err: unknown) => boolean) | undefined;
}

/**
 * A fallback policy, as returned by `fallback()`: its `execute` resolves to the function's result or to `F`.
 *
 * @example
 * const f: Fallback<string[]> = fallback((): string[] => []);
 * f.on('fallback', (e) => console.warn('served the empty list', e.error));
 */
export interface Fallback<F = unknown> extends ClosablePolicy<F> {
  readonly kind: 'fallback';
  readonly name: string;
  on(event: 'fallback', fn: (e: { name: string; error: unknown }) => void): Unsubscribe;
}

/**
 * Policies composed by `pipeline()`, outermost first. `F` is what its fallbacks may resolve to instead.
 *
 * @example
 * const p: Pipeline = pipeline(timeout(2_000), retry({ maxAttempts: 3 }), circuitBreaker({ name: 'api' }));
 * await p.close(); // closes every policy in it
 */
export interface Pipeline<F = never> extends ClosablePolicy<F> {
  readonly kind: 'pipeline';
  readonly policies: readonly Policy<unknown>[];
}
