import type { LocksOptions } from '../types.js';

/**
 * The part of a query result the locks read.
 *
 * @example
 * import type { PgResult } from '@oms/locks/postgres';
 * const empty: PgResult = { rows: [], rowCount: 0 };
 */
export interface PgResult {
  rows: Record<string, unknown>[];
  rowCount: number | null;
}

/**
 * A checked-out connection: a `pg.PoolClient` fits.
 *
 * @example
 * import pg from 'pg';
 * import type { PgClientLike } from '@oms/locks/postgres';
 * declare const pool: pg.Pool;
 * const client: PgClientLike = await pool.connect();
 * client.release();
 */
export interface PgClientLike {
  query(text: string, values?: unknown[]): Promise<PgResult>;
  /** A named (prepared once per connection) statement. */
  query(config: { name: string; text: string; values?: unknown[] }): Promise<PgResult>;
  /** Returns the connection to the pool; with an argument, destroys it instead. */
  release(destroy?: boolean | Error): void;
  on(event: 'error', fn: (err: Error) => void): unknown;
  on(event: 'end', fn: () => void): unknown;
  // `| undefined` spelled out: under exactOptionalPropertyTypes, @types/pg's `payload?: string | undefined`
  // is not assignable to a bare `payload?: string`
  on(
    event: 'notification',
    fn: (message: { channel: string; payload?: string | undefined }) => void,
  ): unknown;
  removeListener(event: 'error' | 'end' | 'notification', fn: (...args: unknown[]) => void): unknown;
}

/**
 * The smallest pool the locks need: a `pg.Pool` fits.
 *
 * @example
 * import pg from 'pg';
 * import type { PgPoolLike } from '@oms/locks/postgres';
 * const pool: PgPoolLike = new pg.Pool({ connectionString: process.env.DATABASE_URL });
 */
export interface PgPoolLike {
  connect(): Promise<PgClientLike>;
  query(text: string, values?: unknown[]): Promise<PgResult>;
}

/**
 * Options of `postgresLocks`.
 *
 * @example
 * import pg from 'pg';
 * import { type PostgresLocksOptions, postgresLocks } from '@oms/locks/postgres';
 * const opts: PostgresLocksOptions = { pool: new pg.Pool(), strategy: 'lease', namespace: 'billing', fair: true };
 * const locks = postgresLocks(opts);
 */
export interface PostgresLocksOptions extends LocksOptions {
  pool: PgPoolLike;
  /**
   * `'advisory'`: session-level advisory locks on a connection held for the lease (not for transaction
   * poolers). `'lease'`: rows in `oms_locks` with server-side expiry, one statement per call, safe behind
   * PgBouncer transaction pooling.
   */
  strategy: 'advisory' | 'lease';
  /** Separates applications sharing a database. Default `'default'`. */
  namespace?: string;
  /**
   * Where waiting `acquire`s LISTEN for release notifications: a pool whose connections are real sessions
   * (behind PgBouncer transaction pooling, point this at PostgreSQL directly, or pass `false` to rely on the
   * poll). Default: `pool`.
   */
  listen?: PgPoolLike | false;
}
