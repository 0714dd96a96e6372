import { randomUUID } from 'node:crypto';
import { invalid } from '../errors.js';
import { backgroundTimeout, systemClock } from '../internal/clock.js';
import { Emitter } from '../internal/emitter.js';
import type { BreakerPeer, BreakerStore, BreakerStoreLink, Unsubscribe } from '../types.js';
import { isObject, requireObject, v } from '../validate.js';
import { CLOSE, PROBE, READ, sha1, TRIP } from './scripts.js';
import type {
  RedisBreakerStoreEvents,
  RedisBreakerStoreOptions,
  RedisScriptClient,
  RedisSubscriber,
  StoreMode,
} from './types.js';

/**
 * A breaker store shared through Redis. Also a `BreakerStore` to pass as `circuitBreaker({ store })`.
 *
 * @example
 * import type { Redis } from 'ioredis';
 * import { type RedisBreakerStore, redisBreakerStore } from '@oms/breaker/redis';
 * declare const redis: Redis;
 * const store: RedisBreakerStore = redisBreakerStore({ redis, prefix: 'svc:cb:' });
 * await store.ready(AbortSignal.timeout(2_000)).catch(() => console.warn('breakers start in local mode'));
 * // on shutdown
 * await store.close();
 */
export interface RedisBreakerStore extends BreakerStore {
  /** `shared` while Redis answers; `local` while it does not (each breaker then decides alone). */
  readonly mode: StoreMode;
  /** This process's id in probe leases and trip votes. */
  readonly instanceId: string;
  /**
   * Resolves once shared state is live: the pub/sub subscription is up (trips elsewhere reach this instance),
   * the command connection answers (trips here are published) and `mode` is `shared`. While Redis is
   * unreachable that can take until it is back (breakers work locally meanwhile): pass a signal to bound it.
   */
  ready(signal?: AbortSignal): Promise<void>;
  /** Reconciles every attached breaker with Redis now (it also happens every `syncIntervalMs`). */
  sync(): Promise<void>;
  on<K extends keyof RedisBreakerStoreEvents>(
    event: K,
    fn: (e: RedisBreakerStoreEvents[K]) => void,
  ): Unsubscribe;
  /** Stops the sync timer, unsubscribes and closes the subscriber connection if the store created it. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

const SCRIPTS = { TRIP, PROBE, CLOSE, READ } as const;
type ScriptName = keyof typeof SCRIPTS;
const SHAS = Object.fromEntries(Object.entries(SCRIPTS).map(([k, v]) => [k, sha1(v)])) as Record<
  ScriptName,
  string
>;

class Timeout extends Error {}

class RedisBreakerStoreImpl implements RedisBreakerStore {
  readonly instanceId = randomUUID();
  readonly #redis: RedisScriptClient;
  readonly #sub: RedisSubscriber;
  readonly #ownSub: boolean;
  readonly #prefix: string;
  readonly #channel: string;
  readonly #quorum: number;
  readonly #cmdTimeoutMs: number;
  readonly #syncMs: number;
  readonly #keyTtlMs: number;
  readonly #peers = new Map<string, Set<BreakerPeer>>();
  readonly #ev = new Emitter<RedisBreakerStoreEvents>();
  /** Pub/sub messages received per attached breaker name, so a read that raced a push can tell it is stale. */
  readonly #pushes = new Map<string, number>();
  #mode: StoreMode = 'shared';
  #timer: unknown;
  #ready: Promise<void>;
  /** True once `ready()` has resolved: subscribed, and the command connection answers. */
  #live = false;
  readonly #since = Date.now();
  #closed = false;
  #syncing: Promise<void> | undefined;

