import { createHash } from 'node:crypto';
import type { Attempt, AttemptRequest, AttemptResult, Backend, HeldLock } from '../backend.js';
import type { LockMode } from '../types.js';
import { Listener, markerOf, payloadOf, waiterMark, watch } from './listener.js';
import {
  ADVISORY_DROP_INTENT,
  ADVISORY_HELD,
  ADVISORY_TRY_EXCLUSIVE,
  ADVISORY_TRY_FAIR,
  ADVISORY_TRY_SHARED,
  ADVISORY_UNLOCK_EXCLUSIVE,
  ADVISORY_UNLOCK_SHARED,
  QUEUE_CANCEL,
} from './sql.js';
import type { PgClientLike, PgPoolLike } from './types.js';

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
  // pg copies a query config's own properties on every query; name and text sit on a shared prototype, so
  // only `values` is copied
  const statement = { name, text };
  return (values: unknown[]): { name: string; text: string; values: unknown[] } => {
    const q = Object.create(statement) as { name: string; text: string; values: unknown[] };
    q.values = values;
    return q;
  };
};

/** What one key is called on the server: its lock id, its waiters' marker, its NOTIFY payload. */
interface KeyIds {
  readonly k: bigint;
  /** `k` as the text a statement binds. */
  readonly id: string;
  readonly marker: string;
  readonly payload: string;
  /** The writer-intent lock id, derived on first need. */
  intent: string | undefined;
}

/** Derived ids are kept for this many keys (then forgotten all at once): a hash and some BigInt work each. */
const IDS_KEPT = 4_096;
const P = {
  tryExclusive: prepared(ADVISORY_TRY_EXCLUSIVE),
  tryShared: prepared(ADVISORY_TRY_SHARED),
  tryFair: prepared(ADVISORY_TRY_FAIR),
  unlockExclusive: prepared(ADVISORY_UNLOCK_EXCLUSIVE),
  unlockShared: prepared(ADVISORY_UNLOCK_SHARED),
  held: prepared(ADVISORY_HELD),
};

/** The `'advisory'` strategy: session-level advisory locks, each on a connection of its own. */
export class AdvisoryBackend implements Backend {
  readonly name = 'postgres-advisory';
  readonly fair = true;
  readonly #pool: PgPoolLike;
  readonly #ns: string;
  readonly #listener: Listener;
  readonly #ids = new Map<string, KeyIds>();

  constructor(pool: PgPoolLike, ns: string, listen: PgPoolLike | false) {
    this.#pool = pool;
    this.#ns = ns;
    this.#listener = new Listener(listen, ns);
  }

  #idsOf(key: string): KeyIds {
    let ids = this.#ids.get(key);
    if (!ids) {
      if (this.#ids.size >= IDS_KEPT) this.#ids.clear();
      const k = advisoryKey(this.#ns, key);
      ids = {
        k,
        id: k.toString(),
        marker: markerOf(k),
        payload: payloadOf(this.#ns, key),
        intent: undefined,
      };
      this.#ids.set(key, ids);
    }
    return ids;
  }

  attempt(req: AttemptRequest): Attempt {
    return req.fair ? this.#fairAttempt(req) : this.#preferWriters(req);
  }

  /**
   * The queue lives in `oms_locks_queue`, so a fair waiter holds no connection between tries: each try is
   * one statement that checks its place and takes the session lock under the key's transaction lock.
   */
  #fairAttempt({ key, mode, owner, waitMarkMs }: AttemptRequest): Attempt {
    const ids = this.#idsOf(key);
    const mark = waiterMark(this.#listener, ids.marker, waitMarkMs);
    let queued = false;
    return {
      try: async (): Promise<AttemptResult> => {
        const c = await this.#pool.connect();
        const w = watch(c);
        let row: { ok: boolean; token: string | null };
        try {
          const { rows } = await c.query(
            P.tryFair([this.#ns, key, owner, mode, ids.id, Math.ceil(waitMarkMs)]),
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
        return { token: BigInt(row.token), held: this.#held(c, w, ids, mode) };
      },
      markWaiting: mark.markWaiting,
      cancel: async () => {
        mark.unmark();
        if (queued) await this.#pool.query(QUEUE_CANCEL, [this.#ns, key, owner, ids.payload]);
      },
    };
  }

  #preferWriters({ key, mode, waitMarkMs }: AttemptRequest): Attempt {
    const ids = this.#idsOf(key);
    const mark = waiterMark(this.#listener, ids.marker, waitMarkMs);
    const intentKey = () => (ids.intent ??= advisoryKey(this.#ns, `\0intent\0${key}`).toString());
    const payload = ids.payload;
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
              P.tryExclusive([ids.id, wantIntent || intent ? intentKey() : '0', wantIntent, intent]),
            );
            const row = rows[0] as { ok: boolean; token: string | null; intent: boolean | null };
            ok = row.ok;
            token = row.token ?? undefined;
            if (ok) intent = false;
            else if (row.intent) intent = true;
          } else {
            const { rows } = await c.query(P.tryShared([ids.id, intentKey()]));
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
        return { token: BigInt(token), held: this.#held(c, w, ids, mode) };
      },
      markWaiting: mark.markWaiting,
      cancel: async () => {
        mark.unmark();
        await giveBack();
      },
    };
  }

  #held(c: PgClientLike, w: ReturnType<typeof watch>, ids: KeyIds, mode: LockMode): HeldLock {
    let oid: [string, string] | undefined;
    let done = false;
    return {
      // the heartbeat asks the server whether this session still holds the lock, which also catches a
      // transaction pooler that swapped the session underneath us
      extend: async () => {
        if (w.dead) return false;
        if (!oid) {
          const u = BigInt.asUintN(64, ids.k);
          oid = [(u >> 32n).toString(), (u & 0xffffffffn).toString()];
        }
        const { rows } = await c.query(P.held(oid));
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
          const values = [ids.id, ids.payload, ids.marker];
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
