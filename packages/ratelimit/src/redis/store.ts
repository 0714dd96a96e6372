import { type AlgorithmImpl, COMMIT, newOut, type Out, REFUND } from '../algorithm.js';
import { invalidOption, OmsRatelimitError } from '../errors.js';
import type { AsyncBinding, AsyncStore, StoreImpl, StoreScope } from '../store.js';
import type { RateLimitStore } from '../types.js';
import { BATCH_SCRIPT, MULTI_BATCH_SCRIPT, MULTI_SCRIPT, SCRIPTS, type Script } from './scripts.js';

const ALL_SCRIPTS: readonly Script[] = [...SCRIPTS, BATCH_SCRIPT, MULTI_BATCH_SCRIPT];

import { keySlot } from './slot.js';
import type { RedisLike, RedisStoreOptions } from './types.js';

type Raw = (number | string)[];

/**
 * Test-only: when set, sees every single-scope decision with the Redis key and the server time (µs) its script
 * read, so a test can replay the decisions in server order. Not part of the public API.
 */
export const serverTimeProbe: {
  onDecision: ((key: string, nowUs: number, cost: number, out: Out) => void) | undefined;
} = { onDecision: undefined };

/** One single-scope call waiting for the end of its tick. */
interface Call {
  readonly k: string;
  readonly code: number;
  readonly p1: number;
  readonly p2: number;
  readonly cost: number;
  readonly mode: number;
  readonly timeoutMs: number;
  readonly cb: (err: unknown, out: Out | undefined) => void;
}

/** One single-slot `limitAll` call waiting for the end of its tick. */
interface Group {
  readonly keys: string[];
  readonly args: (number | string)[];
  readonly timeoutMs: number;
  readonly resolve: (raw: Raw) => void;
  readonly reject: (e: unknown) => void;
}

/**
 * A send waiting for the store's first reading of the server clock: until then no command could carry its
 * caller's deadline in server time.
 */
interface Held {
  /** Client time (ms) after which every caller of this send has given up. */
  readonly until: number;
  readonly timeoutMs: number;
  readonly send: () => void;
  readonly fail: (e: unknown) => void;
}

// Keeps one script run short: Redis serves nobody else while it runs.
const MAX_BATCH = 256;

const unavailable = (status: string) =>
  new OmsRatelimitError(
    'ERR_OMS_RATELIMIT_STORE_UNAVAILABLE',
    `redis is not connected (status ${status})`,
    true,
  );

const STALE = new OmsRatelimitError(
  'ERR_OMS_RATELIMIT_STORE_TIMEOUT',
  'the command reached redis after its deadline and was dropped',
  true,
);

// Statuses in which a command would only wait in ioredis's offline queue: fail at once instead.
const DOWN = new Set(['reconnecting', 'close', 'end', 'disconnecting']);

/** Converts ms-unit parameters to µs for the scripts. */
function usParams(alg: AlgorithmImpl, p: Float64Array, i: number): number {
  const u = alg.units[i]!;
  return u === 0 ? p[i]! : u === 1 ? p[i]! * 1000 : p[i]! / 1000;
}

function fill(out: Out, raw: Raw, at: number): void {
  out.allowed = raw[at] === 1;
  out.remaining = raw[at + 1] as number;
  out.resetMs = raw[at + 2] as number;
  out.retryAfterMs = raw[at + 3] as number;
}

/** The Redis key of a scope, named by the scope's own store (limitAll may span stores on one client). */
function keyOf(sc: StoreScope): string {
  return (sc.store as unknown as RedisStoreImpl).redisKey(sc.name, sc.key);
}

class RedisStoreImpl implements AsyncStore {
  readonly kind = 'redis';
  readonly sync = false;
  readonly redis: RedisLike;
  readonly prefix: string;
  readonly isCluster: boolean;
  readonly #tag: ((name: string, key: string) => string) | undefined;
  /** Server time minus client time in µs, estimated from replies; NaN until the first reply. */
  #offsetUs = Number.NaN;
  #samples = 0;