  constructor(o: RedisBreakerStoreOptions) {
    requireObject('redisBreakerStore options', o);
    if (!isObject(o.redis) || typeof o.redis.evalsha !== 'function' || typeof o.redis.eval !== 'function') {
      throw invalid('redis must be an ioredis Redis or Cluster client (it needs evalsha and eval)');
    }
    if (typeof o.prefix !== 'string') throw invalid(`prefix must be a string (got ${typeof o.prefix})`);
    this.#redis = o.redis;
    this.#prefix = o.prefix;
    this.#channel = `${o.prefix}breaker:events`;
    this.#quorum = o.tripQuorum === undefined ? 1 : v.integer('tripQuorum', o.tripQuorum, { min: 1 });
    this.#cmdTimeoutMs =
      o.commandTimeoutMs === undefined ? 500 : v.positiveFinite('commandTimeoutMs', o.commandTimeoutMs);
    this.#syncMs =
      o.syncIntervalMs === undefined ? 1000 : v.positiveFinite('syncIntervalMs', o.syncIntervalMs);
    this.#keyTtlMs = o.keyTtlMs === undefined ? 3_600_000 : v.positiveFinite('keyTtlMs', o.keyTtlMs);
    if (o.subscriber !== undefined) {
      if (!isObject(o.subscriber) || typeof o.subscriber.subscribe !== 'function') {
        throw invalid('subscriber must be an ioredis connection it can put in subscriber mode');
      }
      this.#sub = o.subscriber;
      this.#ownSub = false;
    } else {
      if (typeof o.redis.duplicate !== 'function') {
        throw invalid(
          'pass subscriber: a dedicated connection for pub/sub, or a redis client with duplicate()',
        );
      }
      this.#sub = o.redis.duplicate() as RedisSubscriber;
      this.#ownSub = true;
      // Errors on a connection we created are ours to observe; the mode change reports the outage.
      this.#sub.on('error', this.#ignore);
    }
    this.#sub.on('message', this.#onMessage);
    this.#sub.on('ready', this.#onReconnect);
    this.#ready = this.#start();
    this.#scheduleSync();
  }

  /** The periodic reconcile is background work: its timer never holds the process open. */
  #scheduleSync(): void {
    if (this.#closed) return;
    this.#timer = backgroundTimeout(
      systemClock,
      () => void this.sync().finally(() => this.#scheduleSync()),
      this.#syncMs,
    );
  }

  readonly #ignore = (): void => {};

  get mode(): StoreMode {
    return this.#mode;
  }

