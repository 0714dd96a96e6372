import { type CallContext, closedError, kRun, type Next, PolicyBase } from './context.js';
import { OmsBreakerError } from './errors.js';
import { systemClock } from './internal/clock.js';
import { Emitter } from './internal/emitter.js';
import type { Bulkhead, BulkheadOptions, Clock, Unsubscribe } from './types.js';
import { policyName, requireObject, v } from './validate.js';

interface Waiter {
  grant(): void;
  fail(err: unknown): void;
}

class BulkheadImpl extends PolicyBase implements Bulkhead {
  readonly kind = 'bulkhead' as const;
  readonly name: string;
  readonly #max: number;
  readonly #maxQueue: number;
  readonly #queueTimeoutMs: number | undefined;
  readonly #clock: Clock;
  readonly #queue: Waiter[] = [];
  readonly #ev = new Emitter<{ rejected: { name: string; reason: 'full' | 'queue-timeout' } }>();
  #active = 0;
  #closed = false;

  constructor(o: BulkheadOptions) {
    super();
    requireObject('bulkhead options', o);
    this.name = o.name === undefined ? 'bulkhead' : policyName('name', o.name);
    this.#max = v.integer('maxConcurrent', o.maxConcurrent, { min: 1 });
    this.#maxQueue = o.maxQueue === undefined ? 0 : v.integer('maxQueue', o.maxQueue);
    this.#queueTimeoutMs =
      o.queueTimeoutMs === undefined ? undefined : v.durationMs('queueTimeoutMs', o.queueTimeoutMs);
    this.#clock = v.clock(o.clock, systemClock);
  }

  get active(): number {
    return this.#active;
  }

  get queued(): number {
    return this.#queue.length;
  }

  on(event: 'rejected', fn: (e: { name: string; reason: 'full' | 'queue-timeout' }) => void): Unsubscribe {
    return this.#ev.on(event, fn);
  }

  #full(reason: 'full' | 'queue-timeout'): OmsBreakerError {
    if (this.#ev.has('rejected')) this.#ev.emit('rejected', { name: this.name, reason });
    return new OmsBreakerError(
      'ERR_OMS_BREAKER_BULKHEAD_FULL',
      reason === 'full'
        ? `bulkhead '${this.name}' is full (${this.#max} running, ${this.#maxQueue} queued)`
        : `bulkhead '${this.name}': no slot freed within ${this.#queueTimeoutMs} ms`,
      false,
    );
  }

  [kRun](ctx: CallContext, next: Next): Promise<unknown> {
    if (this.#closed) return Promise.reject(closedError(`bulkhead '${this.name}'`));
    if (this.#active < this.#max) {
      this.#active++;
      return this.#run(ctx, next);
    }
    if (this.#queue.length >= this.#maxQueue) return Promise.reject(this.#full('full'));
    return this.#wait(ctx).then(() => this.#run(ctx, next));
  }

  async #run(ctx: CallContext, next: Next): Promise<unknown> {
    try {
      return await next.call(ctx);
    } finally {
      this.#release();
    }
  }

  #release(): void {
    const w = this.#queue.shift();
    // Hand the slot straight to the next waiter so a newcomer cannot overtake the queue.
    if (w !== undefined) w.grant();
    else this.#active--;
  }

  #wait(ctx: CallContext): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const signal = ctx.signal;
      if (signal.aborted) return reject(signal.reason);
      let timer: unknown;
      const leave = () => {
        const i = this.#queue.indexOf(w);
        if (i >= 0) this.#queue.splice(i, 1);
        if (timer !== undefined) this.#clock.clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      const w: Waiter = {
        grant: () => {
          leave();
          resolve();
        },
        fail: (err) => {
          leave();
          reject(err);
        },
      };
      const onAbort = () => w.fail(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      if (this.#queueTimeoutMs !== undefined) {
        timer = this.#clock.setTimeout(() => w.fail(this.#full('queue-timeout')), this.#queueTimeoutMs);
      }
      this.#queue.push(w);
    });
  }

  override async close(): Promise<void> {
    this.#closed = true;
    const err = closedError(`bulkhead '${this.name}'`);
    for (const w of [...this.#queue]) w.fail(err);
    this.#ev.clear();
  }
}

/**
 * Caps concurrent calls at `maxConcurrent`, queues up to `maxQueue` more (FIFO, each for at most
 * `queueTimeoutMs`) and rejects the rest with `ERR_OMS_BREAKER_BULKHEAD_FULL`, so one slow dependency cannot
 * take every socket or worker.
 *
 * @example
 * declare const db: { query(sql: string): Promise<unknown[]> };
 * const b = bulkhead({ maxConcurrent: 16, maxQueue: 64, queueTimeoutMs: 250 });
 * const rows = await b.execute(() => db.query('select 1'));
 */
export function bulkhead(opts: BulkheadOptions): Bulkhead {
  return new BulkheadImpl(opts);
}
