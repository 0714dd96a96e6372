/** Milliseconds since the epoch plus timers; inject a fake one in tests. */
export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** Removes the listener it was returned for. */
export type Unsubscribe = () => void;

/** What the wrapped function receives: the signal to honour and the attempt number (1-based). */
export interface ExecuteContext {
  /** Aborts when the caller's signal aborts, a timeout expires, or the policy is closed. */
  readonly signal: AbortSignal;
  /** 1 for the first try; the innermost `retry` counts up from there. */
  readonly attempt: number;
}

/** The function a policy runs. It may throw synchronously or return a plain value. */
export type Operation<T> = (ctx: ExecuteContext) => T | PromiseLike<T>;

/** One interface for every policy, so they compose with `pipeline()` and with your own implementations. */
export interface Policy {
  execute<T>(fn: Operation<T>, signal?: AbortSignal): Promise<T>;
}

/** A policy that owns timers or connections and can be closed. */
export interface ClosablePolicy extends Policy {
  /** Stops timers, rejects queued work with `ERR_OMS_BREAKER_CLOSED` and removes listeners it added. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

// ---------------------------------------------------------------------------------------------- breaker

export type BreakerState = 'closed' | 'open' | 'half-open';

/** A window over the last `calls` calls. */
export interface CountWindowOptions {
  calls: number;
}

/** A window over the last `ms` milliseconds, kept as a ring of `buckets` (default 10) buckets. */
export interface TimeWindowOptions {
  ms: number;
  buckets?: number;
}

export type WindowOptions = CountWindowOptions | TimeWindowOptions;

export interface FailureRateOptions {
  /** Trip when failures / calls >= threshold, in [0, 1]. */
  threshold: number;
  /** Calls the window must hold before the rate is judged. */
  minimumThroughput: number;
  window: WindowOptions;
}

export interface SlowCallOptions {
  /** A call that takes at least this long is slow (whether it succeeds or not). */
  thresholdMs: number;
  /** Trip when slow calls / calls >= rate, in [0, 1]. */
  rate: number;
  /** Defaults to `failureRate.minimumThroughput`, else 10. */
  minimumThroughput?: number;
  /** Defaults to `failureRate.window`, else `{ calls: 100 }`. */
  window?: WindowOptions;
}

/** Open for `initialMs` after the first trip, multiplied by `factor` (default 2) per repeated trip, up to `maxMs`. */
export interface OpenBackoffOptions {
  initialMs: number;
  maxMs: number;
  factor?: number;
}

export interface HalfOpenOptions {
  /** Probes allowed at once (default 1). */
  maxConcurrent?: number;
  /** Successful probes needed to close (default 1). */
  successesToClose?: number;
  /** Longest time in half-open before the breaker gives up and opens again (default: no limit). */
  maxWaitMs?: number;
}

export interface CircuitBreakerOptions {
  /** Low-cardinality name, used in events, telemetry and the shared store key. */
  name: string;
  /** Trip after this many failures in a row. The default (5) applies when no other trigger is given. */
  consecutiveFailures?: number;
  failureRate?: FailureRateOptions;
  slowCall?: SlowCallOptions;
  /** How long to stay open: a constant in ms (default 10 000) or a backoff that grows on repeated trips. */
  openMs?: number | OpenBackoffOptions;
  halfOpen?: HalfOpenOptions;
  /**
   * Which errors count against the dependency. Others count as successes: the dependency answered.
   * Default: every error except this package's own rejections (open, bulkhead full, budget, limit).
   */
  isFailure?: (err: unknown) => boolean;
  /** Share OPEN and the half-open probe with other instances, e.g. `redisBreakerStore()`. */
  store?: BreakerStore;
  clock?: Clock;
  /** Start from a `toJSON()` snapshot (for example in a serverless function). */
  restore?: BreakerSnapshot;
}

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

export interface CallOutcomeEvent {
  name: string;
  /** The state the call was admitted in. */
  state: BreakerState;
  /** Measured only when a slow-call trigger or a listener needs it. */
  durationMs: number | undefined;
  slow: boolean;
}

export interface CallFailureEvent extends CallOutcomeEvent {
  error: unknown;
}

export type BreakerRejectReason = 'open' | 'isolated' | 'half-open-full' | 'probe-elsewhere';

export interface RejectedEvent {
  name: string;
  state: BreakerState;
  reason: BreakerRejectReason;
}

export interface CircuitBreakerEvents {
  stateChange: StateChangeEvent;
  success: CallOutcomeEvent;
  failure: CallFailureEvent;
  rejected: RejectedEvent;
}

/** JSON-safe breaker state, for `toJSON()` and `restore`. */
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

export type WindowSnapshot = { kind: 'calls'; size: number; outcomes: number[] } | WindowBucketsSnapshot;

export interface WindowBucketsSnapshot {
  kind: 'time';
  bucketMs: number;
  /** [bucket index, calls, failures, slow] */
  buckets: [number, number, number, number][];
}

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

/** How a store talks back to the breaker it serves. Implemented by the breaker. */
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

/** One breaker's connection to a store. Every method returns at once or soon and never throws. */
export interface BreakerStoreLink {
  /** This instance tripped. The store decides whether the trip is global (it then calls `remoteOpen`). */
  trip(openMs: number, trips: number): void;
  /** Half-open: may this instance run the probe? Resolves within the store's command timeout. */
  acquireProbe(leaseMs: number): Promise<boolean>;
  /** Half-open ended in close; `shared` says whether the open was a global one. */
  closed(shared: boolean): void;
  detach(): void;
}

/** A place where breakers of the same name share state. See `@oms/breaker/redis`. */
export interface BreakerStore {
  attach(peer: BreakerPeer): BreakerStoreLink;
}

// ------------------------------------------------------------------------------------------------- retry

/** Computes the delay before retry number `retry` (1 for the first retry). */
export interface Backoff {
  readonly kind: 'constant' | 'linear' | 'exponential' | 'full-jitter' | 'decorrelated-jitter';
  delay(retry: number, prevDelayMs: number, random: () => number, capMs: number): number;
}

export interface RetryOptions {
  name?: string;
  /** Total tries including the first (default 3). */
  maxAttempts?: number;
  /** Default `exponentialBackoff({ initialMs: 100 })`. */
  backoff?: Backoff;
  /** Upper bound of one delay (default 30 000). A `retryAfterMs` above it ends the retries. */
  maxDelayMs?: number;
  /** Default: retry everything except aborts and this package's rejections. */
  shouldRetry?: (err: unknown, attempt: number) => boolean;
  /** Shared Finagle-style budget; a retry it refuses fails with `ERR_OMS_BREAKER_RETRY_BUDGET`. */
  budget?: RetryBudget;
  clock?: Clock;
  /** Random source in [0, 1) for jitter (default Math.random). */
  random?: () => number;
}

export type GiveUpReason =
  | 'max-attempts'
  | 'not-retryable'
  | 'budget-exhausted'
  | 'retry-after-too-long'
  | 'aborted';

export interface RetryEvents {
  retry: { name: string; attempt: number; delayMs: number; error: unknown };
  giveUp: { name: string; attempts: number; reason: GiveUpReason; error: unknown };
}

export interface Retry extends ClosablePolicy {
  readonly kind: 'retry';
  readonly name: string;
  on<K extends keyof RetryEvents>(event: K, fn: (e: RetryEvents[K]) => void): Unsubscribe;
}

export interface RetryBudgetOptions {
  /** Retries allowed per request, in [0, 1] (default 0.2). */
  ratio?: number;
  /** Retries per second allowed regardless of traffic (default 10). */
  minPerSec?: number;
  /** How long a request's deposit stays spendable (default 10 000). */
  ttlMs?: number;
  clock?: Clock;
}

export interface RetryBudget {
  readonly kind: 'retry-budget';
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

export interface TimeoutOptions {
  name?: string;
  /**
   * `cooperative` (default): abort `ctx.signal` at the deadline and wait for the function to settle.
   * `aggressive`: also reject the caller at the deadline, leaving the function to finish in the background.
   */
  strategy?: 'cooperative' | 'aggressive';
  clock?: Clock;
}

export interface Timeout extends ClosablePolicy {
  readonly kind: 'timeout';
  readonly name: string;
  readonly ms: number;
  on(event: 'timeout', fn: (e: { name: string; ms: number }) => void): Unsubscribe;
}

// ---------------------------------------------------------------------------------------------- bulkhead

export interface BulkheadOptions {
  name?: string;
  maxConcurrent: number;
  /** Calls that may wait for a slot (default 0). */
  maxQueue?: number;
  /** Longest wait in the queue (default: until a slot frees or the signal aborts). */
  queueTimeoutMs?: number;
  clock?: Clock;
}

export interface Bulkhead extends ClosablePolicy {
  readonly kind: 'bulkhead';
  readonly name: string;
  readonly active: number;
  readonly queued: number;
  on(event: 'rejected', fn: (e: { name: string; reason: 'full' | 'queue-timeout' }) => void): Unsubscribe;
}

// ---------------------------------------------------------------------------------- adaptive concurrency

export interface AdaptiveConcurrencyOptions {
  name?: string;
  algorithm: 'aimd' | 'gradient';
  initialLimit?: number;
  minLimit?: number;
  maxLimit?: number;
  /** Which errors mean overload (default: every error except this package's rejections). */
  isDrop?: (err: unknown) => boolean;
  /** AIMD: a call slower than this counts as a drop (default: latency is ignored). */
  latencyThresholdMs?: number;
  /** AIMD: multiply the limit by this on a drop (default 0.9). */
  backoffRatio?: number;
  /** Gradient: how much the short RTT may exceed the long RTT before the limit shrinks (default 1.5). */
  tolerance?: number;
  /** Gradient: weight of the newest estimate, in (0, 1] (default 0.2). */
  smoothing?: number;
  /** Gradient: samples in the long-term RTT average (default 600). */
  longWindow?: number;
  clock?: Clock;
}

export interface AdaptiveConcurrency extends ClosablePolicy {
  readonly kind: 'adaptive-concurrency';
  readonly name: string;
  readonly limit: number;
  readonly inflight: number;
  on(event: 'limitChange', fn: (e: { name: string; from: number; to: number }) => void): Unsubscribe;
  on(event: 'rejected', fn: (e: { name: string; limit: number }) => void): Unsubscribe;
}

// ---------------------------------------------------------------------------------------------- fallback

export interface FallbackOptions {
  name?: string;
  /** Which errors to replace (default: all). */
  when?: (err: unknown) => boolean;
}

export interface Fallback extends ClosablePolicy {
  readonly kind: 'fallback';
  readonly name: string;
  on(event: 'fallback', fn: (e: { name: string; error: unknown }) => void): Unsubscribe;
}

export interface Pipeline extends ClosablePolicy {
  readonly kind: 'pipeline';
  readonly policies: readonly Policy[];
}
