import { type CallContext, kRun, NEVER, type Next, PolicyBase } from './context.js';
import { invalid, isRejection, OmsBreakerError } from './errors.js';
import { systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import type {
  BreakerPeer,
  BreakerRejectReason,
  BreakerSnapshot,
  BreakerState,
  BreakerStoreLink,
  CircuitBreaker,
  CircuitBreakerEvents,
  CircuitBreakerOptions,
  Clock,
  TransitionReason,
  Unsubscribe,
  WindowOptions,
} from './types.js';
import { func, isObject, policyName, requireObject, v } from './validate.js';
import { CountWindow, FAILED, type OutcomeWindow, SLOW, TimeWindow } from './windows.js';

const CLOSED = 0;
const OPEN = 1;
const HALF = 2;
const STATES: readonly BreakerState[] = ['closed', 'open', 'half-open'];

// Probe lease held by this instance in a shared half-open state.
const LEASE_NONE = 0;
const LEASE_PENDING = 1;
const LEASE_HELD = 2;

/** What a lease request resolves to when the caller's signal aborted first. */
const ABORTED = 'aborted' as const;

const defaultIsFailure = (err: unknown): boolean => !isRejection(err);

function windowOf(label: string, w: unknown): OutcomeWindow {
  requireObject(label, w);
  if ('calls' in w) return new CountWindow(v.integer(`${label}.calls`, w.calls, { min: 1 }));
  if ('ms' in w) {
    const ms = v.positiveFinite(`${label}.ms`, w.ms);
    const buckets =
      w.buckets === undefined ? 10 : v.integer(`${label}.buckets`, w.buckets, { min: 1, max: 1000 });
    return new TimeWindow(ms, buckets);
  }
  throw invalid(`${label} must be { calls } or { ms, buckets? }`);
}

const isCount = (n: unknown): boolean => typeof n === 'number' && Number.isFinite(n) && n >= 0;

/** Checked before a restore touches any state, so a bad snapshot leaves the breaker as it was. */
function validWindow(w: unknown): boolean {
  if (!isObject(w)) return false;
  if (w.kind === 'calls') return Array.isArray(w.outcomes) && w.outcomes.every(isCount);
  if (w.kind !== 'time' || !Array.isArray(w.buckets) || !isCount(w.bucketMs)) return false;
  return w.buckets.every(
    (b: unknown) => Array.isArray(b) && b.length === 4 && Number.isInteger(b[0]) && b.slice(1).every(isCount),
  );
}

function sameWindow(a: WindowOptions, b: WindowOptions): boolean {
  if ('calls' in a && 'calls' in b) return a.calls === b.calls;
  if ('ms' in a && 'ms' in b) return a.ms === b.ms && (a.buckets ?? 10) === (b.buckets ?? 10);
  return false;
}

class CircuitBreakerImpl extends PolicyBase implements CircuitBreaker, BreakerPeer {
  readonly kind = 'circuit-breaker' as const;
  readonly name: string;
  readonly #clock: Clock;
  readonly #ev = new Emitter<CircuitBreakerEvents>();
  readonly #isFailure: (err: unknown) => boolean;
  readonly #maxConsecutive: number;
  readonly #fw: OutcomeWindow | null;
  readonly #threshold: number;
  readonly #minCalls: number;
  readonly #sw: OutcomeWindow | null;
  readonly #slowMs: number;
  readonly #slowRate: number;
  readonly #slowMinCalls: number;
  readonly #openInitial: number;
  readonly #openMax: number;
  readonly #openFactor: number;
  readonly #maxProbes: number;
  readonly #successesToClose: number;
  readonly #maxWaitMs: number;
  #link: BreakerStoreLink | null = null;

  #st = CLOSED;
  /** Bumped on every transition so a call admitted in an earlier state cannot drive the current one. */
  #gen = 0;
  #openUntil = 0;
  /** The current open is known to the store (ours went global, or it came from another instance). */
  #shared = false;
  #isolated = false;
  #trips = 0;
  #consecutive = 0;
  #halfSince = 0;
  #probes = 0;
  #probeSuccesses = 0;
  #lease = LEASE_NONE;
  #leaseRetryAt = 0;
  /** Take the time around a call only when a slow-call trigger or a listener wants the duration. */
  #timed: boolean;

  constructor(o: CircuitBreakerOptions) {
    super();
    requireObject('circuitBreaker options', o);
    this.name = policyName('name', o.name);
    this.#clock = v.clock(o.clock, systemClock);
    this.#isFailure = o.isFailure === undefined ? defaultIsFailure : func('isFailure', o.isFailure);

    const noTrigger =
      o.consecutiveFailures === undefined && o.failureRate === undefined && o.slowCall === undefined;
    this.#maxConsecutive = noTrigger
      ? 5
      : o.consecutiveFailures === undefined
        ? 0
        : v.integer('consecutiveFailures', o.consecutiveFailures, { min: 1 });

    if (o.failureRate !== undefined) {
      requireObject('failureRate', o.failureRate);
      this.#threshold = v.fraction('failureRate.threshold', o.failureRate.threshold);
      this.#minCalls = v.integer('failureRate.minimumThroughput', o.failureRate.minimumThroughput, {
        min: 1,
      });
      this.#fw = windowOf('failureRate.window', o.failureRate.window);
    } else {
      this.#threshold = 1;
      this.#minCalls = 1;
      this.#fw = null;
    }

    if (o.slowCall !== undefined) {
      requireObject('slowCall', o.slowCall);
      this.#slowMs = v.durationMs('slowCall.thresholdMs', o.slowCall.thresholdMs);
      this.#slowRate = v.fraction('slowCall.rate', o.slowCall.rate);
      this.#slowMinCalls =
        o.slowCall.minimumThroughput === undefined
          ? (o.failureRate?.minimumThroughput ?? 10)
          : v.integer('slowCall.minimumThroughput', o.slowCall.minimumThroughput, { min: 1 });
      const w = o.slowCall.window ?? o.failureRate?.window ?? { calls: 100 };
      this.#sw =
        this.#fw !== null && o.failureRate !== undefined && sameWindow(w, o.failureRate.window)
          ? this.#fw
          : windowOf('slowCall.window', w);
    } else {
      this.#slowMs = Number.POSITIVE_INFINITY;
      this.#slowRate = 1;
      this.#slowMinCalls = 1;
      this.#sw = null;
    }

    const openMs = o.openMs ?? 10_000;
    if (typeof openMs === 'number') {
      this.#openInitial = this.#openMax = v.durationMs('openMs', openMs);
      this.#openFactor = 1;
    } else {
      requireObject('openMs', openMs);
      this.#openInitial = v.durationMs('openMs.initialMs', openMs.initialMs);
      this.#openMax = v.durationMs('openMs.maxMs', openMs.maxMs);
      this.#openFactor = openMs.factor === undefined ? 2 : v.positiveFinite('openMs.factor', openMs.factor);
      if (this.#openMax < this.#openInitial) {
        throw invalid(
          `openMs.maxMs must be >= openMs.initialMs (got ${this.#openMax} < ${this.#openInitial})`,
        );
      }
      if (this.#openFactor < 1) throw invalid(`openMs.factor must be >= 1 (got ${this.#openFactor})`);
    }

    const h = o.halfOpen ?? {};
    requireObject('halfOpen', h);
    this.#maxProbes =
      h.maxConcurrent === undefined ? 1 : v.integer('halfOpen.maxConcurrent', h.maxConcurrent, { min: 1 });
    this.#successesToClose =
      h.successesToClose === undefined
        ? 1
        : v.integer('halfOpen.successesToClose', h.successesToClose, { min: 1 });
    this.#maxWaitMs =
      h.maxWaitMs === undefined
        ? Number.POSITIVE_INFINITY
        : v.positiveFinite('halfOpen.maxWaitMs', h.maxWaitMs);

    this.#timed = this.#sw !== null;
    if (o.restore !== undefined) this.restore(o.restore);
    if (o.store !== undefined) {
      if (!isObject(o.store) || typeof o.store.attach !== 'function') {
        throw invalid('store must have attach(peer), for example redisBreakerStore({ redis, prefix })');
      }
      this.#link = o.store.attach(this);
    }
  }

  get state(): BreakerState {
    this.#tick();
    return STATES[this.#st]!;
  }

  get isolated(): boolean {
    return this.#isolated;
  }

  on<K extends keyof CircuitBreakerEvents>(event: K, fn: (e: CircuitBreakerEvents[K]) => void): Unsubscribe {
    const off = this.#ev.on(event, fn);
    this.#retime();
    return () => {
      off();
      this.#retime();
    };
  }

  #retime(): void {
    this.#timed = this.#sw !== null || this.#ev.has('success') || this.#ev.has('failure');
  }

  [kRun](ctx: CallContext, next: Next): Promise<unknown> {
    if (this.#st === CLOSED) return this.#call(ctx, next, CLOSED, this.#gen);
    return this.#admit(ctx, next);
  }

  async #admit(ctx: CallContext, next: Next): Promise<unknown> {
    this.#tick();
    if (this.#st === CLOSED) return this.#call(ctx, next, CLOSED, this.#gen);
    if (this.#st === OPEN) throw this.#reject(this.#isolated ? 'isolated' : 'open');
    if (this.#probes >= this.#maxProbes) throw this.#reject('half-open-full');
    const gen = this.#gen;
    this.#probes++;
    if (this.#link !== null && this.#shared && this.#lease !== LEASE_HELD) {
      if (this.#lease === LEASE_PENDING || this.#clock.now() < this.#leaseRetryAt) {
        this.#probes--;
        throw this.#reject('probe-elsewhere');
      }
      this.#lease = LEASE_PENDING;
      const granted = await this.#acquireLease(this.#link, gen, ctx);
      if (gen !== this.#gen) {
        // The state moved while we asked (a remote close, say): follow it instead of probing.
        if (granted === ABORTED) throw ctx.abortReason();
        if (this.#st === CLOSED) return this.#call(ctx, next, CLOSED, this.#gen);
        throw this.#reject(this.#st === OPEN ? 'open' : 'half-open-full');
      }
      if (granted !== true) {
        this.#probes--;
        if (granted === ABORTED) throw ctx.abortReason();
        throw this.#reject('probe-elsewhere');
      }
    }
    return this.#call(ctx, next, HALF, gen);
  }

  /**
   * Asks the store for the probe lease. The lease state is updated when the store answers, even if the caller
   * gave up first: a lease granted to an aborted call is used by this instance's next call. A store that
   * fails is treated like Redis being away: this instance decides alone rather than never recovering.
   */
  #acquireLease(link: BreakerStoreLink, gen: number, ctx: CallContext): Promise<boolean | typeof ABORTED> {
    const leaseMs = Number.isFinite(this.#maxWaitMs) ? this.#maxWaitMs : 30_000;
    const answered = Promise.resolve()
      .then(() => link.acquireProbe(leaseMs))
      .then(
        (g) => g === true,
        () => true,
      )
      .then((granted) => {
        if (gen === this.#gen) {
          this.#lease = granted ? LEASE_HELD : LEASE_NONE;
          if (!granted) this.#leaseRetryAt = this.#clock.now() + Math.min(1000, leaseMs);
        }
        return granted;
      });
    const signal = ctx.signal;
    if (signal === NEVER) return answered;
    return new Promise((resolve) => {
      const onAbort = () => resolve(ABORTED);
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      void answered.then((granted) => {
        signal.removeEventListener('abort', onAbort);
        resolve(granted);
      });
    });
  }

  async #call(ctx: CallContext, next: Next, st: number, gen: number): Promise<unknown> {
    const t0 = this.#timed ? this.#clock.now() : Number.NaN;
    let value: unknown;
    try {
      value = await next.call(ctx);
    } catch (e) {
      if (ctx.callerAborted()) {
        // Ignored, as Polly does: neither a success nor a failure, and a probe slot it held is freed.
        if (st === HALF && gen === this.#gen) this.#probes--;
        throw e;
      }
      let failed: boolean;
      try {
        failed = this.#isFailure(e) !== false;
      } catch {
        failed = true;
      }
      this.#settle(st, gen, t0, failed, e);
      throw e;
    }
    this.#settle(st, gen, t0, false, undefined);
    return value;
  }

  #settle(st: number, gen: number, t0: number, failed: boolean, error: unknown): void {
    let durationMs: number | undefined;
    let slow = false;
    let now = 0;
    if (!Number.isNaN(t0)) {
      now = this.#clock.now();
      durationMs = now - t0;
      slow = durationMs >= this.#slowMs;
    }
    if (failed) {
      if (this.#ev.has('failure')) {
        this.#ev.emit('failure', { name: this.name, state: STATES[st]!, durationMs, slow, error });
      }
    } else if (this.#ev.has('success')) {
      this.#ev.emit('success', { name: this.name, state: STATES[st]!, durationMs, slow });
    }
    if (gen !== this.#gen) return;
    if (st === CLOSED) {
      if (this.#maxConsecutive !== 0) {
        if (!failed) this.#consecutive = 0;
        else if (++this.#consecutive >= this.#maxConsecutive) {
          this.#toOpen('consecutive-failures');
          return;
        }
      }
      const fw = this.#fw;
      const sw = this.#sw;
      if (fw === null && sw === null) return;
      if (now === 0) now = this.#clock.now();
      const code = (failed ? FAILED : 0) | (slow ? SLOW : 0);
      if (fw !== null) {
        fw.record(code, now);
        if (failed && fw.calls(now) >= this.#minCalls && fw.failures >= this.#threshold * fw.calls(now)) {
          this.#toOpen('failure-rate');
          return;
        }
      }
      if (sw !== null) {
        if (sw !== fw) sw.record(code, now);
        if (slow && sw.calls(now) >= this.#slowMinCalls && sw.slow >= this.#slowRate * sw.calls(now)) {
          this.#toOpen('slow-call-rate');
          return;
        }
      }
    } else if (st === HALF) {
      this.#probes--;
      // A verdict that arrives after maxWaitMs is too late: the half-open period already ended in open.
      if (Number.isFinite(this.#maxWaitMs) && this.#clock.now() - this.#halfSince >= this.#maxWaitMs) {
        this.#toOpen('half-open-timeout');
      } else if (failed || slow) this.#toOpen('probe-failed');
      else if (++this.#probeSuccesses >= this.#successesToClose) this.#toClosed('probes-succeeded', true);
    }
  }

  #reject(reason: BreakerRejectReason): OmsBreakerError {
    const state = STATES[this.#st]!;
    if (this.#ev.has('rejected')) this.#ev.emit('rejected', { name: this.name, state, reason });
    const retryAfterMs =
      this.#st === OPEN
        ? this.#isolated
          ? undefined
          : Math.max(0, this.#openUntil - this.#clock.now())
        : undefined;
    const why =
      reason === 'isolated'
        ? 'is isolated until reset()'
        : reason === 'open'
          ? `is open for another ${retryAfterMs} ms`
          : reason === 'half-open-full'
            ? 'is half-open and its probe slots are taken'
            : 'is half-open and another instance holds the probe';
    // Retryable: the same call can succeed once the breaker lets probes through again (see retryAfterMs).
    return new OmsBreakerError('ERR_OMS_BREAKER_OPEN', `circuit breaker '${this.name}' ${why}`, true, {
      retryAfterMs,
    });
  }

  /** Applies the transitions that happen by the passing of time. */
  #tick(): void {
    if (this.#st === OPEN) {
      if (this.#isolated || this.#clock.now() < this.#openUntil) return;
      this.#transition(HALF, 'open-elapsed');
      this.#halfSince = this.#clock.now();
      return;
    }
    if (this.#st === HALF && this.#clock.now() - this.#halfSince >= this.#maxWaitMs) {
      this.#toOpen('half-open-timeout');
    }
  }

  #transition(to: number, reason: TransitionReason, openMs?: number): void {
    const from = this.#st;
    this.#st = to;
    this.#gen++;
    this.#probes = 0;
    this.#probeSuccesses = 0;
    this.#lease = LEASE_NONE;
    this.#leaseRetryAt = 0;
    this.#consecutive = 0;
    this.#fw?.clear();
    this.#sw?.clear();
    if (this.#ev.has('stateChange') && from !== to) {
      const e = { name: this.name, from: STATES[from]!, to: STATES[to]!, reason, at: this.#clock.now() };
      this.#ev.emit('stateChange', openMs === undefined ? e : { ...e, openMs });
    }
  }

  #openDuration(trips: number): number {
    if (this.#openFactor === 1) return this.#openInitial;
    return Math.min(this.#openMax, this.#openInitial * this.#openFactor ** Math.max(0, trips - 1));
  }

  #toOpen(reason: TransitionReason): void {
    this.#trips++;
    const openMs = this.#openDuration(this.#trips);
    this.#openUntil = this.#clock.now() + openMs;
    this.#shared = false;
    this.#transition(OPEN, reason, openMs);
    this.#link?.trip(openMs, this.#trips);
  }

  #toClosed(reason: TransitionReason, notify: boolean): void {
    const wasShared = this.#shared;
    this.#trips = 0;
    this.#shared = false;
    this.#transition(CLOSED, reason);
    if (notify) this.#link?.closed(wasShared);
  }

  isolate(): void {
    if (this.#isolated) return;
    this.#isolated = true;
    this.#openUntil = Number.POSITIVE_INFINITY;
    this.#shared = false;
    if (this.#st !== OPEN) this.#transition(OPEN, 'isolated');
  }

  reset(): void {
    this.#isolated = false;
    if (this.#st === CLOSED) {
      this.#consecutive = 0;
      this.#fw?.clear();
      this.#sw?.clear();
      this.#trips = 0;
      return;
    }
    this.#toClosed('reset', true);
  }

  stats(): { calls: number; failures: number; slow: number; consecutiveFailures: number; trips: number } {
    const now = this.#clock.now();
    const w = this.#fw ?? this.#sw;
    return {
      calls: w?.calls(now) ?? 0,
      failures: this.#fw?.failures ?? 0,
      slow: this.#sw?.slow ?? 0,
      consecutiveFailures: this.#consecutive,
      trips: this.#trips,
    };
  }

  // ------------------------------------------------------------------------------------ BreakerPeer

  remoteOpen(remainingMs: number, trips: number): void {
    if (this.#isolated) return;
    this.#trips = Math.max(this.#trips, trips);
    const until = this.#clock.now() + Math.max(0, remainingMs);
    if (this.#st === OPEN) {
      this.#openUntil = until;
      this.#shared = true;
      return;
    }
    this.#openUntil = until;
    this.#shared = true;
    this.#transition(OPEN, 'remote-open', Math.max(0, remainingMs));
  }

  remoteClose(): void {
    if (this.#isolated || this.#st === CLOSED || !this.#shared) return;
    this.#toClosed('remote-close', false);
  }

  localView(): ReturnType<BreakerPeer['localView']> {
    this.#tick();
    return {
      state: STATES[this.#st]!,
      shared: this.#shared,
      openRemainingMs: this.#st === OPEN ? Math.max(0, this.#openUntil - this.#clock.now()) : 0,
      trips: this.#trips,
      isolated: this.#isolated,
    };
  }

  // -------------------------------------------------------------------------------- serialisation

  toJSON(): BreakerSnapshot {
    this.#tick();
    const s: BreakerSnapshot = {
      v: 1,
      name: this.name,
      state: STATES[this.#st]!,
      isolated: this.#isolated,
      // A closed breaker has no open deadline: the last one is history, not state, and readers take it as live.
      openUntil: this.#st !== CLOSED && Number.isFinite(this.#openUntil) ? this.#openUntil : 0,
      trips: this.#trips,
      consecutiveFailures: this.#consecutive,
    };
    if (this.#fw !== null) s.window = this.#fw.snapshot();
    if (this.#sw !== null && this.#sw !== this.#fw) s.slowWindow = this.#sw.snapshot();
    else if (this.#sw !== null) s.window = this.#sw.snapshot();
    return s;
  }

  restore(s: BreakerSnapshot): void {
    const bad = (why: string) =>
      new OmsBreakerError('ERR_OMS_BREAKER_INVALID_SNAPSHOT', `cannot restore: ${why}`);
    if (!isObject(s) || s.v !== 1) throw bad('not a version 1 snapshot from toJSON()');
    if (s.name !== this.name) throw bad(`snapshot is of breaker '${String(s.name)}', not '${this.name}'`);
    const st = STATES.indexOf(s.state);
    if (st < 0) throw bad(`unknown state ${String(s.state)}`);
    for (const k of ['openUntil', 'trips', 'consecutiveFailures'] as const) {
      if (typeof s[k] !== 'number' || !Number.isFinite(s[k]) || s[k] < 0)
        throw bad(`${k} must be a number >= 0`);
    }
    for (const k of ['window', 'slowWindow'] as const) {
      if (s[k] !== undefined && !validWindow(s[k])) throw bad(`${k} is not a window from toJSON()`);
    }
    const from = this.#st;
    // Half-open is not resumed as such: its probes belonged to the old process. It reopens and lets the
    // next call probe at once.
    const to = s.isolated || st !== CLOSED ? OPEN : CLOSED;
    this.#st = to;
    this.#gen++;
    this.#isolated = s.isolated === true;
    this.#openUntil = this.#isolated ? Number.POSITIVE_INFINITY : st === HALF ? 0 : s.openUntil;
    this.#trips = s.trips;
    this.#shared = false;
    this.#probes = 0;
    this.#probeSuccesses = 0;
    this.#lease = LEASE_NONE;
    this.#consecutive = to === CLOSED ? s.consecutiveFailures : 0;
    this.#fw?.clear();
    this.#sw?.clear();
    if (to === CLOSED) {
      if (s.window !== undefined) (this.#fw ?? this.#sw)?.restore(s.window);
      if (s.slowWindow !== undefined && this.#sw !== null && this.#sw !== this.#fw)
        this.#sw.restore(s.slowWindow);
    }
    if (from !== to && this.#ev.has('stateChange')) {
      this.#ev.emit('stateChange', {
        name: this.name,
        from: STATES[from]!,
        to: STATES[to]!,
        reason: 'restored',
        at: this.#clock.now(),
      });
    }
  }

  override async close(): Promise<void> {
    this.#link?.detach();
    this.#link = null;
    this.#ev.clear();
    this.#retime();
  }
}

/**
 * A circuit breaker: rejects calls with `ERR_OMS_BREAKER_OPEN` while a dependency is failing, then lets
 * probes through to find out whether it recovered. With no trigger given it trips after 5 failures in a row.
 *
 * @example
 * class HttpError extends Error {
 *   constructor(readonly status: number) {
 *     super(`HTTP ${status}`);
 *   }
 * }
 * const breaker = circuitBreaker({
 *   name: 'payments',
 *   failureRate: { threshold: 0.5, minimumThroughput: 20, window: { ms: 10_000 } },
 *   slowCall: { thresholdMs: 2_000, rate: 0.8 },
 *   openMs: { initialMs: 5_000, maxMs: 60_000 },
 *   isFailure: (e) => !(e instanceof HttpError && e.status < 500), // a 4xx means the service answered
 * });
 * breaker.on('stateChange', (e) => console.warn(`breaker ${e.name}: ${e.from} -> ${e.to} (${e.reason})`));
 * const res = await breaker.execute(({ signal }) => fetch('http://payments.internal/health', { signal }));
 */
export function circuitBreaker(opts: CircuitBreakerOptions): CircuitBreaker {
  return new CircuitBreakerImpl(opts);
}
