import { type BreakerConfig, parseOptions, storeLink } from './breaker-options.js';
import { checkSnapshot } from './breaker-snapshot.js';
import { type Closed, closed, type HalfOpen, halfOpen, open, type State } from './breaker-state.js';
import { type CallContext, kRun, NEVER, type Next, PolicyBase } from './context.js';
import { OmsBreakerError } from './errors.js';
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
  TransitionReason,
  Unsubscribe,
} from './types.js';
import { FAILED, SLOW } from './windows.js';

/** What a lease request resolves to when the caller's signal aborted first. */
const ABORTED = 'aborted' as const;

/** A state a call can be admitted under. */
type Admitting = Closed | HalfOpen;

class CircuitBreakerImpl extends PolicyBase implements CircuitBreaker, BreakerPeer {
  readonly kind = 'circuit-breaker' as const;
  readonly name: string;
  readonly #o: BreakerConfig;
  readonly #ev = new Emitter<CircuitBreakerEvents>();
  #link: BreakerStoreLink | null = null;
  /** The one mutable state; see breaker-state.ts. */
  #s: State = closed();
  /** Take the time around a call only when a slow-call trigger or a listener wants the duration. */
  #timed: boolean;

  constructor(opts: CircuitBreakerOptions) {
    super();
    this.#o = parseOptions(opts);
    this.name = this.#o.name;
    this.#timed = this.#o.sw !== null;
    if (opts.restore !== undefined) this.restore(opts.restore);
    if (opts.store !== undefined) this.#link = storeLink(opts.store, this);
  }

  get state(): BreakerState {
    this.#tick();
    return this.#s.kind;
  }

  get isolated(): boolean {
    return this.#s.kind === 'open' && this.#s.isolated;
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
    this.#timed = this.#o.sw !== null || this.#ev.has('success') || this.#ev.has('failure');
  }

  [kRun](ctx: CallContext, next: Next): Promise<unknown> {
    const s = this.#s;
    if (s.kind === 'closed') return this.#call(ctx, next, s);
    return this.#admit(ctx, next);
  }

  async #admit(ctx: CallContext, next: Next): Promise<unknown> {
    this.#tick();
    const s = this.#s;
    if (s.kind === 'closed') return this.#call(ctx, next, s);
    if (s.kind === 'open') throw this.#reject(s.isolated ? 'isolated' : 'open');
    if (s.probes >= this.#o.maxProbes) throw this.#reject('half-open-full');
    s.probes++;
    if (this.#link !== null && s.shared && s.lease !== 'held') {
      if (s.lease === 'pending' || this.#o.clock.now() < s.leaseRetryAt) {
        s.probes--;
        throw this.#reject('probe-elsewhere');
      }
      s.lease = 'pending';
      const granted = await this.#acquireLease(this.#link, s, ctx);
      const now = this.#s;
      if (now !== s) {
        // The state moved while we asked (a remote close, say): follow it instead of probing.
        if (granted === ABORTED) throw ctx.abortReason();
        if (now.kind === 'closed') return this.#call(ctx, next, now);
        throw this.#reject(now.kind === 'open' ? 'open' : 'half-open-full');
      }
      if (granted !== true) {
        s.probes--;
        if (granted === ABORTED) throw ctx.abortReason();
        throw this.#reject('probe-elsewhere');
      }
    }
    return this.#call(ctx, next, s);
  }

