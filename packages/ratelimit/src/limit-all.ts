import { Mode, newOut, type Out } from './algorithm.js';
import { abortedError, type Deadlines, type Pending, startAbortable } from './deadlines.js';
import { invalidOption, isOmsRatelimitError, OmsRatelimitError } from './errors.js';
import { internals as I, Limiter } from './limiter.js';
import type { AllSink, AsyncStore, StoreImpl, StoreScope, SyncStore } from './store.js';
import type { Decision, LimitAllResult, RateLimiter, Scope } from './types.js';
import { costError, keyError } from './validate.js';

/**
 * Checks several scopes (global, per user, per IP, per endpoint…) as one decision: either every scope is
 * charged `cost` or none is, and `deniedBy` names the first scope that said no.
 *
 * On memory and on a single Redis it is one atomic step (one Lua script, one round trip). On Redis Cluster it
 * is one script when every key hashes to one slot (see `redisStore({ hashTag })`); otherwise each slot is
 * reserved and, on a denial, refunded: no scope ever ends up charged for a denied call, but between the
 * reservation and the refund a concurrent call may see the reserved units as taken (a spurious denial).
 *
 * Scopes may sit on different stores when one step still covers them all: any memory stores of this process
 * (so limiters built with the default store combine), or Redis stores on one ioredis client. A mix of memory
 * and Redis, or of two clients, throws `ERR_OMS_RATELIMIT_MIXED_STORES`.
 *
 * @example
 * import type { IncomingMessage, ServerResponse } from 'node:http';
 * import { clientKey, gcra, httpHeaders, limitAll, rateLimiter, tokenBucket } from '@oms/ratelimit';
 * declare const req: IncomingMessage;
 * declare const res: ServerResponse;
 * const everyone = rateLimiter({ name: 'global', algorithm: tokenBucket({ capacity: 1000, refillPerSec: 500 }) });
 * const perUser = rateLimiter({ name: 'user', algorithm: gcra({ limit: 100, periodMs: 60_000 }) });
 * const perIp = rateLimiter({ name: 'ip', algorithm: gcra({ limit: 300, periodMs: 60_000 }) });
 * const ip = clientKey({ ip: req.socket.remoteAddress, headers: req.headers }, { trustProxy: 1 });
 * const r = await limitAll([
 *   { limiter: everyone, key: 'all' },
 *   { limiter: perUser, key: String(req.headers['x-user-id'] ?? 'anonymous') },
 *   { limiter: perIp, key: ip },
 * ], { cost: 1 });
 * if (!r.allowed) res.writeHead(429, { ...httpHeaders(r.decisions) }).end();
 */
export function limitAll(
  scopes: readonly Scope[],
  opts: { cost?: number; signal?: AbortSignal } = {},
): Promise<LimitAllResult> {
  try {
    return run(scopes, opts);
  } catch (e) {
    return Promise.reject(e);
  }
}

function run(
  scopes: readonly Scope[],
  opts: { cost?: number; signal?: AbortSignal },
): Promise<LimitAllResult> {
  const cost = opts.cost ?? 1;
  // an aborted signal takes the long way, which reports bad input first and then the abort
  const one = scopes?.length === 1 && !opts.signal?.aborted ? oneNow(scopes[0]!, cost) : undefined;
  if (one !== undefined) return Promise.resolve(one);
  const c = prepare(scopes, cost);
  if (opts.signal?.aborted) throw abortedError(opts.signal);
  if (c.store.sync) return Promise.resolve(allNow(c, cost));
  const first = c.limiters[0]!;
  const call = new RemoteAll(c, cost, I.deadlines(first), opts.signal);
  const promise = new Promise<LimitAllResult>((resolve, reject) => {
    call.resolve = resolve;
    call.fail = reject;
  });
  call.start();
  (c.store as AsyncStore).applyAll(c.items, cost, call.outs, I.timeoutMs(first), call);
  return promise;
}

const noop = (): void => undefined;

/**
 * One `limitAll` on a remote store: its deadline entry (the first scope's bound), abort handling and the
 * store's answer in one object, so the call allocates no closures of its own.
 */
class RemoteAll implements Pending, AllSink {
  at = 0;
  done = false;
  resolve: (r: LimitAllResult) => void = noop;
  fail: (e: unknown) => void = noop;
  onAbort: (() => void) | undefined = undefined;
  readonly outs: Out[];

  constructor(
    readonly c: Checked,
    readonly cost: number,
    readonly deadlines: Deadlines,
    readonly signal: AbortSignal | undefined,
  ) {
    this.outs = c.items.map(newOut);
  }

  start(): void {
    startAbortable(this);
  }

  /** The bound passed (or the limiter closed) before the store answered. */
  reject(err: unknown): void {
    if (this.onAbort) this.signal!.removeEventListener('abort', this.onAbort);
    if (
      isOmsRatelimitError(err) &&
      (err.code === 'ERR_OMS_RATELIMIT_ABORTED' || err.code === 'ERR_OMS_RATELIMIT_CLOSED')
    ) {
      this.fail(err);
      return;
    }
    const { c, cost, outs } = this;
    this.resolve(result(c, outs, degradeAll(c.limiters, c.items, cost, outs, err), true));
  }

