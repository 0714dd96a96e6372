import { createHash } from 'node:crypto';
import type { Attempt, AttemptRequest, AttemptResult, Backend, HeldLock } from '../backend.js';
import { LocksCore } from '../core.js';
import { OmsLocksError } from '../errors.js';
import type { LockMode, Locks, LossReason } from '../types.js';
import {
  ADVISORY_DROP_INTENT,
  ADVISORY_HELD,
  ADVISORY_TRY_EXCLUSIVE,
  ADVISORY_TRY_FAIR,
  ADVISORY_TRY_SHARED,
  ADVISORY_UNLOCK_EXCLUSIVE,
  ADVISORY_UNLOCK_SHARED,
  CHANNEL,
  LEASE_ACQUIRE,
  LEASE_ACQUIRE_FAIR,
  LEASE_CANCEL,
  LEASE_EXTEND,
  LEASE_RELEASE,
  LOCKS_MIGRATION_SQL,
  MARK_WAITING,
  QUEUE_CANCEL,
  UNMARK_WAITING,
} from './sql.js';
import type { PgClientLike, PgPoolLike, PostgresLocksOptions } from './types.js';

/**
 * A `Locks` on PostgreSQL, plus the migration its strategy needs.
 *
 * @example
 * import pg from 'pg';
 * import { type PostgresLocks, postgresLocks } from '@oms/locks/postgres';
 * const locks: PostgresLocks = postgresLocks({ pool: new pg.Pool(), strategy: 'advisory' });
 * await locks.migrate({ signal: AbortSignal.timeout(30_000) });
 */
export interface PostgresLocks extends Locks {
  /**
   * Creates what both strategies need (`LOCKS_MIGRATION_SQL`): the sequence `oms_locks_fence_seq`, the tables
   * `oms_locks` and `oms_locks_queue`, and the functions `oms_locks_acquire`, `oms_locks_acquire_fair`,
   * `oms_locks_advisory_try_fair` and `oms_locks_release`. Idempotent, safe to run concurrently.
   */
  migrate(opts?: { signal?: AbortSignal }): Promise<void>;
}

const payloadOf = (ns: string, key: string) => `${ns.length}:${ns}${key}`;

/**
 * Stable signed 64-bit key of namespace + key, the same in every process and release: the advisory lock id
 * the `'advisory'` strategy takes, for finding it in `pg_locks`.
 *
 * @example
 * import { advisoryKey } from '@oms/locks/postgres';
 * const id: bigint = advisoryKey('reports', 'daily');
 */
export function advisoryKey(namespace: string, key: string): bigint {
  const d = createHash('sha256').update(namespace).update('\0').update(key).digest();
  return d.readBigInt64BE(0);
}

/**
 * A statement the session prepares once (parse and plan skipped from then on). Only for the advisory
 * strategy, whose sessions are real; the lease strategy stays unnamed for transaction poolers. The name
 * carries a hash of the text so two versions of this package on one pool never clash.
 */
const prepared = (text: string) => {
  const name = `oms_locks_${createHash('sha1').update(text).digest('hex').slice(0, 16)}`;
  return (values: unknown[]) => ({ name, text, values });
};
const P = {
  tryExclusive: prepared(ADVISORY_TRY_EXCLUSIVE),
  tryShared: prepared(ADVISORY_TRY_SHARED),
  tryFair: prepared(ADVISORY_TRY_FAIR),
  unlockExclusive: prepared(ADVISORY_UNLOCK_EXCLUSIVE),
  unlockShared: prepared(ADVISORY_UNLOCK_SHARED),
  held: prepared(ADVISORY_HELD),
};

/** The advisory key a key's waiters hold shared while they wait (releases notify only when it is held). */
const markerOf = (k: bigint): string => BigInt.asIntN(64, k ^ 0x5bd1e9955bd1e995n).toString();

