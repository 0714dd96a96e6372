import { createHash } from 'node:crypto';
import { usePostgres } from '@oms/testkit';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { CANONICAL_SETTINGS, tableChecksums } from '../src/checksums.js';
import { freshDatabase } from './fixtures/databases.js';

const db = usePostgres();
const HEAVY = 300_000;

/** The formula as the issue states it, in one SQL expression: an md5 over the table's ordered row hashes. */
async function byFormula(pool: pg.Pool, table: string): Promise<string> {
  const c = await pool.connect();
  try {
    for (const s of CANONICAL_SETTINGS) await c.query(s);
    const r = await c.query(
      `select md5(coalesce(string_agg(h, '' order by h collate "C"), '')) as sum
       from (select md5(row(t.*)::text) as h from ${table} as t) as x`,
    );
    return r.rows[0].sum as string;
  } finally {
    c.release();
  }
}

const sumOf = (sums: { name: string; checksum: string; rows: number }[], name: string) =>
  sums.find((t) => t.name === name);

async function checksumsOf(pool: pg.Pool) {
  const c = await pool.connect();
  try {
    return await tableChecksums(c);
  } finally {
    c.release();
  }
}

describe('table checksums', () => {
  let pool: pg.Pool;
  beforeAll(async () => {
    pool = db.pool({ max: 2 });
    await pool.query(`
      create table small (id int primary key, v text);
      insert into small select g, 'v' || g from generate_series(1, 1000) g;
      create table big (id int, body text);
      insert into big select g, repeat(md5(g::text), 10) from generate_series(1, 40000) g;
      create table empty (id int);`);
    // The big table is past the size where the hashes come back in 256 groups; the formula must not change.
    const size = Number((await pool.query(`select pg_table_size('big') as b`)).rows[0].b);
    expect(size).toBeGreaterThan(8 * 2 ** 20);
  }, HEAVY);

  it(
    'are the md5 of the ordered row md5s, for a small, a large (grouped) and an empty table',
    async () => {
      const sums = await checksumsOf(pool);
      expect(sumOf(sums, 'small')).toMatchObject({ rows: 1000, checksum: await byFormula(pool, 'small') });
      expect(sumOf(sums, 'big')).toMatchObject({ rows: 40000, checksum: await byFormula(pool, 'big') });
      expect(sumOf(sums, 'empty')).toMatchObject({
        rows: 0,
        checksum: createHash('md5').update('').digest('hex'),
      });
    },
    HEAVY,
  );

  it(
    'are the same, in the same order, when helper connections hash tables at the same time',
    async () => {
      const [a, b] = [await pool.connect(), await pool.connect()];
      try {
        const alone = await tableChecksums(a);
        expect(await tableChecksums(a, { helpers: [b] })).toEqual(alone);
      } finally {
        a.release();
        b.release();
      }
    },
    HEAVY,
  );

  it(
    'do not depend on physical row order, and change with any value',
    async () => {
      const other = await freshDatabase(db.url);
      const p2 = db.pool({ connectionString: other.url, max: 1 });
      try {
        await p2.query(`
          create table small (id int primary key, v text);
          insert into small select g, 'v' || g from generate_series(1000, 1, -1) g;
          create table big (id int, body text);
          insert into big select g, repeat(md5(g::text), 10) from generate_series(40000, 1, -1) g;
          create table empty (id int);`);
        const a = await checksumsOf(pool);
        expect(await checksumsOf(p2)).toEqual(a);
        await p2.query(`update big set body = body || ' ' where id = 20000`);
        const b = await checksumsOf(p2);
        expect(sumOf(b, 'big')?.checksum).not.toBe(sumOf(a, 'big')?.checksum);
        expect(sumOf(b, 'small')?.checksum).toBe(sumOf(a, 'small')?.checksum);
      } finally {
        await other.drop();
      }
    },
    HEAVY,
  );
});
