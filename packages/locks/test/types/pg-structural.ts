// Compiled by test/types.test.ts with exactOptionalPropertyTypes (as a strict user project would be): the
// pg driver's own classes must fit the structural types without a cast.
import pg from 'pg';
import { type PgClientLike, type PgPoolLike, postgresLocks } from '../../src/postgres/index.js';

declare const client: pg.PoolClient;

export const pool: PgPoolLike = new pg.Pool();
export const checkedOut: PgClientLike = client;
export const locks = postgresLocks({ pool: new pg.Pool(), strategy: 'lease', listen: new pg.Pool() });
