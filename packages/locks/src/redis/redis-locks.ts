import { createHash } from 'node:crypto';
import type { Attempt, AttemptRequest, AttemptResult, Backend, HeldLock } from '../backend.js';
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

/** Runs a script by its SHA; `args` are its keys (`numkeys` of them) followed by its arguments. */
async function run(
  redis: RedisLike,
  s: Script,
  numkeys: number,
  args: (string | number)[],
): Promise<unknown> {
  try {
    return await redis.evalsha(s.sha, numkeys, ...args);
  } catch (e) {
    // first use on this server (or on this Cluster node): EVAL loads the script for the next EVALSHA
    if (!isNoScript(e)) throw e;
    return redis.eval(s.source, numkeys, ...args);
  }
}

/** An acquire script's reply: the fencing token, or minus the ms until the blocking hold lapses (0: none). */
const denied = (n: number): AttemptResult => (n < 0 ? { retryAfterMs: -n } : {});

/** A granted lock: the keys and owner its extend and release name. */
class RedisHeld implements HeldLock {
  readonly #redis: RedisLike;
  readonly #lock: string;
  readonly #readers: string;
  readonly #key: string;
  readonly #mode: 'x' | 's';
  readonly #owner: string;
  readonly #channel: string;

  constructor(
    redis: RedisLike,
    keys: LockKeys,
    key: string,
    mode: 'x' | 's',
    owner: string,
    channel: string,
  ) {
    this.#redis = redis;
    this.#lock = keys.lock;
    this.#readers = keys.readers;
    this.#key = key;
    this.#mode = mode;
    this.#owner = owner;
    this.#channel = channel;
  }

  async extend(ttlMs: number): Promise<boolean> {
    const args = [this.#lock, this.#readers, this.#owner, Math.ceil(ttlMs), this.#mode];
    return (await run(this.#redis, S.extend, 2, args)) === 1;
  }

  async release(): Promise<boolean> {
    const args = [this.#lock, this.#readers, this.#owner, this.#mode, this.#channel, this.#key];
    return (await run(this.#redis, S.release, 2, args)) === 1;
  }
}

/** The keys of one lock; all share the lock's hash tag. */
interface LockKeys {
  /** The hash: holder, its expiry, the fencing counter, the readers' and intents' hints, the waiter mark. */
  readonly lock: string;
  readonly readers: string;
  readonly base: string;
}

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

  #keys(key: string): LockKeys {
    // braces inside the key would change the hash tag; hash such keys so all of them stay in one slot
    const tag = key.includes('{') || key.includes('}') ? createHash('sha1').update(key).digest('hex') : key;
    const base = `${this.#prefix}{${tag}}`;
    return { lock: base, readers: `${base}:r`, base };
  }

  attempt(req: AttemptRequest): Attempt {
    return req.fair ? this.#fairAttempt(req) : this.#preferWriters(req);
  }

  #fairAttempt({ key, mode, ttlMs, owner, waitMarkMs }: AttemptRequest): Attempt {
    const k = this.#keys(key);
    const m = mode === 'exclusive' ? 'x' : 's';
    const queue = `${k.base}:o`;
    const expiries = `${k.base}:e`;
    const ttl = Math.ceil(ttlMs);
    let queued = false;
    return {
      try: async () => {
        const args = [k.lock, k.readers, queue, expiries, owner, ttl, m, waitMarkMs];
        const n = (await run(this.#redis, S.acquireFair, 4, args)) as number;
        if (n > 0)
          return { token: BigInt(n), held: new RedisHeld(this.#redis, k, key, m, owner, this.#channel) };
        if (waitMarkMs > 0) queued = true;
        return denied(n);
      },
      cancel: async () => {
        if (queued)
          await run(this.#redis, S.cancelFair, 2, [queue, expiries, `${m}:${owner}`, this.#channel, key]);
      },
    };
  }

  #preferWriters({ key, mode, ttlMs, owner, waitMarkMs }: AttemptRequest): Attempt {
    const k = this.#keys(key);
    const m = mode === 'exclusive' ? 'x' : 's';
    const intents = `${k.base}:q`;
    const ttl = Math.ceil(ttlMs);
    // a writer whose failed try registered an intent drops it when granted ('X')
    let intent = false;
    return {
      try: async (intentMs) => {
        const args = [k.lock, k.readers, intents, owner, ttl, intent ? 'X' : m, intentMs, waitMarkMs];
        const n = (await run(this.#redis, S.acquire, 3, args)) as number;
        if (n > 0) {
          intent = false;
          return { token: BigInt(n), held: new RedisHeld(this.#redis, k, key, m, owner, this.#channel) };
        }
        if (intentMs > 0 && m === 'x') intent = true;
        return denied(n);
      },
      cancel: async () => {
        if (intent) await run(this.#redis, S.cancel, 1, [intents, owner, this.#channel, key]);
      },
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
 * Locks on Redis or Redis Cluster. Acquire (with its fencing token) is one Lua script and one round trip;
 * extend and release compare the owner; a release publishes a wake-up only when an `acquire` waits for it.
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
