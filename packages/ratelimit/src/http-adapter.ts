// The framework-free half of both adapters: it knows node:http requests and this package, nothing else, so
// the Fastify plugin shares it without ever loading Express.
import { clientKey } from './client-key.js';
import { invalidOption } from './errors.js';
import type { RequestLimitOptions, RequestScope } from './express/types.js';
import { policyHeader, policyItem, rateLimitHeader, retryAfterHeader } from './http-headers.js';
import { limitAll, limitAllNow, limitOneNow } from './limit-all.js';
import { Limiter } from './limiter.js';
import type { LimitAllResult, RateLimiter, RatePolicy, Scope } from './types.js';

/** What both frameworks' requests have: the connection and the headers. */
export interface PeerRequest {
  readonly socket: { readonly remoteAddress?: string | undefined };
  readonly headers: Record<string, string | readonly string[] | undefined>;
}

/**
 * One list of scopes (the adapter's, or a route's override), compiled once: what a request needs to be
 * limited by it. On memory stores it answers without a promise, and its `RateLimit-Policy` is a constant.
 */
export class ScopePlan<R extends PeerRequest> {
  readonly #scopes: readonly RequestScope<R>[];
  readonly #ipKey: (req: R) => string;
  readonly #cost: ((req: R) => number) | undefined;
  readonly #problem: Problem;
  /** Every scope on a memory store: `limit()` can decide at once. */
  readonly #sync: boolean;
  /** `RateLimit-Policy` when no scope is adaptive (it then never changes). */
  readonly #policy: string | undefined;

  constructor(scopes: readonly RequestScope<R>[], shared: Shared<R>) {
    this.#scopes = scopes;
    this.#ipKey = shared.ipKey;
    this.#cost = shared.cost;
    this.#problem = shared.problem;
    const ls = scopes.map((s) => s.limiter);
    this.#sync = ls.every((l) => l instanceof Limiter && l.store.sync);
    this.#policy = ls.every((l) => l instanceof Limiter && !l.algorithm.adaptive)
      ? staticPolicy(ls.map((l) => l.policy))
      : undefined;
  }