  /**
   * Asks the store for the probe lease. The lease state is updated when the store answers, even if the caller
   * gave up first: a lease granted to an aborted call is used by this instance's next call. A store that
   * fails is treated like Redis being away: this instance decides alone rather than never recovering.
   */
  #acquireLease(link: BreakerStoreLink, s: HalfOpen, ctx: CallContext): Promise<boolean | typeof ABORTED> {
    const leaseMs = Number.isFinite(this.#o.maxWaitMs) ? this.#o.maxWaitMs : 30_000;
    const answered = Promise.resolve()
      .then(() => link.acquireProbe(leaseMs))
      .then(
        (g) => g === true,
        () => true,
      )
      .then((granted) => {
        if (s === this.#s) {
          s.lease = granted ? 'held' : 'none';
          if (!granted) s.leaseRetryAt = this.#o.clock.now() + Math.min(1000, leaseMs);
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

  async #call(ctx: CallContext, next: Next, s: Admitting): Promise<unknown> {
    const t0 = this.#timed ? this.#o.clock.now() : Number.NaN;
    let value: unknown;
    try {
      value = await next.call(ctx);
    } catch (e) {
      if (ctx.callerAborted()) {
        // Ignored, as Polly does: neither a success nor a failure, and a probe slot it held is freed.
        if (s.kind === 'half-open' && s === this.#s) s.probes--;
        throw e;
      }
      let failed: boolean;
      try {
        failed = this.#o.isFailure(e) !== false;
      } catch {
        failed = true;
      }
      this.#settle(s, t0, failed, e);
      throw e;
    }
    this.#settle(s, t0, false, undefined);
    return value;
  }

  /** Counts a call's outcome against the state it was admitted under, unless that state is over. */
  #settle(s: Admitting, t0: number, failed: boolean, error: unknown): void {
    let durationMs: number | undefined;
    let slow = false;
    let now = 0;
    if (!Number.isNaN(t0)) {
      now = this.#o.clock.now();
      durationMs = now - t0;
      slow = durationMs >= this.#o.slowMs;
    }
    if (failed) {
      if (this.#ev.has('failure')) {
        this.#ev.emit('failure', { name: this.name, state: s.kind, durationMs, slow, error });
      }
    } else if (this.#ev.has('success')) {
      this.#ev.emit('success', { name: this.name, state: s.kind, durationMs, slow });
    }
    if (s !== this.#s) return;
    if (s.kind === 'closed') this.#settleClosed(s, now, failed, slow);
    else this.#settleProbe(s, failed, slow);
  }

  #settleClosed(s: Closed, now: number, failed: boolean, slow: boolean): void {
    const o = this.#o;
    if (o.maxConsecutive !== 0) {
      if (!failed) s.consecutive = 0;
      else if (++s.consecutive >= o.maxConsecutive) {
        this.#toOpen('consecutive-failures');
        return;
      }
    }
    const fw = o.fw;
    const sw = o.sw;
    if (fw === null && sw === null) return;
    if (now === 0) now = o.clock.now();
    const code = (failed ? FAILED : 0) | (slow ? SLOW : 0);
    if (fw !== null) {
      fw.record(code, now);
      if (failed && fw.calls(now) >= o.minCalls && fw.failures >= o.threshold * fw.calls(now)) {
        this.#toOpen('failure-rate');
        return;
      }
    }
    if (sw !== null) {
      if (sw !== fw) sw.record(code, now);
      if (slow && sw.calls(now) >= o.slowMinCalls && sw.slow >= o.slowRate * sw.calls(now)) {
        this.#toOpen('slow-call-rate');
      }
    }
  }

  #settleProbe(s: HalfOpen, failed: boolean, slow: boolean): void {
    const o = this.#o;
    s.probes--;
    // A verdict that arrives after maxWaitMs is too late: the half-open period already ended in open.
    if (Number.isFinite(o.maxWaitMs) && o.clock.now() - s.since >= o.maxWaitMs) {
      this.#toOpen('half-open-timeout');
    } else if (failed || slow) this.#toOpen('probe-failed');
    else if (++s.successes >= o.successesToClose) this.#toClosed('probes-succeeded', true);
  }

  #reject(reason: BreakerRejectReason): OmsBreakerError {
    const s = this.#s;
    if (this.#ev.has('rejected')) this.#ev.emit('rejected', { name: this.name, state: s.kind, reason });
    const retryAfterMs =
      s.kind === 'open' && !s.isolated ? Math.max(0, s.until - this.#o.clock.now()) : undefined;
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
    const s = this.#s;
    if (s.kind === 'open') {
      if (s.isolated) return;
      const now = this.#o.clock.now();
      if (now >= s.until) this.#transition(halfOpen(s, now), 'open-elapsed');
    } else if (s.kind === 'half-open' && this.#o.clock.now() - s.since >= this.#o.maxWaitMs) {
      this.#toOpen('half-open-timeout');
    }
  }

  /**
   * Installs the next state. The one place a transition resets anything: the new state object brings its own
   * fresh data, and the outcome windows (storage kept across states) are cleared. Returns the state left.
   */
  #enter(next: State): BreakerState {
    const from = this.#s.kind;
    this.#s = next;
    this.#o.fw?.clear();
    this.#o.sw?.clear();
    return from;
  }

  #changed(from: BreakerState, reason: TransitionReason, openMs?: number): void {
    const to = this.#s.kind;
    if (this.#ev.has('stateChange') && from !== to) {
      const e = { name: this.name, from, to, reason, at: this.#o.clock.now() };
      this.#ev.emit('stateChange', openMs === undefined ? e : { ...e, openMs });
    }
  }

  #transition(next: State, reason: TransitionReason, openMs?: number): void {
    this.#changed(this.#enter(next), reason, openMs);
  }

  #openDuration(trips: number): number {
    const o = this.#o;
    if (o.openFactor === 1) return o.openInitial;
    return Math.min(o.openMax, o.openInitial * o.openFactor ** Math.max(0, trips - 1));
  }

