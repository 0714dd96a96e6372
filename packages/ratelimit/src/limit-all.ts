import { COMMIT, newOut, type Out } from './algorithm.js';
import { abortedError } from './deadlines.js';
import { invalidOption, isOmsRatelimitError, OmsRatelimitError } from './errors.js';
import { Limiter } from './limiter.js';
import type { StoreScope } from './store.js';
import type { Decision, LimitAllResult, Scope, StoreErrorPolicy } from './types.js';
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
export async function limitAll(
  scopes: readonly Scope[],
  opts: { cost?: number; signal?: AbortSignal } = {},
): Promise<LimitAllResult> {
  if (!Array.isArray(scopes) || scopes.length === 0) {
    throw invalidOption('limitAll() needs a non-empty array of { limiter, key }');
  }
  const cost = opts.cost ?? 1;
  const limiters: Limiter[] = [];
  const items: StoreScope[] = [];
  const limits: number[] = [];
  for (const sc of scopes) {
    const l = sc?.limiter;
    if (!(l instanceof Limiter)) throw invalidOption('every scope needs a limiter made by rateLimiter()');
    if (l.closed) throw new OmsRatelimitError('ERR_OMS_RATELIMIT_CLOSED', `limiter ${l.name} is closed`);
    const ke = keyError(sc.key);
    if (ke) throw ke;
    const ce = costError(cost, l.algorithm.limit);
    if (ce) throw ce;
    const first = limiters[0];
    if (first !== undefined && !first.store.atomicWith(l.store)) {
      throw new OmsRatelimitError(
        'ERR_OMS_RATELIMIT_MIXED_STORES',
        `limitAll() cannot be atomic across ${first.name} (${first.store.kind}) and ${l.name} (${l.store.kind}): ` +
          'use memory stores only, or Redis stores on one ioredis client',
      );
    }
    const { p, limit } = l.params();
    limiters.push(l);
    limits.push(limit);
    items.push({
      store: l.store,
      name: l.name,
      key: sc.key,
      alg: l.algorithm,
      p: l.algorithm.adaptive ? p : p.slice(),
    });
  }
  if (opts.signal?.aborted) throw abortedError(opts.signal);
  const first = limiters[0]!;
  const store = first.store;
  const outs: Out[] = items.map(() => newOut());
  let denied: number;
  let degraded: StoreErrorPolicy | undefined;
  if (store.sync) {
    denied = store.applyAll(items, cost, first.clock.now(), outs);
  } else {
    try {
      denied = await first.runBounded(store.applyAll(items, cost, outs, first.timeoutMs), opts.signal);
    } catch (e) {
      if (
        isOmsRatelimitError(e) &&
        (e.code === 'ERR_OMS_RATELIMIT_ABORTED' || e.code === 'ERR_OMS_RATELIMIT_CLOSED')
      ) {
        throw e;
      }
      denied = degradeAll(limiters, items, cost, outs, e);
      degraded = first.onStoreError;
    }
  }
  const decisions: Decision[] = limiters.map((l, i) =>
    l.decision(outs[i]!, limits[i]!, degraded === undefined ? undefined : l.onStoreError),
  );
  if (denied < 0) return { allowed: true, decisions };
  return {
    allowed: false,
    decisions,
    deniedBy: { index: denied, name: limiters[denied]!.name, key: items[denied]!.key },
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
    limiters[i]!.degrade(error, items[i]!.key, cost, 0, outs[i]!);
    if (!outs[i]!.allowed && denied < 0) denied = i;
  }
  if (denied >= 0) return denied;
  for (let i = 0; i < limiters.length; i++) {
    const l = limiters[i]!;
    if (l.hasInsurance()) l.insurance(items[i]!.key, cost, COMMIT, outs[i]!);
  }
  return -1;
}