  /**
   * Limits `req`: the result at once when every key is a string and every scope is on a memory store, else a
   * promise of it (a key function may be async: all of a request's keys are awaited, then one `limitAll`).
   * Throws (or rejects with) what `limitAll` would reject with, and whatever a key or cost function throws;
   * nothing is charged then.
   */
  limit(req: R): LimitAllResult | Promise<LimitAllResult> {
    const cost = this.#cost === undefined ? 1 : this.#cost(req);
    const list = this.#scopes;
    if (list.length === 1) {
      const s = list[0]!;
      const key = s.key === undefined ? this.#ipKey(req) : s.key(req);
      if (isThenable(key)) return Promise.resolve(key).then((k) => this.#one(s.limiter, k, cost));
      return this.#one(s.limiter, key, cost);
    }
    const keys: (string | PromiseLike<string>)[] = new Array(list.length);
    let pending = false;
    let ip: string | undefined;
    for (let i = 0; i < list.length; i++) {
      const s = list[i]!;
      let key: string | PromiseLike<string>;
      if (s.key !== undefined) {
        key = s.key(req);
        if (isThenable(key)) pending = true;
      } else {
        // one client key per request however many scopes key by IP
        ip ??= this.#ipKey(req);
        key = ip;
      }
      keys[i] = key;
    }
    if (pending) return Promise.all(keys).then((ks) => this.#all(ks, cost));
    return this.#all(keys as string[], cost);
  }

  #one(limiter: RateLimiter, key: string, cost: number): LimitAllResult | Promise<LimitAllResult> {
    return (
      (this.#sync ? limitOneNow(limiter, key, cost) : undefined) ?? limitAll([{ limiter, key }], { cost })
    );
  }

  #all(keys: readonly string[], cost: number): LimitAllResult | Promise<LimitAllResult> {
    const list = this.#scopes;
    const scopes: Scope[] = new Array(list.length);
    for (let i = 0; i < list.length; i++) scopes[i] = { limiter: list[i]!.limiter, key: keys[i]! };
    return (this.#sync ? limitAllNow(scopes, cost) : undefined) ?? limitAll(scopes, { cost });
  }

  /** `RateLimit-Policy` for a result of this plan. */
  policyHeader(r: LimitAllResult): string {
    return this.#policy ?? policyHeader(r.decisions);
  }

  /**
   * The RFC 9457 body of a 429: it names the policy that denied (the limiter's name), never the key, which may
   * be a user id or an address.
   */
  problemBody(r: LimitAllResult, retryAfterSec: number): string {
    const scope = r.deniedBy?.name ?? 'unknown';
    const { type, code } = this.#problem;
    return JSON.stringify({
      type,
      title: 'Too Many Requests',
      status: 429,
      detail: `Rate limit "${scope}" exceeded; retry in ${retryAfterSec} s.`,
      scope,
      retryAfterSec,
      ...(code === undefined ? {} : { code }),
    });
  }
}

/** What every plan of one adapter shares. */
interface Shared<R> {
  readonly ipKey: (req: R) => string;
  readonly cost: ((req: R) => number) | undefined;
  readonly problem: Problem;
}

interface Problem {
  readonly type: string;
  readonly code?: string | undefined;
}

function problemOf(o: RequestLimitOptions<unknown>['problem']): Problem {
  if (o === undefined) return { type: 'about:blank' };
  if (o === null || typeof o !== 'object') throw invalidOption('problem must be { type?, code? }');
  for (const f of ['type', 'code'] as const) {
    if (o[f] !== undefined && (typeof o[f] !== 'string' || o[f] === '')) {
      throw invalidOption(`problem.${f} must be a non-empty string (got ${JSON.stringify(o[f])})`);
    }
  }
  return { type: o.type ?? 'about:blank', code: o.code };
}

const isThenable = (k: unknown): k is PromiseLike<string> =>
  typeof k === 'object' && k !== null && typeof (k as PromiseLike<string>).then === 'function';

/** `RateLimit-Policy` of limiters that never scale: what `policyHeader` gives for their decisions. */
function staticPolicy(policies: readonly RatePolicy[]): string {
  const seen = new Set<string>();
  const items: string[] = [];
  for (const p of policies) {
    if (seen.has(p.name)) continue;
    seen.add(p.name);
    items.push(policyItem(p.name, p.limit, p.windowSec));
  }
  return items.join(', ');
}

function check<R>(scopes: unknown, where: string): readonly RequestScope<R>[] {
  if (!Array.isArray(scopes) || scopes.length === 0) {
    throw invalidOption(`${where} must be a non-empty array of { limiter, key? }`);
  }
  scopes.forEach((s: Partial<RequestScope<R>> | null, i) => {
    if (s === null || typeof s !== 'object' || typeof s.limiter?.consume !== 'function') {
      throw invalidOption(`${where}[${i}].limiter must be a limiter made by rateLimiter()`);
    }
    if (s.key !== undefined && typeof s.key !== 'function') {
      throw invalidOption(
        `${where}[${i}].key must be a function (req) => string, or left out for the client IP`,
      );
    }
  });
  return scopes as readonly RequestScope<R>[];
}

/** The adapter's options checked once: its own plan, and the plans of routes' overrides. */
export interface CompiledLimit<R extends PeerRequest> {
  /** The plan of the adapter's own scopes. */
  readonly plan: ScopePlan<R>;
  /**
   * The plan of a route's own list of scopes, checked (saying `where` it is wrong) and compiled the first
   * time it is seen.
   */
  planOf(scopes: readonly RequestScope<R>[], where: string): ScopePlan<R>;
}

/** Checks the options once and returns what a request needs: its scopes with their keys. */
export function compileLimit<R extends PeerRequest>(o: RequestLimitOptions<R>): CompiledLimit<R> {
  if (o === null || typeof o !== 'object') throw invalidOption('the rate-limit adapter needs { scopes }');
  const scopes = check<R>(o.scopes, 'scopes');
  if (o.cost !== undefined && typeof o.cost !== 'function') {
    throw invalidOption('cost must be a function (req) => number');
  }
  const keyOpts = {
    ...(o.trustProxy === undefined ? {} : { trustProxy: o.trustProxy }),
    ...(o.ipv6Prefix === undefined ? {} : { ipv6Prefix: o.ipv6Prefix }),
  };
  // clientKey validates trustProxy and ipv6Prefix; doing it once here turns a typo into a start-up error
  clientKey({ ip: '127.0.0.1', headers: {} }, keyOpts);
  const trust = o.trustProxy ?? false;
  // With no proxy trusted the key depends on the connection alone, so a keep-alive connection computes it once.
  const bySocket = trust === false || trust === 0 ? new WeakMap<object, string>() : undefined;
  const ipKey = (req: R): string => {
    const socket = req.socket;
    // a known connection skips even remoteAddress, a getter into the socket handle
    const known = bySocket?.get(socket);
    if (known !== undefined) return known;
    const ip = socket.remoteAddress;
    const key = clientKey({ ip, headers: req.headers }, keyOpts);
    if (bySocket !== undefined && ip !== undefined) bySocket.set(socket, key);
    return key;
  };
  const shared: Shared<R> = { ipKey, cost: o.cost, problem: problemOf(o.problem) };
  const plans = new WeakMap<readonly RequestScope<R>[], ScopePlan<R>>();
  return {
    plan: new ScopePlan(scopes, shared),
    planOf(own, where) {
      let p = plans.get(own);
      if (p === undefined) {
        p = new ScopePlan(check<R>(own, where), shared);
        plans.set(own, p);
      }
      return p;
    },
  };
}

/** `RateLimit` for a result: the scope closest to its limit. */
export const rateLimitValue = (r: LimitAllResult): string => rateLimitHeader(r.decisions);

/** `Retry-After` of a denial, in whole seconds. */
export const retryAfterValue = (r: LimitAllResult): string => retryAfterHeader(r.decisions) ?? '1';

export const PROBLEM_JSON = 'application/problem+json';