  ready(signal?: AbortSignal): Promise<void> {
    if (signal === undefined) return this.#ready;
    if (signal.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      void this.#ready.then(() => {
        signal.removeEventListener('abort', onAbort);
        resolve();
      });
    });
  }

  on<K extends keyof RedisBreakerStoreEvents>(
    event: K,
    fn: (e: RedisBreakerStoreEvents[K]) => void,
  ): Unsubscribe {
    return this.#ev.on(event, fn);
  }

  /**
   * Subscribes, then checks that the command connection answers too, so that once `ready()` resolves a trip
   * here is published and a trip elsewhere arrives. A connection still being established (ioredis with
   * `enableOfflineQueue: false` fails commands at once until then) is not an outage: only a Redis that stays
   * unreachable for `commandTimeoutMs` switches the store to local mode. Keeps trying, so a store created
   * while Redis is down still joins once it is back.
   */
  async #start(): Promise<void> {
    let pauseMs = 10;
    while (!this.#closed) {
      try {
        await this.#bounded(Promise.resolve(this.#sub.subscribe(this.#channel)), this.#cmdTimeoutMs * 4);
        await this.#run('READ', '_', []);
        // An outage noticed meanwhile ends only with a resync (the same path as any recovery).
        if (this.#mode === 'local') await this.sync();
        if (this.#mode === 'shared') {
          this.#live = true;
          return;
        }
      } catch (e) {
        this.#down(e);
      }
      await this.#pause(pauseMs);
      pauseMs = Math.min(pauseMs * 2, this.#syncMs, 500);
    }
  }

  /** Waits `ms`, or less if the subscriber connection comes up. Ref'd: `ready()` awaits it. */
  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        systemClock.clearTimeout(handle);
        this.#sub.removeListener('ready', done);
        resolve();
      };
      const handle = systemClock.setTimeout(done, ms);
      this.#sub.on('ready', done);
    });
  }

  readonly #onReconnect = (): void => {
    // ioredis resubscribes by itself; what we may have missed meanwhile comes from a sync.
    if (!this.#closed) void this.sync();
  };

  readonly #onMessage = (channel: string, raw: string): void => {
    if (channel !== this.#channel) return;
    let m: { t?: unknown; n?: unknown; r?: unknown; k?: unknown };
    try {
      m = JSON.parse(raw);
    } catch {
      return;
    }
    const peers = typeof m.n === 'string' ? this.#peers.get(m.n) : undefined;
    if (peers === undefined) return;
    this.#pushes.set(m.n as string, (this.#pushes.get(m.n as string) ?? 0) + 1);
    for (const p of peers) {
      if (m.t === 'open' && typeof m.r === 'number') p.remoteOpen(m.r, typeof m.k === 'number' ? m.k : 0);
      else if (m.t === 'close') p.remoteClose();
    }
  };

  #bounded<T>(p: Promise<T>, ms = this.#cmdTimeoutMs): Promise<T> {
    p.catch(this.#ignore);
    // Ref'd: callers await this bound (a half-open probe admission, ready()); it is cleared as soon as
    // Redis answers.
    let timer: unknown;
    return Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = systemClock.setTimeout(() => reject(new Timeout(`redis did not answer within ${ms} ms`)), ms);
      }),
    ]).finally(() => systemClock.clearTimeout(timer));
  }

  async #run(script: ScriptName, name: string, args: (string | number)[]): Promise<unknown> {
    const base = `${this.#prefix}{${name}}`;
    const keys = [base, `${base}:probe`, `${base}:votes`];
    const call = async () => {
      try {
        return await this.#redis.evalsha(SHAS[script], 3, ...keys, ...args);
      } catch (e) {
        if (!String((e as Error)?.message).includes('NOSCRIPT')) throw e;
        return await this.#redis.eval(SCRIPTS[script], 3, ...keys, ...args);
      }
    };
    return this.#bounded(call());
  }

  #down(error: unknown): void {
    if (this.#mode === 'local' || this.#closed) return;
    // Before the first success, a failure within commandTimeoutMs of creation is a connection still coming up.
    if (!this.#live && Date.now() - this.#since < this.#cmdTimeoutMs) return;
    this.#mode = 'local';
    this.#ev.emit('modeChange', { mode: 'local', error });
  }

  attach(peer: BreakerPeer): BreakerStoreLink {
    if (this.#closed) throw invalid('this redisBreakerStore was closed');
    const set = this.#peers.get(peer.name) ?? new Set<BreakerPeer>();
    this.#peers.set(peer.name, set);
    set.add(peer);
    void this.#ready.then(() => this.#syncOne(peer)).catch(this.#ignore);
    const store = this;
    let attached = true;
    return {
      trip(openMs, trips) {
        if (attached) void store.#started().then(() => store.#trip(peer, openMs, trips));
      },
      acquireProbe(leaseMs) {
        return attached ? store.#acquire(peer, leaseMs) : Promise.resolve(true);
      },
      closed(shared) {
        if (attached) void store.#started().then(() => store.#close(peer, shared));
      },
      detach() {
        if (!attached) return;
        attached = false;
        set.delete(peer);
        if (set.size === 0 && store.#peers.get(peer.name) === set) {
          store.#peers.delete(peer.name);
          store.#pushes.delete(peer.name);
        }
      },
    };
  }

  /** A trip or close right after start waits (bounded) for the connections, rather than failing into local mode. */
  async #started(): Promise<void> {
    if (!this.#live) await this.#bounded(this.#ready).catch(this.#ignore);
  }

  async #trip(peer: BreakerPeer, openMs: number, trips: number): Promise<void> {
    if (this.#mode === 'local') return;
    try {
      const r = (await this.#run('TRIP', peer.name, [
        Math.max(1, Math.ceil(openMs)),
        trips,
        this.instanceId,
        this.#quorum,
        this.#channel,
        peer.name,
        Math.ceil(this.#keyTtlMs),
      ])) as number[];
      if (r[0] === 1) peer.remoteOpen(r[1]!, r[2]!);
    } catch (e) {
      this.#down(e);
    }
  }

  async #acquire(peer: BreakerPeer, leaseMs: number): Promise<boolean> {
    // Local mode: nobody can coordinate, so each instance probes for itself rather than never recovering.
    if (this.#mode === 'local') return true;
    const seen = this.#pushes.get(peer.name) ?? 0;
    try {
      const r = (await this.#run('PROBE', peer.name, [
        this.instanceId,
        Math.max(1, Math.ceil(leaseMs)),
      ])) as number[];
      if (r[0] === 1) return true;
      // A push that arrived while we asked is newer than the answer: let it decide.
      if ((this.#pushes.get(peer.name) ?? 0) !== seen) return false;
      if (r[0] === -1) peer.remoteClose();
      else if (r[0] === -2) peer.remoteOpen(r[1]!, r[2]!);
      return false;
    } catch (e) {
      this.#down(e);
      return true;
    }
  }

  async #close(peer: BreakerPeer, shared: boolean): Promise<void> {
    if (this.#mode === 'local') return;
    try {
      await this.#run('CLOSE', peer.name, [this.instanceId, this.#channel, peer.name, shared ? '1' : '0']);
    } catch (e) {
      this.#down(e);
    }
  }

  async #syncOne(peer: BreakerPeer): Promise<void> {
    const seen = this.#pushes.get(peer.name) ?? 0;
    const r = (await this.#run('READ', peer.name, [])) as number[];
    // Pub/sub and command replies travel on different connections: a push that arrived while the read was
    // in flight may be newer than what it read (an open pushed after a read that saw closed). Acting on the
    // read would close a breaker another instance just opened, with no probe; the next sync reads again.
    if ((this.#pushes.get(peer.name) ?? 0) !== seen) return;
    const view = peer.localView();
    if (view.isolated) return;
    if (r[0] === 1) {
      const remaining = r[1]!;
      if (remaining > 0 || view.state === 'closed' || !view.shared) {
        if (!(view.state === 'open' && view.shared && Math.abs(view.openRemainingMs - remaining) < 50)) {
          peer.remoteOpen(remaining, r[2]!);
          this.#ev.emit('resync', { name: peer.name, action: 'opened' });
        }
      }
    } else if (view.state !== 'closed' && view.shared) {
      peer.remoteClose();
      this.#ev.emit('resync', { name: peer.name, action: 'closed' });
    } else if (view.state === 'open' && !view.shared && this.#quorum === 1 && view.openRemainingMs > 0) {
      // We tripped while Redis was away: tell the others now.
      await this.#trip(peer, view.openRemainingMs, view.trips);
      this.#ev.emit('resync', { name: peer.name, action: 'pushed-open' });
    }
  }

  sync(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#syncing ??= this.#syncAll().finally(() => {
      this.#syncing = undefined;
    });
    return this.#syncing;
  }

  async #syncAll(): Promise<void> {
    const peers = [...this.#peers.values()].flatMap((s) => [...s]);
    try {
      if (peers.length === 0) await this.#run('READ', '_', []);
      else if (this.#mode === 'local') await this.#run('READ', peers[0]!.name, []);
    } catch (e) {
      this.#down(e);
      return;
    }
    const wasLocal = this.#mode === 'local';
    try {
      // Announce 'shared' only once pushes reach us again: subscribing twice is harmless.
      if (wasLocal) await this.#bounded(Promise.resolve(this.#sub.subscribe(this.#channel)));
      for (const p of peers) await this.#syncOne(p);
    } catch (e) {
      this.#down(e);
      return;
    }
    if (wasLocal && !this.#closed) {
      this.#mode = 'shared';
      this.#ev.emit('modeChange', { mode: 'shared' });
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    systemClock.clearTimeout(this.#timer);
    this.#sub.removeListener('message', this.#onMessage);
    this.#sub.removeListener('ready', this.#onReconnect);
    try {
      if (this.#ownSub) await this.#bounded(Promise.resolve(this.#sub.quit()));
      else await this.#bounded(Promise.resolve(this.#sub.unsubscribe(this.#channel)));
    } catch {
      // The connection is gone already; nothing left to release.
    }
    if (this.#ownSub) this.#sub.removeListener('error', this.#ignore);
    this.#peers.clear();
    this.#ev.clear();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Shares circuit breaker state between instances through Redis, without touching Redis on the hot path:
 * - a trip is written once and pushed to every instance over pub/sub (they reject within milliseconds);
 * - in half-open exactly one instance runs the probe, holding a lease taken with `SET NX PX`;
 * - with `tripQuorum: k`, one instance's trip opens only itself until k instances agree;
 * - if Redis fails, breakers carry on locally (`modeChange` event), and reconcile when it is back.
 *
 * @example
 * import { Redis } from 'ioredis';
 * import { circuitBreaker } from '@oms/breaker';
 * import { redisBreakerStore } from '@oms/breaker/redis';
 *
 * const redis = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', { enableOfflineQueue: false });
 * const store = redisBreakerStore({ redis, prefix: 'orders:cb:' });
 * store.on('modeChange', (e) => console.warn(`breaker store: ${e.mode}`));
 * const payments = circuitBreaker({ name: 'payments', store });
 */
export function redisBreakerStore(opts: RedisBreakerStoreOptions): RedisBreakerStore {
  return new RedisBreakerStoreImpl(opts);
}