  replyAll(err: unknown, denied: number): void {
    // timed out or aborted: the policy (or the caller) already decided
    if (!this.deadlines.settle(this)) return;
    if (err !== null && err !== undefined) {
      this.reject(err);
      return;
    }
    if (this.onAbort) this.signal!.removeEventListener('abort', this.onAbort);
    this.resolve(result(this.c, this.outs, denied, false));
  }
}

/**
 * `limitAll` without the promise, for the HTTP adapters' hot path: the same checks (it throws what `limitAll`
 * rejects with) and the same all-or-nothing step, answered at once when every scope is on a memory store.
 * Undefined when a scope is on a remote store: then nothing was charged and the caller awaits `limitAll`.
 */
export function limitAllNow(scopes: readonly Scope[], cost = 1): LimitAllResult | undefined {
  if (scopes?.length === 1) {
    const one = oneNow(scopes[0]!, cost);
    if (one !== undefined) return one;
  }
  const c = prepare(scopes, cost);
  return c.store.sync ? allNow(c, cost) : undefined;
}

/** The checks every scope gets, whatever the path. */
function checkScope(limiter: unknown, key: string, cost: number): Limiter {
  if (!(limiter instanceof Limiter)) throw invalidOption('every scope needs a limiter made by rateLimiter()');
  const l = limiter;
  if (I.closed(l)) throw new OmsRatelimitError('ERR_OMS_RATELIMIT_CLOSED', `limiter ${l.name} is closed`);
  const ke = keyError(key);
  if (ke) throw ke;
  const ce = costError(cost, l.algorithm.limit);
  if (ce) throw ce;
  return l;
}

/**
 * One scope on a memory store, the common case of a plain per-IP limit: one step in COMMIT mode is the whole
 * of "check, then charge all or none", so it skips the two-phase walk (and the adapters skip the scope
 * array). It throws what `limitAll` rejects with; undefined (nothing charged) on a remote store.
 */
export function limitOneNow(limiter: RateLimiter, key: string, cost = 1): LimitAllResult | undefined {
  const l = checkScope(limiter, key, cost);
  const d = I.commitNow(l, key, cost);
  if (d === undefined) return undefined;
  if (d.allowed) return { allowed: true, decisions: [d] };
  return { allowed: false, decisions: [d], deniedBy: { index: 0, name: l.name, key } };
}

const oneNow = (sc: Scope | null, cost: number) =>
  limitOneNow(sc?.limiter as RateLimiter, sc?.key as string, cost);

interface Checked {
  readonly limiters: Limiter[];
  readonly items: StoreScope[];
  readonly limits: number[];
  /** The first scope's store: every other one can act atomically with it. */
  readonly store: StoreImpl;
}

function prepare(scopes: readonly Scope[], cost: number): Checked {
  if (!Array.isArray(scopes) || scopes.length === 0) {
    throw invalidOption('limitAll() needs a non-empty array of { limiter, key }');
  }
  const limiters: Limiter[] = [];
  const items: StoreScope[] = [];
  const limits: number[] = [];
  for (const sc of scopes) {
    const l = checkScope(sc?.limiter, sc?.key, cost);
    const first = limiters[0];
    if (first !== undefined && !first.store.atomicWith(l.store)) {
      throw new OmsRatelimitError(
        'ERR_OMS_RATELIMIT_MIXED_STORES',
        `limitAll() cannot be atomic across ${first.name} (${first.store.kind}) and ${l.name} (${l.store.kind}): ` +
          'use memory stores only, or Redis stores on one ioredis client',
      );
    }
    const p = I.params(l);
    const limit = I.quota(l, p);
    limiters.push(l);
    limits.push(limit);
    items.push({
      store: l.store,
      name: l.name,
      key: sc.key,
      alg: l.algorithm,
      // fresh per call when adaptive; otherwise the limiter's own, which never change
      p,
    });
  }
  return { limiters, items, limits, store: limiters[0]!.store };
}

/** Memory stores: the check and the charge in one synchronous step. */
function allNow(c: Checked, cost: number): LimitAllResult {
  const outs: Out[] = c.items.map(newOut);
  const store = c.store as SyncStore;
  return result(c, outs, store.applyAll(c.items, cost, I.clock(c.limiters[0]!).now(), outs), false);
}

function result(c: Checked, outs: Out[], denied: number, degraded: boolean): LimitAllResult {
  const { limiters } = c;
  const decisions: Decision[] = new Array(limiters.length);
  for (let i = 0; i < limiters.length; i++) {
    const l = limiters[i]!;
    decisions[i] = I.decision(l, outs[i]!, c.limits[i]!, degraded);
  }
  if (denied < 0) return { allowed: true, decisions };
  return {
    allowed: false,
    decisions,
    deniedBy: { index: denied, name: limiters[denied]!.name, key: c.items[denied]!.key },
  };
}

/** Store failure: every scope's own policy decides, still all or nothing on the insurance limiters. */
function degradeAll(
  limiters: Limiter[],
  items: StoreScope[],
  cost: number,
  outs: Out[],
  error: unknown,
): number {
  let denied = -1;
  for (let i = 0; i < limiters.length; i++) {
    I.degrade(limiters[i]!, error, items[i]!.key, cost, Mode.peek, outs[i]!);
    if (!outs[i]!.allowed && denied < 0) denied = i;
  }
  if (denied >= 0) return denied;
  for (let i = 0; i < limiters.length; i++) I.chargeInsurance(limiters[i]!, items[i]!.key, cost, outs[i]!);
  return -1;
}
