import type { AlgorithmImpl, Mode, Out } from '../algorithm.js';
import { invalidOption } from '../errors.js';
import type { AllSink, AsyncBinding, AsyncStore, StoreImpl, StoreScope, StoreSink } from '../store.js';
import type { RateLimitStore } from '../types.js';
import { SingleCalls } from './calls.js';
import { MultiCalls } from './multi.js';
import { profileOf } from './profile.js';
import { downError, ScriptRunner } from './script-runner.js';
import { ServerClock } from './server-clock.js';
import type { RedisLike, RedisStoreOptions } from './types.js';

export { serverTimeProbe } from './calls.js';

/** The Redis key of a scope, named by the scope's own store (limitAll may span stores on one client). */
function keyOf(sc: StoreScope): string {
  return (sc.store as unknown as RedisStoreImpl).redisKey(sc.name, sc.key);
}

class RedisStoreImpl implements AsyncStore {
  readonly kind = 'redis';
  readonly sync = false;
  readonly redis: RedisLike;
  readonly prefix: string;
  readonly #tag: ((name: string, key: string) => string) | undefined;
  readonly #single: SingleCalls;
  readonly #multi: MultiCalls;

  constructor(o: RedisStoreOptions) {
    this.redis = o.redis;
    this.prefix = o.prefix ?? 'rl:';
    this.#tag = o.hashTag;
    const runner = new ScriptRunner(o.redis, (o.redis as { isCluster?: boolean }).isCluster === true);
    const clock = new ServerClock(runner);
    this.#single = new SingleCalls(runner, clock);
    this.#multi = new MultiCalls(runner, clock, keyOf);
  }

  /**
   * Atomicity needs one server (or one cluster slot), not one store object: stores on the same ioredis client
   * (a different prefix or hashTag each) run in one script together.
   */
  atomicWith(other: StoreImpl): boolean {
    return other instanceof RedisStoreImpl && other.redis === this.redis;
  }

  redisKey(name: string, key: string): string {
    const tag = this.#tag;
    if (tag === undefined) return `${this.prefix}{${name}:${key}}`;
    return `${this.prefix}{${tag(name, key)}}${name}:${key}`;
  }

  #apply(
    name: string,
    key: string,
    alg: AlgorithmImpl,
    p: Float64Array,
    cost: number,
    mode: Mode,
    timeoutMs: number,
    sink: StoreSink,
  ): void {
    const down = downError(this.redis);
    if (down !== undefined) {
      sink.reply(down, undefined);
      return;
    }
    this.#single.add({ k: this.redisKey(name, key), prof: profileOf(alg, p), cost, mode, timeoutMs, sink });
  }

  bind(name: string, timeoutMs: number): AsyncBinding {
    return {
      apply: (key, alg, p, cost, mode, sink) => this.#apply(name, key, alg, p, cost, mode, timeoutMs, sink),
      reset: async (key) => {
        await this.redis.del(this.redisKey(name, key));
      },
    };
  }

  applyAll(scopes: readonly StoreScope[], cost: number, outs: Out[], timeoutMs: number, sink: AllSink): void {
    this.#multi.apply(scopes, cost, outs, timeoutMs, sink);
  }
}

/**
 * A store on Redis or Redis Cluster (ioredis). Each algorithm is one Lua script, run with EVALSHA (falling
 * back to EVAL on NOSCRIPT), that reads the server's `TIME`, so every instance agrees on time whatever the
 * clocks of the app hosts. Every key gets a TTL (idle keys vanish) and carries a hash tag.
 *
 * @example
 * import { Redis } from 'ioredis';
 * import { gcra, rateLimiter } from '@oms/ratelimit';
 * import { redisStore } from '@oms/ratelimit/redis';
 * const store = redisStore({ redis: new Redis(process.env.REDIS_URL!), prefix: 'rl:' });
 * const limiter = rateLimiter({ name: 'api', algorithm: gcra({ limit: 100, periodMs: 1000 }), store });
 */
export function redisStore(o: RedisStoreOptions): RateLimitStore {
  if (o === null || typeof o !== 'object') throw invalidOption('redisStore() needs { redis, prefix? }');
  const r = o.redis as Partial<RedisLike> | undefined;
  if (
    !r ||
    typeof r.evalsha !== 'function' ||
    typeof r.eval !== 'function' ||
    typeof r.script !== 'function'
  ) {
    throw invalidOption('redis must be an ioredis Redis or Cluster');
  }
  if (o.prefix !== undefined && (typeof o.prefix !== 'string' || /[{}]/.test(o.prefix))) {
    throw invalidOption('prefix must be a string without { or }');
  }
  if (o.hashTag !== undefined && typeof o.hashTag !== 'function')
    throw invalidOption('hashTag must be a function');
  return new RedisStoreImpl(o);
}