  constructor(o: RedisStoreOptions) {
    this.redis = o.redis;
    this.prefix = o.prefix ?? 'rl:';
    this.isCluster = (o.redis as { isCluster?: boolean }).isCluster === true;
    this.#tag = o.hashTag;
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

  /**
   * Latest server time (µs) at which a command issued at client time `at` (ms) may still act: when its caller
   * gives up. The offset estimate errs low, so a late command is dropped early rather than charged late.
   */
  #deadline(at: number, timeoutMs: number): number {
    const off = this.#offsetUs;
    // never reached (every send waits for the clock), but a command must never go out without a deadline:
    // 1 µs has always passed, so such a command would do nothing rather than charge whenever it arrives
    if (Number.isNaN(off)) return 1;
    return (at + timeoutMs) * 1000 + off;
  }

  /** Sends waiting for the first clock reading, in issue order. */
  #held: Held[] = [];
  /** Client time (ms) the clock probe in flight was sent at; NaN when none is. */
  #probeSent = Number.NaN;

  /**
   * Holds a send until the store knows the server clock. Before the first reply the store cannot state a
   * deadline in server time, and a command sent without one could wait in ioredis's offline queue (a client
   * still connecting, a server that dies or hangs before answering) and charge whenever it finally runs, long
   * after its caller was answered. So the first send asks the server for its time with a script that touches
   * no key, and the calls issued meanwhile go out behind its reply, each with its caller's deadline.
   */
  #hold(h: Held): void {
    const now = Date.now();
    const held = this.#held;
    // callers that gave up need nothing sent: an unreachable server cannot make the list grow
    while (held.length > 0 && held[0]!.until <= now) held.shift()!.fail(STALE);
    held.push(h);
    // a probe whose reply the disconnect lost never settles (autoResendUnfulfilledCommands: false): once it is
    // older than this call's bound, send another rather than wait on it for good
    const sent = this.#probeSent;
    if (Number.isNaN(sent) || now - sent >= h.timeoutMs) this.#probe(now);
  }

  #probe(now: number): void {
    this.#probeSent = now;
    this.script(BATCH_SCRIPT, 0, []).then(
      (raw) => {
        this.#sample(raw[0] as number);
        if (this.#probeSent === now) this.#probeSent = Number.NaN;
        const held = this.#held;
        this.#held = [];
        for (const h of held) h.send();
      },
      (e: unknown) => {
        if (this.#probeSent !== now) return;
        this.#probeSent = Number.NaN;
        const held = this.#held;
        this.#held = [];
        for (const h of held) h.fail(e);
      },
    );
  }

  /** Sends `q` (calls of one tick, issued at `at`), once the server clock is known. */
  #dispatch(q: Call[], at: number): void {
    if (!Number.isNaN(this.#offsetUs)) {
      this.#sendCalls(q, at);
      return;
    }
    let t = 0;
    for (const c of q) if (c.timeoutMs > t) t = c.timeoutMs;
    this.#hold({
      until: at + t,
      timeoutMs: t,
      send: () => {
        // a call whose caller gave up while the clock was read is not sent at all
        const now = Date.now();
        const live: Call[] = [];
        for (const c of q) {
          if (at + c.timeoutMs > now) live.push(c);
          else c.cb(STALE, undefined);
        }
        if (live.length > 0) this.#sendCalls(live, at);
      },
      fail: (e) => {
        for (const c of q) c.cb(e, undefined);
      },
    });
  }

  #sample(serverUs: number): void {
    // the reply left the server before we read it, so each sample underestimates the offset by the
    // one-way latency; keep the largest recent one
    const s = serverUs - Date.now() * 1000;
    if (s > this.#offsetUs || Number.isNaN(this.#offsetUs) || ++this.#samples > 4096) {
      this.#offsetUs = s;
      this.#samples = 0;
    }
  }

  /** Set once this store has asked the server to load every script (single Redis only). */
  #preloaded = false;

  /**
   * Runs `s` with EVALSHA, falling back to EVAL on NOSCRIPT. A fallback re-sends the call after calls sent
   * behind it (on the same key too) may already have run, so before its first command a store loads every
   * script on a single Redis, in line ahead of that command: a server that knows some scripts (loaded by
   * other clients) and not others then never answers NOSCRIPT to a fresh store. After a restart or SCRIPT
   * FLUSH all in-flight calls fail alike and fall back in the order they were sent.
   */
  script(s: Script, numKeys: number, args: (number | string)[]): Promise<Raw> {
    const r = this.redis;
    const status = r.status;
    if (DOWN.has(status)) return Promise.reject(unavailable(status));
    if (!this.#preloaded) {
      this.#preloaded = true;
      // on Cluster a keyless SCRIPT LOAD reaches one node only, so there the fallback alone has to do
      if (!this.isCluster) for (const x of ALL_SCRIPTS) r.script('LOAD', x.src).catch(() => undefined);
    }
    return (r.evalsha(s.sha, numKeys, ...args) as Promise<Raw>).catch((e: unknown) => {
      // NOSCRIPT: this node has not seen the script (new node, restart, SCRIPT FLUSH): send the source once
      if (!(e instanceof Error && e.message.startsWith('NOSCRIPT'))) throw e;
      return r.eval(s.src, numKeys, ...args) as Promise<Raw>;
    });
  }

  apply1(
    name: string,
    key: string,
    alg: AlgorithmImpl,
    p: Float64Array,
    cost: number,
    mode: number,
    timeoutMs: number,
    cb: (err: unknown, out: Out | undefined) => void,
  ): void {
    const status = this.redis.status;
    if (DOWN.has(status)) {
      cb(unavailable(status), undefined);
      return;
    }
    const call: Call = {
      k: this.redisKey(name, key),
      code: alg.code,
      p1: usParams(alg, p, 0),
      p2: usParams(alg, p, 1),
      cost,
      mode,
      timeoutMs,
      cb,
    };
    // a Cluster routes by key, so only one node's calls could share a script: send each on its own there
    if (this.isCluster) {
      this.#dispatch([call], Date.now());
      return;
    }
    // A key already waiting goes in the next send, after this one: one script run reads TIME once, and calls
    // on one key at one instant would make the algorithms' float state arithmetic decide ties (a token bucket
    // would deny what separate runs a microsecond apart admit).
    if (this.#queued.has(call.k)) this.#flush();
    const q = this.#queue;
    q.push(call);
    this.#queued.add(call.k);
    // calls made in the same tick go out together when this tick's synchronous code is done: no added latency
    if (q.length === 1) queueMicrotask(this.#flush);
    else if (q.length >= MAX_BATCH) this.#flush();
  }

  #queue: Call[] = [];
  readonly #queued = new Set<string>();

  readonly #flush = (): void => {
    const q = this.#queue;
    const n = q.length;
    if (n === 0) return;
    this.#queue = [];
    this.#queued.clear();
    // the calls of one tick were issued together: their deadlines count from now
    this.#dispatch(q, Date.now());
  };

  #sendCalls(q: Call[], at: number): void {
    const n = q.length;
    if (n === 1) {
      this.#send1(q[0]!, at);
      return;
    }
    const r = this.redis;
    const status = r.status;
    if (DOWN.has(status)) {
      const e = unavailable(status);
      for (const c of q) c.cb(e, undefined);
      return;
    }
    const a: (number | string)[] = new Array(n * 7);
    for (let i = 0; i < n; i++) {
      const c = q[i]!;
      const b = n + i * 6;
      a[i] = c.k;
      a[b] = c.code;
      a[b + 1] = c.p1;
      a[b + 2] = c.p2;
      a[b + 3] = c.cost;
      a[b + 4] = c.mode;
      a[b + 5] = this.#deadline(at, c.timeoutMs);
    }
    const ok = (raw: Raw): void => {
      this.#sample(raw[0] as number);
      for (let i = 0; i < n; i++) {
        const at = 1 + i * 4;
        if (raw[at] === -1) {
          q[i]!.cb(STALE, undefined);
          continue;
        }
        const out = newOut();
        fill(out, raw, at);
        if (serverTimeProbe.onDecision !== undefined) {
          serverTimeProbe.onDecision(q[i]!.k, raw[0] as number, q[i]!.cost, out);
        }
        q[i]!.cb(null, out);
      }
    };
    const fail = (e: unknown): void => {
      for (const c of q) c.cb(e, undefined);
    };
    this.script(BATCH_SCRIPT, n, a).then(ok, fail);
  }

  #send1(c: Call, at: number): void {
    const r = this.redis;
    const status = r.status;
    if (DOWN.has(status)) {
      c.cb(unavailable(status), undefined);
      return;
    }
    const s = SCRIPTS[c.code]!;
    const { k, p1, p2, cost, mode, cb } = c;
    const dl = this.#deadline(at, c.timeoutMs);
    const done = (err: unknown, raw: Raw | undefined): void => {
      if (err) {
        cb(err, undefined);
        return;
      }
      if (raw![0] === -1) {
        cb(STALE, undefined);
        return;
      }
      this.#sample(raw![4] as number);
      const out = newOut();
      fill(out, raw!, 0);
      if (serverTimeProbe.onDecision !== undefined)
        serverTimeProbe.onDecision(k, raw![4] as number, cost, out);
      cb(null, out);
    };
    const ok = (raw: Raw) => done(null, raw);
    this.script(s, 1, [k, p1, p2, cost, mode, dl]).then(ok, (e: unknown) => done(e, undefined));
  }

  bind(name: string, timeoutMs: number): AsyncBinding {
    return {
      apply: (key, alg, p, cost, mode, cb) => this.apply1(name, key, alg, p, cost, mode, timeoutMs, cb),
      reset: async (key) => {
        await this.redis.del(this.redisKey(name, key));
      },
    };
  }

  async #multi(
    group: readonly StoreScope[],
    cost: number,
    mode: number,
    rts: number,
    timeoutMs: number,
  ): Promise<Raw> {
    const at = Date.now();
    // a refund follows a reservation's reply, so the clock is known; it must land whatever the time: it only
    // returns what a reservation took
    if (mode !== REFUND && Number.isNaN(this.#offsetUs)) {
      await new Promise<void>((resolve, reject) => {
        this.#hold({ until: at + timeoutMs, timeoutMs, send: resolve, fail: reject });
      });
      if (Date.now() >= at + timeoutMs) throw STALE;
    }
    const keys: string[] = [];
    const args: (number | string)[] = [cost, mode, mode === REFUND ? 0 : this.#deadline(at, timeoutMs), rts];
    for (const sc of group) {
      keys.push(keyOf(sc));
      args.push(sc.alg.code, usParams(sc.alg, sc.p, 0), usParams(sc.alg, sc.p, 1), usParams(sc.alg, sc.p, 2));
    }
    const raw = await this.script(MULTI_SCRIPT, keys.length, [...keys, ...args]);
    if (raw[0] === -1) throw STALE;
    this.#sample(raw[1] as number);
    return raw;
  }

  #groups: Group[] = [];
  readonly #groupKeys = new Set<string>();

  /** Resolves to {deniedIndex, then (ok remaining resetMs retryMs) per scope}, sent with the tick's other calls. */
  #enqueueGroup(scopes: readonly StoreScope[], cost: number, timeoutMs: number): Promise<Raw> {
    const status = this.redis.status;
    if (DOWN.has(status)) return Promise.reject(unavailable(status));
    const keys: string[] = new Array(scopes.length);
    const args: (number | string)[] = [scopes.length, cost, COMMIT, 0, 0];
    let repeat = false;
    for (let i = 0; i < scopes.length; i++) {
      const sc = scopes[i]!;
      const k = keyOf(sc);
      keys[i] = k;
      if (this.#groupKeys.has(k)) repeat = true;
      args.push(sc.alg.code, usParams(sc.alg, sc.p, 0), usParams(sc.alg, sc.p, 1), usParams(sc.alg, sc.p, 2));
    }
    // as with single calls: a key already waiting goes in the next run, which reads TIME afresh
    if (repeat) this.#flushGroups();
    return new Promise<Raw>((resolve, reject) => {
      const q = this.#groups;
      q.push({ keys, args, timeoutMs, resolve, reject });
      for (const k of keys) this.#groupKeys.add(k);
      if (q.length === 1) queueMicrotask(this.#flushGroups);
      else if (q.length >= MAX_BATCH / 4) this.#flushGroups();
    });
  }

  readonly #flushGroups = (): void => {
    const q = this.#groups;
    const n = q.length;
    if (n === 0) return;
    this.#groups = [];
    this.#groupKeys.clear();
    const at = Date.now();
    if (!Number.isNaN(this.#offsetUs)) {
      this.#sendGroups(q, at);
      return;
    }
    let t = 0;
    for (const g of q) if (g.timeoutMs > t) t = g.timeoutMs;
    this.#hold({
      until: at + t,
      timeoutMs: t,
      send: () => {
        const now = Date.now();
        const live: Group[] = [];
        for (const g of q) {
          if (at + g.timeoutMs > now) live.push(g);
          else g.reject(STALE);
        }
        if (live.length > 0) this.#sendGroups(live, at);
      },
      fail: (e) => {
        for (const g of q) g.reject(e);
      },
    });
  };

  #sendGroups(q: Group[], at: number): void {
    const n = q.length;
    const r = this.redis;
    const status = r.status;
    if (DOWN.has(status)) {
      const e = unavailable(status);
      for (const g of q) g.reject(e);
      return;
    }
    const keys: string[] = [];
    const args: (number | string)[] = [n];
    for (const g of q) {
      g.args[3] = this.#deadline(at, g.timeoutMs);
      for (const k of g.keys) keys.push(k);
      for (const a of g.args) args.push(a);
    }
    const ok = (raw: Raw): void => {
      this.#sample(raw[0] as number);
      let at = 1;
      for (const g of q) {
        const len = 1 + g.keys.length * 4;
        if (raw[at] === -1) g.reject(STALE);
        else g.resolve(raw.slice(at, at + len));
        at += len;
      }
    };
    const fail = (e: unknown): void => {
      for (const g of q) g.reject(e);
    };
    this.script(MULTI_BATCH_SCRIPT, keys.length, [...keys, ...args]).then(ok, fail);
  }

  async applyAll(
    scopes: readonly StoreScope[],
    cost: number,
    outs: Out[],
    timeoutMs: number,
  ): Promise<number> {
    // on one node every key is local, so one script covers them all whatever their slots
    const groups = new Map<number, number[]>();
    if (this.isCluster) {
      scopes.forEach((sc, i) => {
        const slot = keySlot(keyOf(sc));
        const g = groups.get(slot);
        if (g) g.push(i);
        else groups.set(slot, [i]);
      });
    }
    if (groups.size <= 1) {
      if (this.isCluster) {
        const raw = await this.#multi(scopes, cost, COMMIT, 0, timeoutMs);
        scopes.forEach((_, i) => {
          fill(outs[i]!, raw, 2 + i * 4);
        });
        return (raw[0] as number) - 1;
      }
      const raw = await this.#enqueueGroup(scopes, cost, timeoutMs);
      scopes.forEach((_, i) => {
        fill(outs[i]!, raw, 1 + i * 4);
      });
      return (raw[0] as number) - 1;
    }
    // keys span slots: reserve in each slot (atomic per slot), refund every reservation if any slot denied
    const list = [...groups.values()];
    const settled = await Promise.allSettled(
      list.map((idx) =>
        this.#multi(
          idx.map((i) => scopes[i]!),
          cost,
          COMMIT,
          0,
          timeoutMs,
        ),
      ),
    );
    let denied = -1;
    let failure: unknown;
    const refunds: Promise<unknown>[] = [];
    settled.forEach((s, gi) => {
      const idx = list[gi]!;
      if (s.status === 'rejected') {
        failure ??= s.reason;
        return;
      }
      const raw = s.value;
      idx.forEach((i, j) => {
        fill(outs[i]!, raw, 2 + j * 4);
      });
      if (raw[0] !== 0) {
        const i = idx[(raw[0] as number) - 1]!;
        if (denied < 0 || i < denied) denied = i;
      }
    });
    if (denied >= 0 || failure !== undefined) {
      settled.forEach((s, gi) => {
        if (s.status !== 'fulfilled' || s.value[0] !== 0) return;
        const idx = list[gi]!;
        const group = idx.map((i) => scopes[i]!);
        refunds.push(
          this.#multi(group, cost, REFUND, s.value[1] as number, timeoutMs).then(
            () => {
              // report what each scope has now the reservation is returned
              for (const i of idx)
                outs[i]!.remaining = Math.min(outs[i]!.remaining + cost, scopes[i]!.alg.limit);
            },
            () => undefined,
          ),
        );
      });
      await Promise.all(refunds);
      if (failure !== undefined) throw failure;
    }
    return denied;
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
