import { createHash } from 'node:crypto';
import type { Attempt, AttemptRequest, Backend, HeldLock } from '../backend.js';
import { LocksCore } from '../core.js';
import { OmsLocksError } from '../errors.js';
import type { Locks } from '../types.js';
import { checkPrefix } from '../validate.js';
import {
  ACQUIRE,
  ACQUIRE_FAIR,
  CANCEL,
  CANCEL_FAIR,
  EXTEND,
  RELEASE,
  type Script,
  script,
} from './scripts.js';
import type { RedisLike, RedisLocksOptions, RedisSubscriberLike } from './types.js';

const S = {
  acquire: script(ACQUIRE),
  acquireFair: script(ACQUIRE_FAIR),
  cancelFair: script(CANCEL_FAIR),
  extend: script(EXTEND),
  release: script(RELEASE),
  cancel: script(CANCEL),
};

const isNoScript = (e: unknown) => e instanceof Error && e.message.startsWith('NOSCRIPT');

class RedisBackend implements Backend {
  readonly name = 'redis';
  readonly fair = true;
  readonly #redis: RedisLike;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #given: RedisSubscriberLike | undefined;
  #sub: RedisSubscriberLike | undefined;
  #subscribed: Promise<void> | undefined;
  #onMessage: ((channel: string, message: string) => void) | undefined;
  #live = false;

  constructor(redis: RedisLike, prefix: string, subscriber: RedisSubscriberLike | undefined) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#channel = `${prefix}wake`;
    this.#given = subscriber;
  }

  async #run(s: Script, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await this.#redis.evalsha(s.sha, keys.length, ...keys, ...args);
    } catch (e) {
      // first use on this server (or on this Cluster node): EVAL loads the script for the next EVALSHA
      if (!isNoScript(e)) throw e;
      return this.#redis.eval(s.source, keys.length, ...keys, ...args);
    }
  }

  #keys(key: string) {
    // braces inside the key would change the hash tag; hash such keys so all of them stay in one slot
    const tag = /[{}]/.test(key) ? createHash('sha1').update(key).digest('hex') : key;
    const base = `${this.#prefix}{${tag}}`;
    return {
      w: `${base}:w`,
      r: `${base}:r`,
      f: `${base}:f`,
      q: `${base}:q`,
      n: `${base}:n`,
      /** The fair queue (places) and when each place lapses. */
      o: `${base}:o`,
      e: `${base}:e`,
    };
  }

  attempt(req: AttemptRequest): Attempt {
    return req.fair ? this.#fairAttempt(req) : this.#preferWriters(req);
  }

  #fairAttempt({ key, mode, ttlMs, owner, waitMarkMs }: AttemptRequest): Attempt {
    const k = this.#keys(key);
    const m = mode === 'exclusive' ? 'x' : 's';
    let queued = false;
    return {
      try: async () => {
        const [ok, n] = (await this.#run(
          S.acquireFair,
          [k.w, k.r, k.f, k.o, k.e, k.n],
          [owner, Math.ceil(ttlMs), m, waitMarkMs],
        )) as [number, number];
        if (ok === 1) return { token: BigInt(n), held: this.#held(k, key, m, owner) };
        if (waitMarkMs > 0) queued = true;
        return n > 0 ? { retryAfterMs: n } : {};
      },
      cancel: async () => {
        if (queued) await this.#run(S.cancelFair, [k.o, k.e], [`${m}:${owner}`, this.#channel, key]);
      },
    };
  }

  #preferWriters({ key, mode, ttlMs, owner, waitMarkMs }: AttemptRequest): Attempt {
    const k = this.#keys(key);
    const m = mode === 'exclusive' ? 'x' : 's';
    let intent = false;
    return {
      try: async (intentMs) => {
        const [ok, n] = (await this.#run(
          S.acquire,
          [k.w, k.r, k.f, k.q, k.n],
          [owner, Math.ceil(ttlMs), m, intentMs, waitMarkMs],
        )) as [number, number];
        if (ok === 1) return { token: BigInt(n), held: this.#held(k, key, m, owner) };
        if (intentMs > 0) intent = true;
        return n > 0 ? { retryAfterMs: n } : {};
      },
      cancel: async () => {
        if (intent) await this.#run(S.cancel, [k.q], [owner, this.#channel, key]);
      },
    };
  }

  #held(k: { w: string; r: string; n: string }, key: string, m: 'x' | 's', owner: string): HeldLock {
    return {
      extend: async (ttlMs) => (await this.#run(S.extend, [k.w, k.r], [owner, Math.ceil(ttlMs), m])) === 1,
      release: async () =>
        (await this.#run(S.release, [k.w, k.r, k.n], [owner, m, this.#channel, key])) === 1,
    };
  }

  get listening(): boolean {
    return this.#live;
  }

  async listen(wake: (key: string) => void): Promise<void> {
    if (!this.#sub) {
      const sub = this.#given ?? this.#redis.duplicate?.();
      if (!sub) {
        throw new OmsLocksError(
          'ERR_OMS_LOCKS_INVALID_OPTION',
          'redisLocks needs `subscriber`, or a `redis` client with duplicate(), for wake-ups',
        );
      }
      this.#sub = sub;
      this.#onMessage = (channel, message) => {
        if (channel === this.#channel) wake(message);
      };
      sub.on('message', this.#onMessage);
      // a duplicated client is ours, and an unhandled 'error' event would crash the process
      if (!this.#given) sub.on('error', () => {});
    }
    // ioredis re-subscribes by itself after a reconnect, so one successful SUBSCRIBE lasts
    this.#subscribed ??= this.#sub.subscribe(this.#channel).then(
      () => {
        this.#live = this.#sub !== undefined;
      },
      (e) => {
        this.#subscribed = undefined;
        throw e;
      },
    );
    return this.#subscribed;
  }

  async close(): Promise<void> {
    const sub = this.#sub;
    this.#sub = undefined;
    this.#subscribed = undefined;
    this.#live = false;
    if (!sub) return;
    if (this.#onMessage) sub.removeListener('message', this.#onMessage);
    if (this.#given) {
      await sub.unsubscribe(this.#channel).catch(() => {});
    } else {
      await sub.quit?.().catch(() => {});
    }
  }
}

/**
 * Locks on Redis or Redis Cluster. Acquire (with the fencing `INCR`) is one Lua script and one round trip;
 * extend and release compare the owner; release publishes a wake-up that waiting `acquire`s listen to.
 *
 * @example
 * import { Redis } from 'ioredis';
 * import pg from 'pg';
 * import { redisLocks } from '@oms/locks/redis';
 * declare const db: pg.Pool;
 * const locks = redisLocks({ redis: new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'), prefix: 'orders:locks:' });
 * await locks.withLock('invoice:42', async (lease) => {
 *   await db.query('update invoices set fence = $1, total = $2 where id = 42 and fence < $1', [lease.fencingToken, 99]);
 * });
 */
export function redisLocks(opts: RedisLocksOptions): Locks {
  const redis = opts?.redis;
  if (!redis || typeof redis.evalsha !== 'function' || typeof redis.eval !== 'function') {
    throw new OmsLocksError(
      'ERR_OMS_LOCKS_INVALID_OPTION',
      'redisLocks needs `redis`: an ioredis Redis or Cluster',
    );
  }
  const prefix = opts.prefix ?? 'oms:locks:';
  checkPrefix('prefix', prefix);
  return new LocksCore(new RedisBackend(redis, prefix, opts.subscriber), opts);
}
