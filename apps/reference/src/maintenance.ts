import type { Lease, Locks } from '@oms/locks';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Database } from './db/schema.js';
import { Problem } from './problems.js';

const KEY = 'maintenance';

export interface FreezeState {
  frozen: true;
  holder: string;
  since: string;
  eta: string;
}

/**
 * The maintenance freeze on one lock key: every write holds the shared side while it runs, a freeze takes the
 * exclusive side. Writes arriving during a freeze (or while one waits for running writes to finish: the lock
 * prefers writers) are answered 423 at once instead of queueing. Who froze, since when and until when is kept
 * in the `maintenance` row, so every instance can say it.
 */
export class Maintenance {
  readonly #locks: Locks;
  readonly #db: Kysely<Database>;
  readonly #log: Logger;
  readonly #instanceId: string;
  #held: { lease: Lease; state: FreezeState } | undefined;

  constructor(o: { locks: Locks; db: Kysely<Database>; log: Logger; instanceId: string }) {
    this.#locks = o.locks;
    this.#db = o.db;
    this.#log = o.log;
    this.#instanceId = o.instanceId;
  }

  /** Runs a write under the shared side of the maintenance lock, or throws 423 MAINTENANCE. */
  async write<T>(fn: () => Promise<T>): Promise<T> {
    const lease = await this.#locks.tryAcquire(KEY, { mode: 'shared', ttlMs: 30_000 });
    if (!lease) throw await this.#locked();
    try {
      return await fn();
    } finally {
      await lease.release();
    }
  }

  async #locked(): Promise<Problem> {
    const row = await this.#db.selectFrom('maintenance').selectAll().where('id', '=', 1).executeTakeFirst();
    const state = row
      ? { holder: row.holder, since: new Date(row.since).toISOString(), eta: new Date(row.eta).toISOString() }
      : { holder: 'pending', since: new Date().toISOString(), eta: null };
    const retryAfter = row ? Math.max(1, Math.ceil((new Date(row.eta).getTime() - Date.now()) / 1000)) : 5;
    return new Problem('MAINTENANCE', row ? `frozen: ${row.reason}` : 'a freeze is starting', state, {
      'Retry-After': String(retryAfter),
    });
  }

  /** Takes the exclusive side (waiting up to 10 s for running writes), and records who holds it. */
  async freeze(o: { subject: string; reason: string; etaSec: number }): Promise<FreezeState> {
    if (this.#held) return this.#held.state;
    let lease: Lease;
    try {
      lease = await this.#locks.acquire(KEY, { mode: 'exclusive', ttlMs: 30_000, waitMs: 10_000 });
    } catch (e) {
      throw new Problem(
        'BUSY',
        `could not take the maintenance lock: ${(e as Error).message}`,
        {},
        { 'Retry-After': '5' },
      );
    }
    if (this.#held) {
      // a concurrent freeze on this instance won the race
      await lease.release();
      return (this.#held as { state: FreezeState }).state;
    }
    const since = new Date();
    const eta = new Date(since.getTime() + o.etaSec * 1000);
    const holder = `${o.subject}@${this.#instanceId}`;
    await this.#db
      .insertInto('maintenance')
      .values({ id: 1, holder, reason: o.reason, since, eta })
      .onConflict((oc) => oc.column('id').doUpdateSet({ holder, reason: o.reason, since, eta }))
      .execute();
    const state: FreezeState = { frozen: true, holder, since: since.toISOString(), eta: eta.toISOString() };
    this.#held = { lease, state };
    lease.signal.addEventListener(
      'abort',
      () => {
        if (this.#held?.lease !== lease) return;
        this.#log.error('maintenance lease lost: the freeze is over');
        this.#held = undefined;
        void this.#clearRow();
      },
      { once: true },
    );
    this.#log.warn({ holder, reason: o.reason, eta: state.eta }, 'maintenance freeze on');
    return state;
  }

  /** Lifts the freeze this instance holds. */
  async unfreeze(): Promise<{ frozen: false }> {
    const held = this.#held;
    if (!held) {
      const row = await this.#db
        .selectFrom('maintenance')
        .select('holder')
        .where('id', '=', 1)
        .executeTakeFirst();
      if (row)
        throw new Problem('NOT_FROZEN_HERE', `the freeze is held by ${row.holder}`, { holder: row.holder });
      return { frozen: false };
    }
    this.#held = undefined;
    await this.#clearRow();
    await held.lease.release();
    this.#log.warn('maintenance freeze off');
    return { frozen: false };
  }

  async #clearRow(): Promise<void> {
    await this.#db
      .deleteFrom('maintenance')
      .where('id', '=', 1)
      .execute()
      .catch(() => {});
  }

  get frozenHere(): boolean {
    return this.#held !== undefined;
  }

  async close(): Promise<void> {
    if (this.#held) await this.unfreeze().catch(() => {});
  }
}