  #toOpen(reason: TransitionReason): void {
    const trips = this.#s.trips + 1;
    const openMs = this.#openDuration(trips);
    this.#transition(open(this.#o.clock.now() + openMs, trips, false), reason, openMs);
    this.#link?.trip(openMs, trips);
  }

  #toClosed(reason: TransitionReason, notify: boolean): void {
    const wasShared = this.#s.kind !== 'closed' && this.#s.shared;
    this.#transition(closed(), reason);
    if (notify) this.#link?.closed(wasShared);
  }

  isolate(): void {
    const s = this.#s;
    if (s.kind !== 'open') this.#transition(open(Number.POSITIVE_INFINITY, s.trips, false, true), 'isolated');
    else if (!s.isolated) {
      s.isolated = true;
      s.until = Number.POSITIVE_INFINITY;
      s.shared = false;
    }
  }

  reset(): void {
    const s = this.#s;
    if (s.kind !== 'closed') {
      this.#toClosed('reset', true);
      return;
    }
    // Not a transition: calls admitted under this closed state still count.
    s.consecutive = 0;
    s.trips = 0;
    this.#o.fw?.clear();
    this.#o.sw?.clear();
  }

  stats(): { calls: number; failures: number; slow: number; consecutiveFailures: number; trips: number } {
    const o = this.#o;
    const s = this.#s;
    const w = o.fw ?? o.sw;
    return {
      calls: w?.calls(o.clock.now()) ?? 0,
      failures: o.fw?.failures ?? 0,
      slow: o.sw?.slow ?? 0,
      consecutiveFailures: s.kind === 'closed' ? s.consecutive : 0,
      trips: s.trips,
    };
  }

  // ------------------------------------------------------------------------------------ BreakerPeer

  remoteOpen(remainingMs: number, trips: number): void {
    const s = this.#s;
    if (s.kind === 'open' && s.isolated) return;
    const t = Math.max(s.trips, trips);
    const until = this.#o.clock.now() + Math.max(0, remainingMs);
    if (s.kind !== 'open') {
      this.#transition(open(until, t, true), 'remote-open', Math.max(0, remainingMs));
      return;
    }
    s.trips = t;
    s.until = until;
    s.shared = true;
  }

  remoteClose(): void {
    const s = this.#s;
    if (s.kind === 'closed' || !s.shared || (s.kind === 'open' && s.isolated)) return;
    this.#toClosed('remote-close', false);
  }

  localView(): ReturnType<BreakerPeer['localView']> {
    this.#tick();
    const s = this.#s;
    return {
      state: s.kind,
      shared: s.kind !== 'closed' && s.shared,
      openRemainingMs: s.kind === 'open' ? Math.max(0, s.until - this.#o.clock.now()) : 0,
      trips: s.trips,
      isolated: s.kind === 'open' && s.isolated,
    };
  }

  // -------------------------------------------------------------------------------- serialisation

  toJSON(): BreakerSnapshot {
    this.#tick();
    const { fw, sw } = this.#o;
    const s = this.#s;
    // A closed breaker has no open deadline: the last one is history, not state, and readers take it as live.
    const until = s.kind === 'open' ? s.until : s.kind === 'half-open' ? s.openUntil : 0;
    const snap: BreakerSnapshot = {
      v: 1,
      name: this.name,
      state: s.kind,
      isolated: s.kind === 'open' && s.isolated,
      openUntil: Number.isFinite(until) ? until : 0,
      trips: s.trips,
      consecutiveFailures: s.kind === 'closed' ? s.consecutive : 0,
    };
    if (fw !== null) snap.window = fw.snapshot();
    if (sw !== null && sw !== fw) snap.slowWindow = sw.snapshot();
    else if (sw !== null) snap.window = sw.snapshot();
    return snap;
  }

  restore(snap: BreakerSnapshot): void {
    checkSnapshot(snap, this.name);
    const { fw, sw } = this.#o;
    const isolated = snap.isolated === true;
    // Half-open is not resumed as such: its probes belonged to the old process. It reopens and lets the
    // next call probe at once.
    const next =
      snap.isolated || snap.state !== 'closed'
        ? open(
            isolated ? Number.POSITIVE_INFINITY : snap.state === 'half-open' ? 0 : snap.openUntil,
            snap.trips,
            false,
            isolated,
          )
        : closed(snap.trips, snap.consecutiveFailures);
    const from = this.#enter(next);
    if (next.kind === 'closed') {
      if (snap.window !== undefined) (fw ?? sw)?.restore(snap.window);
      if (snap.slowWindow !== undefined && sw !== null && sw !== fw) sw.restore(snap.slowWindow);
    }
    this.#changed(from, 'restored');
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
