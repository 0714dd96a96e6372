import type { Attempt, AttemptRequest, Backend, HeldLock } from '../backend.js';
import { advisoryKey } from './advisory.js';
import { Listener, markerOf, payloadOf, waiterMark } from './listener.js';
import {
  LEASE_ACQUIRE,
  LEASE_ACQUIRE_FAIR,
  LEASE_CANCEL,
  LEASE_EXTEND,
  LEASE_RELEASE,
  QUEUE_CANCEL,
} from './sql.js';
import type { PgPoolLike } from './types.js';

/**
 * The `'lease'` strategy: leases in the `oms_locks` table with server-side expiry, one statement per call, so
 * it works behind a transaction pooler.
 */
export class LeaseTableBackend implements Backend {
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