/** Keeps one session LISTENing for release wake-ups; reconnects lazily after it drops. */
class Listener {
  readonly #pool: PgPoolLike | false;
  readonly #ns: string;
  #client: PgClientLike | undefined;
  #connecting: Promise<void> | undefined;
  #wake: ((key: string) => void) | undefined;
  #closed = false;

  constructor(pool: PgPoolLike | false, ns: string) {
    this.#pool = pool;
    this.#ns = ns;
  }

  async ensure(wake: (key: string) => void): Promise<void> {
    this.#wake = wake;
    if (this.#client || this.#pool === false || this.#closed) return;
    const pool = this.#pool;
    this.#connecting ??= (async () => {
      const c = await pool.connect();
      const prefix = payloadOf(this.#ns, '');
      const onNotification = (m: { channel: string; payload?: string | undefined }) => {
        if (m.channel === CHANNEL && m.payload?.startsWith(prefix))
          this.#wake?.(m.payload.slice(prefix.length));
      };
      const onGone = () => {
        if (this.#client !== c) return;
        this.#client = undefined;
        c.removeListener('notification', onNotification as (...args: unknown[]) => void);
        c.release(true);
      };
      c.on('notification', onNotification);
      c.on('error', onGone);
      c.on('end', onGone);
      try {
        await c.query(`listen ${CHANNEL}`);
      } catch (e) {
        c.release(true);
        throw e;
      }
      if (this.#closed) {
        c.release(true);
        return;
      }
      this.#client = c;
    })().finally(() => {
      this.#connecting = undefined;
    });
    return this.#connecting;
  }

  get live(): boolean {
    return this.#client !== undefined;
  }

  get current(): PgClientLike | undefined {
    return this.#client;
  }

  /**
   * Marks a key as waited on from the LISTEN session, so that session's death drops the mark with the
   * wake-ups it stood for. Returns the session it marked on, or undefined when nothing listens.
   */
  async mark(marker: string): Promise<PgClientLike | undefined> {
    const c = this.#client;
    if (!c) return undefined;
    await c.query(MARK_WAITING, [marker]);
    return c;
  }

  /** Drops one mark; a mark of a session since replaced died with it. */
  unmark(c: PgClientLike, marker: string): void {
    if (this.#client === c) c.query(UNMARK_WAITING, [marker]).catch(() => {});
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#connecting?.catch(() => {});
    const c = this.#client;
    this.#client = undefined;
    // destroy rather than UNLISTEN: a pooled session must not keep listening for the next borrower
    c?.release(true);
  }
}

/** Watches a checked-out connection; reports its death once. */
function watch(c: PgClientLike) {
  let fn: ((reason: LossReason) => void) | undefined;
  let dead = false;
  const onGone = () => {
    if (dead) return;
    dead = true;
    fn?.('connection');
  };
  c.on('error', onGone);
  c.on('end', onGone);
  return {
    get dead() {
      return dead;
    },
    onLoss(f: (reason: LossReason) => void) {
      fn = f;
      if (dead) f('connection');
    },
    /** Back to the pool (or destroyed when broken); stops watching. */
    done(destroy: boolean) {
      c.removeListener('error', onGone);
      c.removeListener('end', onGone);
      c.release(destroy || dead);
    },
  };
}

/** One acquire's waiter mark: placed at most once per LISTEN session, dropped when the acquire ends. */
function waiterMark(listener: Listener, marker: string, waitMarkMs: number) {
  let on: PgClientLike | undefined;
  return {
    markWaiting:
      waitMarkMs > 0
        ? async (): Promise<boolean> => {
            if (!listener.live || on === listener.current) return false;
            const c = await listener.mark(marker);
            if (on) listener.unmark(on, marker);
            on = c;
            return c !== undefined;
          }
        : undefined,
    unmark(): void {
      if (on) listener.unmark(on, marker);
      on = undefined;
    },
  };
}

class AdvisoryBackend implements Backend {
  readonly name = 'postgres-advisory';
  readonly fair = true;
  readonly #pool: PgPoolLike;
  readonly #ns: string;
  readonly #listener: Listener;

  constructor(pool: PgPoolLike, ns: string, listen: PgPoolLike | false) {
    this.#pool = pool;
    this.#ns = ns;
    this.#listener = new Listener(listen, ns);
  }

  attempt(req: AttemptRequest): Attempt {
    return req.fair ? this.#fairAttempt(req) : this.#preferWriters(req);
  }

  /**
   * The queue lives in `oms_locks_queue`, so a fair waiter holds no connection between tries: each try is
   * one statement that checks its place and takes the session lock under the key's transaction lock.
   */
  #fairAttempt({ key, mode, owner, waitMarkMs }: AttemptRequest): Attempt {
    const k = advisoryKey(this.#ns, key);
    const marker = markerOf(k);
    const mark = waiterMark(this.#listener, marker, waitMarkMs);
    const payload = payloadOf(this.#ns, key);
    let queued = false;
    return {
      try: async (): Promise<AttemptResult> => {
        const c = await this.#pool.connect();
        const w = watch(c);
        let row: { ok: boolean; token: string | null };
        try {
          const { rows } = await c.query(
            P.tryFair([this.#ns, key, owner, mode, k.toString(), Math.ceil(waitMarkMs)]),
          );
          row = rows[0] as { ok: boolean; token: string | null };
        } catch (e) {
          w.done(true);
          throw e;
        }
        if (!row.ok || row.token === null) {
          if (waitMarkMs > 0) queued = true;
          w.done(false);
          return {};
        }
        mark.unmark();
        return { token: BigInt(row.token), held: this.#held(c, w, k, mode, payload, marker) };
      },
      markWaiting: mark.markWaiting,
      cancel: async () => {
        mark.unmark();
        if (queued) await this.#pool.query(QUEUE_CANCEL, [this.#ns, key, owner, payload]);
      },
    };
  }

  #preferWriters({ key, mode, waitMarkMs }: AttemptRequest): Attempt {
    const k = advisoryKey(this.#ns, key);
    const marker = markerOf(k);
    const mark = waiterMark(this.#listener, marker, waitMarkMs);
    let ik: string | undefined;
    const intentKey = () => (ik ??= advisoryKey(this.#ns, `\0intent\0${key}`).toString());
    const payload = payloadOf(this.#ns, key);
    let conn: { c: PgClientLike; w: ReturnType<typeof watch> } | undefined;
    let intent = false;
    const giveBack = async () => {
      const held = conn;
      conn = undefined;
      if (!held) return;
      let broken = false;
      if (intent) {
        intent = false;
        broken = await held.c.query(ADVISORY_DROP_INTENT, [intentKey(), payload]).then(
          () => false,
          () => true,
        );
      }
      held.w.done(broken);
    };
    return {
      try: async (intentMs): Promise<AttemptResult> => {
        if (!conn) {
          const c = await this.#pool.connect();
          conn = { c, w: watch(c) };
        }
        const { c, w } = conn;
        let ok: boolean;
        let token: string | undefined;
        try {
          if (mode === 'exclusive') {
            const wantIntent = intentMs > 0 && !intent;
            const { rows } = await c.query(
              P.tryExclusive([k.toString(), wantIntent || intent ? intentKey() : '0', wantIntent, intent]),
            );
            const row = rows[0] as { ok: boolean; token: string | null; intent: boolean | null };
            ok = row.ok;
            token = row.token ?? undefined;
            if (ok) intent = false;
            else if (row.intent) intent = true;
          } else {
            const { rows } = await c.query(P.tryShared([k.toString(), intentKey()]));
            const row = rows[0] as { ok: boolean; token: string | null };
            ok = row.ok;
            token = row.token ?? undefined;
          }
        } catch (e) {
          conn = undefined;
          intent = false;
          w.done(true);
          throw e;
        }
        if (!ok || token === undefined) {
          // a waiting writer keeps its connection (it holds the intent); others give it back between tries
          if (!intent) await giveBack();
          return {};
        }
        conn = undefined;
        mark.unmark();
        return { token: BigInt(token), held: this.#held(c, w, k, mode, payload, marker) };
      },
      markWaiting: mark.markWaiting,
      cancel: async () => {
        mark.unmark();
        await giveBack();
      },
    };
  }

  #held(
    c: PgClientLike,
    w: ReturnType<typeof watch>,
    k: bigint,
    mode: LockMode,
    payload: string,
    marker: string,
  ): HeldLock {
    const u = BigInt.asUintN(64, k);
    const classid = (u >> 32n).toString();
    const objid = (u & 0xffffffffn).toString();
    let done = false;
    return {
      // the heartbeat asks the server whether this session still holds the lock, which also catches a
      // transaction pooler that swapped the session underneath us
      extend: async () => {
        if (w.dead) return false;
        const { rows } = await c.query(P.held([classid, objid]));
        return (rows[0] as { n: number }).n > 0;
      },
      release: async () => {
        if (done) return false;
        done = true;
        if (w.dead) {
          w.done(true);
          return false;
        }
        try {
          const values = [k.toString(), payload, marker];
          const { rows } = await c.query(
            mode === 'exclusive' ? P.unlockExclusive(values) : P.unlockShared(values),
          );
          const ok = (rows[0] as { ok: boolean }).ok;
          // a false unlock means the session lost the lock: never hand that session back to the pool
          w.done(!ok);
          return ok;
        } catch (e) {
          w.done(true); // closing the session frees the lock server-side
          throw e;
        }
      },
      onLoss: (fn) => w.onLoss(fn),
    };
  }

  get listening(): boolean {
    return this.#listener.live;
  }

  listen(wake: (key: string) => void): Promise<void> {
    return this.#listener.ensure(wake);
  }

  close(): Promise<void> {
    return this.#listener.close();
  }
}

class LeaseTableBackend implements Backend {
  readonly name = 'postgres-lease';
  readonly fair = true;
  readonly #pool: PgPoolLike;
  readonly #ns: string;
  readonly #listener: Listener;

  constructor(pool: PgPoolLike, ns: string, listen: PgPoolLike | false) {
    this.#pool = pool;
    this.#ns = ns;
    this.#listener = new Listener(listen, ns);
  }

  attempt({ key, mode, ttlMs, owner, waitMarkMs, fair }: AttemptRequest): Attempt {
    const ns = this.#ns;
    const ttl = Math.ceil(ttlMs);
    const marker = markerOf(advisoryKey(ns, key));
    const mark = waiterMark(this.#listener, marker, waitMarkMs);
    // `intent` is the writer intent, or in a fair store the place in the queue
    let intent = false;
    return {
      try: async (intentMs) => {
        const { rows } = await this.#pool.query(fair ? LEASE_ACQUIRE_FAIR : LEASE_ACQUIRE, [
          ns,
          key,
          owner,
          mode,
          ttl,
          Math.ceil(fair ? waitMarkMs : intentMs),
        ]);
        const row = rows[0] as { token: string | null; retry_ms: number | null };
        if (row.token !== null) {
          mark.unmark();
          return { token: BigInt(row.token), held: this.#held(key, owner, marker) };
        }
        if (fair ? waitMarkMs > 0 : intentMs > 0 && mode === 'exclusive') intent = true;
        return row.retry_ms === null ? {} : { retryAfterMs: row.retry_ms };
      },
      markWaiting: mark.markWaiting,
      cancel: async () => {
        mark.unmark();
        if (intent) {
          await this.#pool.query(fair ? QUEUE_CANCEL : LEASE_CANCEL, [ns, key, owner, payloadOf(ns, key)]);
        }
      },
    };
  }

  #held(key: string, owner: string, marker: string): HeldLock {
    const ns = this.#ns;
    return {
      extend: async (ttlMs) =>
        (await this.#pool.query(LEASE_EXTEND, [ns, key, owner, Math.ceil(ttlMs)])).rowCount === 1,
      release: async () => {
        const { rows } = await this.#pool.query(LEASE_RELEASE, [ns, key, owner, payloadOf(ns, key), marker]);
        return (rows[0] as { ok: boolean }).ok;
      },
    };
  }

  get listening(): boolean {
    return this.#listener.live;
  }

  listen(wake: (key: string) => void): Promise<void> {
    return this.#listener.ensure(wake);
  }

  close(): Promise<void> {
    return this.#listener.close();
  }
}

const MIGRATION_LOCK = '7233110000000000001';

/**
 * Locks on PostgreSQL. `strategy: 'advisory'` holds session-level advisory locks on a dedicated connection
 * (released by the server the moment that connection dies); `strategy: 'lease'` keeps leases in the
 * `oms_locks` table with server-side expiry and is safe behind PgBouncer transaction pooling. Both take
 * fencing tokens from one sequence, so call `migrate()` (or run `LOCKS_MIGRATION_SQL`) first.
 *
 * @example
 * import pg from 'pg';
 * import { postgresLocks } from '@oms/locks/postgres';
 * declare function charge(o: { fence: bigint; signal: AbortSignal }): Promise<void>;
 * const locks = postgresLocks({ pool: new pg.Pool(), strategy: 'lease', namespace: 'billing' });
 * await locks.migrate();
 * const lease = await locks.acquire('invoice:42', { ttlMs: 15_000 });
 * try { await charge({ fence: lease.fencingToken, signal: lease.signal }); } finally { await lease.release(); }
 */
export function postgresLocks(opts: PostgresLocksOptions): PostgresLocks {
  const pool = opts?.pool;
  if (!pool || typeof pool.connect !== 'function' || typeof pool.query !== 'function') {
    throw new OmsLocksError(
      'ERR_OMS_LOCKS_INVALID_OPTION',
      'postgresLocks needs `pool` with connect() and query() (a pg.Pool)',
    );
  }
  if (opts.strategy !== 'advisory' && opts.strategy !== 'lease') {
    throw new OmsLocksError(
      'ERR_OMS_LOCKS_INVALID_OPTION',
      `strategy must be 'advisory' or 'lease' (got ${JSON.stringify(opts.strategy)})`,
    );
  }
  const ns = opts.namespace ?? 'default';
  if (typeof ns !== 'string' || ns.length === 0 || ns.length > 200) {
    throw new OmsLocksError(
      'ERR_OMS_LOCKS_INVALID_OPTION',
      `namespace must be a string of 1 to 200 characters`,
    );
  }
  const listen = opts.listen === undefined ? pool : opts.listen;
  const backend =
    opts.strategy === 'advisory'
      ? new AdvisoryBackend(pool, ns, listen)
      : new LeaseTableBackend(pool, ns, listen);
  const core = new LocksCore(backend, opts) as LocksCore & PostgresLocks;
  core.migrate = async ({ signal } = {}) => {
    signal?.throwIfAborted();
    const c = await pool.connect();
    let broken = false;
    try {
      // concurrent CREATE OR REPLACE FUNCTION from several pods fails with "tuple concurrently updated"
      await c.query('begin');
      await c.query('select pg_advisory_xact_lock($1::bigint)', [MIGRATION_LOCK]);
      await c.query(LOCKS_MIGRATION_SQL);
      await c.query('commit');
    } catch (e) {
      broken = true;
      throw new OmsLocksError('ERR_OMS_LOCKS_BACKEND', `migrate failed: ${(e as Error).message}`, true, {
        cause: e,
      });
    } finally {
      c.release(broken);
    }
  };
  return core;
}
