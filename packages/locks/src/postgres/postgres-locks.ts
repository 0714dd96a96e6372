import type { Backend } from '../backend.js';
import { LocksCore } from '../core.js';
import { OmsLocksError } from '../errors.js';
import type { Locks } from '../types.js';
import { AdvisoryBackend } from './advisory.js';
import { LeaseTableBackend } from './lease-table.js';
import { LOCKS_MIGRATION_SQL } from './sql.js';
import type { PgPoolLike, PostgresLocksOptions } from './types.js';

export { advisoryKey } from './advisory.js';

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

const MIGRATION_LOCK = '7233110000000000001';

/** The generic `Locks` on a PostgreSQL backend, plus `migrate()`. */
class PostgresLocksImpl extends LocksCore implements PostgresLocks {
  readonly #pool: PgPoolLike;

  constructor(pool: PgPoolLike, backend: Backend, opts: PostgresLocksOptions) {
    super(backend, opts);
    this.#pool = pool;
  }

  async migrate({ signal }: { signal?: AbortSignal } = {}): Promise<void> {
    signal?.throwIfAborted();
    const c = await this.#pool.connect();
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
  }
}

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
  return new PostgresLocksImpl(pool, backend, opts);
}
