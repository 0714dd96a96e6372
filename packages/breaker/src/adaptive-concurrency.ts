import { type CallContext, closedError, kRun, type Next, PolicyBase } from './context.js';
import { invalid, isRejection, OmsBreakerError } from './errors.js';
import { systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import type { AdaptiveConcurrency, AdaptiveConcurrencyOptions, Clock, Unsubscribe } from './types.js';
import { func, policyName, requireObject, v } from './validate.js';

interface Events {
  limitChange: { name: string; from: number; to: number };
  rejected: { name: string; limit: number };
}

class AdaptiveImpl extends PolicyBase implements AdaptiveConcurrency {
  readonly kind = 'adaptive-concurrency' as const;
  readonly name: string;
  readonly #gradient: boolean;
  readonly #min: number;
  readonly #max: number;
  readonly #isDrop: (err: unknown) => boolean;
  readonly #latencyMs: number;
  readonly #backoffRatio: number;
  readonly #tolerance: number;
  readonly #smoothing: number;
  readonly #longWindow: number;
  readonly #clock: Clock;
  readonly #ev = new Emitter<Events>();
  #limit: number;
  #inflight = 0;
  #longRtt = 0;
  #samples = 0;
  #closed = false;

  constructor(o: AdaptiveConcurrencyOptions) {
    super();
    requireObject('adaptiveConcurrency options', o);
    if (o.algorithm !== 'aimd' && o.algorithm !== 'gradient') {
      throw invalid(`algorithm must be 'aimd' or 'gradient' (got ${String(o.algorithm)})`);
    }
    this.name = o.name === undefined ? 'adaptive-concurrency' : policyName('name', o.name);
    this.#gradient = o.algorithm === 'gradient';
    this.#min = o.minLimit === undefined ? 1 : v.integer('minLimit', o.minLimit, { min: 1 });
    this.#max = o.maxLimit === undefined ? 1000 : v.integer('maxLimit', o.maxLimit, { min: 1 });
    if (this.#max < this.#min)
      throw invalid(`maxLimit must be >= minLimit (got ${this.#max} < ${this.#min})`);
    const initial =
      o.initialLimit === undefined
        ? Math.min(this.#max, Math.max(this.#min, 20))
        : v.integer('initialLimit', o.initialLimit, { min: 1 });
    if (initial < this.#min || initial > this.#max) {
      throw invalid(`initialLimit must be within [minLimit, maxLimit] (got ${initial})`);
    }
    this.#limit = initial;
    this.#isDrop = o.isDrop === undefined ? (e) => !isRejection(e) : func('isDrop', o.isDrop);
    this.#latencyMs =
      o.latencyThresholdMs === undefined
        ? Number.POSITIVE_INFINITY
        : v.positiveFinite('latencyThresholdMs', o.latencyThresholdMs);
    this.#backoffRatio =
      o.backoffRatio === undefined ? 0.9 : v.positiveFinite('backoffRatio', o.backoffRatio);
    if (this.#backoffRatio >= 1) throw invalid(`backoffRatio must be in (0, 1) (got ${this.#backoffRatio})`);
    this.#tolerance = o.tolerance === undefined ? 1.5 : v.positiveFinite('tolerance', o.tolerance);
    if (this.#tolerance < 1) throw invalid(`tolerance must be >= 1 (got ${this.#tolerance})`);
    this.#smoothing = o.smoothing === undefined ? 0.2 : v.positiveFinite('smoothing', o.smoothing);
    if (this.#smoothing > 1) throw invalid(`smoothing must be in (0, 1] (got ${this.#smoothing})`);
    this.#longWindow = o.longWindow === undefined ? 600 : v.integer('longWindow', o.longWindow, { min: 1 });
    this.#clock = v.clock(o.clock, systemClock);
  }

  /** The current limit, rounded down to whole calls. */
  get limit(): number {
    return Math.floor(this.#limit);
  }

  get inflight(): number {
    return this.#inflight;
  }

  on<K extends keyof Events>(event: K, fn: (e: Events[K]) => void): Unsubscribe {
    return this.#ev.on(event, fn as (e: Events[keyof Events]) => void);
  }

  [kRun](ctx: CallContext, next: Next): Promise<unknown> {
    if (this.#closed) return Promise.reject(closedError(`adaptiveConcurrency '${this.name}'`));
    if (this.#inflight >= Math.floor(this.#limit)) {
      const limit = Math.floor(this.#limit);
      if (this.#ev.has('rejected')) this.#ev.emit('rejected', { name: this.name, limit });
      return Promise.reject(
        new OmsBreakerError(
          'ERR_OMS_BREAKER_CONCURRENCY_LIMIT',
          `'${this.name}' is at its adaptive concurrency limit (${limit}); shed or retry later`,
          false,
        ),
      );
    }
    return this.#run(ctx, next);
  }

  async #run(ctx: CallContext, next: Next): Promise<unknown> {
    const inflight = ++this.#inflight;
    const t0 = this.#clock.now();
    try {
      const v = await next.call(ctx);
      this.#sample(this.#clock.now() - t0, inflight, false);
      return v;
    } catch (e) {
      // The caller giving up is no sign of overload: leave the limit alone.
      if (ctx.callerAborted()) throw e;
      let drop: boolean;
      try {
        drop = this.#isDrop(e) !== false;
      } catch {
        drop = true;
      }
      this.#sample(this.#clock.now() - t0, inflight, drop);
      throw e;
    } finally {
      this.#inflight--;
    }
  }

  #sample(rtt: number, inflight: number, drop: boolean): void {
    const from = this.#limit;
    let to = from;
    if (!this.#gradient) {
      // AIMD (Netflix AIMDLimit): grow by one while the limit is being used, cut by backoffRatio on a drop.
      if (drop || rtt > this.#latencyMs) to = from * this.#backoffRatio;
      else if (inflight * 2 >= from) to = from + 1;
    } else {
      // Gradient2: compare the latest RTT with a long-term average; a queue building up shows as a rising RTT.
      const r = Math.max(rtt, 0.001);
      this.#samples++;
      const n = Math.min(this.#samples, this.#longWindow);
      this.#longRtt = this.#longRtt + (r - this.#longRtt) / n;
      // Recover quickly from a long average inflated by an earlier slow period.
      if (this.#longRtt / r > 2) this.#longRtt *= 0.95;
      if (drop) {
        to = from * 0.9;
      } else if (inflight >= from / 2) {
        const gradient = Math.max(0.5, Math.min(1, (this.#tolerance * this.#longRtt) / r));
        const target = from * gradient + Math.sqrt(from);
        to = from * (1 - this.#smoothing) + target * this.#smoothing;
      }
    }
    to = Math.max(this.#min, Math.min(this.#max, to));
    if (to === from) return;
    this.#limit = to;
    if (Math.floor(to) !== Math.floor(from) && this.#ev.has('limitChange')) {
      this.#ev.emit('limitChange', { name: this.name, from: Math.floor(from), to: Math.floor(to) });
    }
  }

  override async close(): Promise<void> {
    this.#closed = true;
    this.#ev.clear();
  }
}

/**
 * A concurrency limit that finds itself, in the style of Netflix concurrency-limits: `aimd` adds one slot
 * while the limit is in use and cuts by 10% on errors or slow calls; `gradient` shrinks when latency rises
 * above its long-term average. Calls over the limit fail fast with `ERR_OMS_BREAKER_CONCURRENCY_LIMIT`.
 *
 * @example
 * declare function handle(req: Request): Promise<Response>;
 * const shed = adaptiveConcurrency({ algorithm: 'gradient', initialLimit: 20, minLimit: 4, maxLimit: 200 });
 * export const serve = (req: Request) => shed.execute(() => handle(req)); // over the limit: rejected at once
 */
export function adaptiveConcurrency(opts: AdaptiveConcurrencyOptions): AdaptiveConcurrency {
  return new AdaptiveImpl(opts);
}
