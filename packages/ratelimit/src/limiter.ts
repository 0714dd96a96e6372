import { type AlgorithmImpl, impl, Mode, newOut, type Out } from './algorithm.js';
import { Abort, abortedError, Deadlines } from './deadlines.js';
import { invalidOption, isOmsRatelimitError, OmsRatelimitError } from './errors.js';
import { systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import { memoryStore } from './memory-store.js';
import { RemoteCall } from './remote-call.js';
import { type AsyncBinding, isStoreImpl, type StoreImpl, type SyncBinding } from './store.js';
import type {
  AcquireOptions,
  Clock,
  ConsumeOptions,
  Decision,
  RateLimiter,
  RateLimiterEvents,
  RateLimiterOptions,
  RatePolicy,
  StoreErrorPolicy,
} from './types.js';
import { costError, keyError, policyName, v } from './validate.js';

const POLICIES: readonly StoreErrorPolicy[] = ['open', 'closed', 'insurance'];

const closedError = () =>
  new OmsRatelimitError('ERR_OMS_RATELIMIT_CLOSED', 'the limiter is closed; create a new one');

/**
 * What `limitAll` needs of a limiter beyond `RateLimiter`. It is reached through `internals`, which only this
 * package's modules import, so none of it is a method a user could call.
 */
export interface LimiterInternals {
  readonly clock: (l: Limiter) => Clock;
  readonly closed: (l: Limiter) => boolean;
  readonly timeoutMs: (l: Limiter) => number;
  /** Current parameters: the limiter's own, or a fresh array scaled for now when adaptive. */
  readonly params: (l: Limiter) => Float64Array;
  /** The quota parameters `p` of `l` give. */
  readonly quota: (l: Limiter, p: Float64Array) => number;
  /** The Decision of `out` (and the 'decision' event); `degraded` when the store-error policy answered. */
  readonly decision: (l: Limiter, out: Out, limit: number, degraded: boolean) => Decision;
  /** A memory store's one-scope commit, with no promise; undefined on a remote store. */
  readonly commitNow: (l: Limiter, key: string, cost: number) => Decision | undefined;
  /** Fills `out` per `onStoreError` after a store failure, and reports it. */
  readonly degrade: (
    l: Limiter,
    error: unknown,
    key: string,
    cost: number,
    mode: Mode,
    out: Out,
  ) => StoreErrorPolicy;
  /** Charges the insurance limiter when the policy is 'insurance' (a no-op otherwise). */
  readonly chargeInsurance: (l: Limiter, key: string, cost: number, out: Out) => void;
  /** The limiter's store-call bound, which `limitAll` uses for its first scope's limiter. */
  readonly deadlines: (l: Limiter) => Deadlines;
  /** The Decision of `out` as `decision` makes it, with the policy that answered (if any) named. */
  readonly decisionAs: (
    l: Limiter,
    out: Out,
    limit: number,
    policy: StoreErrorPolicy | undefined,
  ) => Decision;
  /** Emits 'storeCall' for a round trip that began at `t0` (performance.now()). */
  readonly storeCall: (l: Limiter, t0: number, ok: boolean) => void;
}

/** Set by `Limiter`'s static block, the one place that can reach its private members. */
export let internals: LimiterInternals;

/** The engine behind `rateLimiter()`; `limitAll` reaches its internals through `internals`. */
export class Limiter implements RateLimiter {
  readonly name: string;
  readonly algorithm: AlgorithmImpl;
  readonly policy: RatePolicy;
  readonly store: StoreImpl;
  readonly #clock: Clock;
  readonly #onStoreError: StoreErrorPolicy;
  readonly #ev = new Emitter<RateLimiterEvents>();
  readonly #sync: SyncBinding | undefined;
  readonly #async: AsyncBinding | undefined;
  readonly #p: Float64Array;
  readonly #out = newOut();
  readonly #deadlines: Deadlines;
  readonly #insurance: SyncBinding | undefined;
  readonly #insuranceFraction: number;
  readonly #closedRetryAfterMs: number;
  readonly #max: number;
  readonly #quota: number;
  #closed = false;

  constructor(o: RateLimiterOptions) {
    if (o === null || typeof o !== 'object') throw invalidOption('rateLimiter() needs { name, algorithm }');
    policyName(o.name);
    const alg = impl(o.algorithm);
    if (!alg || typeof alg.step !== 'function') {
      throw invalidOption(
        'algorithm must come from tokenBucket(), gcra(), slidingWindow(), fixedWindow() or adaptive()',
      );
    }
    const store = o.store ?? memoryStore();
    if (!isStoreImpl(store)) throw invalidOption('store must come from memoryStore() or redisStore()');
    const policy = o.onStoreError ?? 'closed';
    if (!POLICIES.includes(policy)) {
      throw invalidOption(`onStoreError must be 'open', 'closed' or 'insurance' (got ${String(policy)})`);
    }
    const timeoutMs = v.positiveFinite('timeoutMs', o.timeoutMs ?? 250);
    const insuranceFraction = v.fraction('insuranceFraction', o.insuranceFraction ?? 0.1, { openLow: true });
    const closedRetryAfterMs = v.positiveFinite('closedRetryAfterMs', o.closedRetryAfterMs ?? 1000);
    const clock = v.clock(o.clock, systemClock);
    this.name = o.name;
    this.algorithm = alg;
    this.store = store;
    this.#clock = clock;
    this.#onStoreError = policy;
    this.#max = alg.limit;
    this.#quota = alg.quota;
    this.policy = Object.freeze({
      name: o.name,
      limit: alg.quota,
      windowSec: Math.max(1, Math.ceil(alg.windowMs / 1000)),
      algorithm: alg.kind,
    });
    this.#p = Float64Array.from(alg.base);
    if (store.sync) this.#sync = store.bind(o.name);
    else this.#async = store.bind(o.name, timeoutMs);
    this.#deadlines = new Deadlines(clock, timeoutMs);
    this.#insuranceFraction = insuranceFraction;
    this.#closedRetryAfterMs = closedRetryAfterMs;
    if (policy === 'insurance' && !store.sync) {
      this.#insurance = (
        memoryStore({ maxKeys: 100_000 }) as StoreImpl as { bind(n: string): SyncBinding }
      ).bind(o.name);
    }
  }

  static {
    internals = {
      clock: (l) => l.#clock,
      closed: (l) => l.#closed,
      timeoutMs: (l) => l.#deadlines.ms,
      params: (l) => l.#params(),
      quota: (l, p) => l.#limitNow(p),
      decision: (l, out, limit, degraded) => l.#decision(out, limit, degraded ? l.#onStoreError : undefined),
      commitNow: (l, key, cost) => l.#commitNow(key, cost),
      degrade: (l, error, key, cost, mode, out) => l.#degrade(error, key, cost, mode, out),
      chargeInsurance: (l, key, cost, out) => {
        if (l.#onStoreError === 'insurance') l.#insure(key, cost, Mode.commit, out);
      },
      deadlines: (l) => l.#deadlines,
      decisionAs: (l, out, limit, policy) => l.#decision(out, limit, policy),
      storeCall: (l, t0, ok) => l.#storeCall(t0, ok),
    };
  }

  #params(): Float64Array {
    const a = this.algorithm;
    if (!a.adaptive) return this.#p;
    const p = new Float64Array(3);
    a.scale(p, a.multiplier!());
    return p;
  }

  #limitNow(p: Float64Array): number {
    return this.algorithm.adaptive ? this.algorithm.quotaOf(p) : this.#quota;
  }

  #decision(out: Out, limit: number, degraded?: StoreErrorPolicy): Decision {
    const d: Decision =
      degraded === undefined
        ? {
            allowed: out.allowed,
            limit,
            remaining: out.remaining,
            resetMs: out.resetMs,
            retryAfterMs: out.retryAfterMs,
            policy: this.policy,
          }
        : {
            allowed: out.allowed,
            limit,
            remaining: out.remaining,
            resetMs: out.resetMs,
            retryAfterMs: out.retryAfterMs,
            policy: this.policy,
            degraded,
          };
    if (this.#ev.has('decision')) this.#ev.emit('decision', d);
    return d;
  }

  consume(key: string, opts?: ConsumeOptions): Promise<Decision> {
    return this.#call(key, opts, Mode.commit);
  }

  peek(key: string, opts?: { signal?: AbortSignal }): Promise<Decision> {
    return this.#call(key, opts, Mode.peek);
  }

  #call(key: string, opts: ConsumeOptions | undefined, mode: Mode): Promise<Decision> {
    const ke = keyError(key);
    if (ke) return Promise.reject(ke);
    let cost = 1;
    let signal: AbortSignal | undefined;
    if (opts !== undefined) {
      if (opts.cost !== undefined && mode === Mode.commit) {
        cost = opts.cost;
        const ce = costError(cost, this.#max);
        if (ce) return Promise.reject(ce);
      }
      signal = opts.signal;
      if (signal?.aborted) return Promise.reject(abortedError(signal));
    }
    if (this.#closed) return Promise.reject(closedError());
    const a = this.algorithm;
    const p = this.#p;
    if (a.adaptive) a.scale(p, a.multiplier!());
    // the memory hot path: one Map lookup, one step, one Decision, one settled promise
    if (this.#sync !== undefined) return Promise.resolve(this.#stepNow(key, p, cost, mode));
    return this.#remote(key, p, cost, mode, signal);
  }

  /**
   * `limitAll`'s one-scope case on a memory store: the caller has checked the key, the cost and `closed`, so
   * this is the step alone, with no promise. Undefined on a remote store.
   */
  #commitNow(key: string, cost: number): Decision | undefined {
    if (this.#sync === undefined) return undefined;
    const a = this.algorithm;
    const p = this.#p;
    if (a.adaptive) a.scale(p, a.multiplier!());
    return this.#stepNow(key, p, cost, Mode.commit);
  }

  #stepNow(key: string, p: Float64Array, cost: number, mode: Mode): Decision {
    const a = this.algorithm;
    const out = this.#out;
    const now = this.#clock.now();
    a.step(this.#sync!.slot(key, now, mode !== Mode.peek), now, p, cost, mode, now, out);
    const d: Decision = {
      allowed: out.allowed,
      limit: a.adaptive ? a.quotaOf(p) : this.#quota,
      remaining: out.remaining,
      resetMs: out.resetMs,
      retryAfterMs: out.retryAfterMs,
      policy: this.policy,
    };
    if (this.#ev.has('decision')) this.#ev.emit('decision', d);
    return d;
  }

  #remote(key: string, p: Float64Array, cost: number, mode: Mode, signal?: AbortSignal): Promise<Decision> {
    const t0 = this.#ev.has('storeCall') ? performance.now() : -1;
    const call = new RemoteCall(this, this.#deadlines, key, cost, mode, this.#limitNow(p), t0, signal);
    const promise = new Promise<Decision>((resolve, reject) => {
      call.resolve = resolve;
      call.fail = reject;
    });
    call.start();
    this.#async!.apply(key, this.algorithm, p, cost, mode, call);
    return promise;
  }

  #storeCall(t0: number, ok: boolean): void {
    this.#ev.emit('storeCall', {
      name: this.name,
      store: this.store.kind,
      durationSec: (performance.now() - t0) / 1000,
      ok,
    });
  }

  /** Fills `out` per `onStoreError` after a store failure, and reports it. */
  #degrade(error: unknown, key: string, cost: number, mode: Mode, out: Out): StoreErrorPolicy {
    const policy = this.#onStoreError;
    const code = isOmsRatelimitError(error) ? error.code : 'ERR_OMS_RATELIMIT_STORE_UNAVAILABLE';
    this.#ev.emit('storeError', { name: this.name, store: this.store.kind, policy, code, error });
    if (policy === 'open') {
      out.allowed = true;
      out.remaining = Math.max(0, this.algorithm.limit - (mode === Mode.commit ? cost : 0));
      out.resetMs = 0;
      out.retryAfterMs = 0;
    } else if (policy === 'closed') {
      out.allowed = false;
      out.remaining = 0;
      out.resetMs = this.#closedRetryAfterMs;
      out.retryAfterMs = this.#closedRetryAfterMs;
    } else {
      this.#insure(key, cost, mode, out);
    }
    return policy;
  }

  /** Evaluates the call on this process's insurance limiter (a fraction of the limit). */
  #insure(key: string, cost: number, mode: Mode, out: Out): void {
    const a = this.algorithm;
    const p = new Float64Array(3);
    a.scale(p, this.#insuranceFraction * (a.adaptive ? a.multiplier!() : 1));
    const binding = this.#insurance ?? this.#sync!;
    binding.apply(
      key,
      a,
      p,
      Math.min(cost, a.limitAt(this.#insuranceFraction)),
      mode,
      this.#clock.now(),
      out,
    );
  }

  async reset(key: string, opts?: { signal?: AbortSignal }): Promise<void> {
    const ke = keyError(key);
    if (ke) throw ke;
    if (opts?.signal?.aborted) throw abortedError(opts.signal);
    if (this.#closed) throw closedError();
    this.#insurance?.reset(key);
    if (this.#sync) return this.#sync.reset(key);
    try {
      await this.#deadlines.run(this.#async!.reset(key), opts?.signal);
    } catch (e) {
      if (isOmsRatelimitError(e)) throw e;
      throw new OmsRatelimitError(
        'ERR_OMS_RATELIMIT_STORE_UNAVAILABLE',
        'reset failed: the store is unavailable',
        true,
        {
          cause: e,
        },
      );
    }
  }

  async acquire(key: string, opts: AcquireOptions): Promise<Decision> {
    if (opts === null || typeof opts !== 'object') throw invalidOption('acquire() needs { maxWaitMs }');
    const { signal } = opts;
    const maxWaitMs = v.nonNegativeFinite('maxWaitMs', opts.maxWaitMs);
    const deadline = this.#clock.now() + maxWaitMs;
    for (;;) {
      const d = await this.consume(key, opts);
      if (d.allowed) return d;
      const left = deadline - this.#clock.now();
      const wait = Math.max(1, d.retryAfterMs);
      if (wait > left) {
        const e = new OmsRatelimitError(
          'ERR_OMS_RATELIMIT_TIMEOUT',
          `capacity frees up in ${d.retryAfterMs} ms, beyond maxWaitMs (${maxWaitMs} ms)`,
          true,
        );
        e.retryAfterMs = d.retryAfterMs;
        throw e;
      }
      // the algorithm says exactly when the cost fits; sleep until then instead of polling
      await Abort.sleep(this.#clock, wait, signal);
    }
  }

  on<E extends keyof RateLimiterEvents>(event: E, fn: (e: RateLimiterEvents[E]) => void): () => void {
    return this.#ev.on(event, fn);
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#deadlines.close();
    this.#ev.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Creates a rate limiter. The default store is a per-process `memoryStore()`; pass `redisStore()` from
 * `@oms/ratelimit/redis` to share limits across instances.
 *
 * @example
 * import type { ServerResponse } from 'node:http';
 * import { httpHeaders, rateLimiter, tokenBucket } from '@oms/ratelimit';
 * declare const res: ServerResponse;
 * const limiter = rateLimiter({ name: 'api', algorithm: tokenBucket({ capacity: 10, refillPerSec: 5 }) });
 * const d = await limiter.consume('user:42');
 * if (!d.allowed) res.writeHead(429, { ...httpHeaders(d) }).end();
 */
export function rateLimiter(o: RateLimiterOptions): RateLimiter {
  return new Limiter(o);
}
