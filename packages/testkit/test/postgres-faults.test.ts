import { describe, expect, it } from 'vitest';
import { usePostgres } from '../src/use.js';

describe('a throwaway PostgreSQL', () => {
  const db = usePostgres({ dedicated: true });

  it('keeps committed data across restart()', async () => {
    const pool = db.pool({ max: 2 });
    await pool.query('create table orders (id int primary key, note text)');
    await pool.query("insert into orders values (1, 'before restart')");
    await db.restart();
    const { rows } = await db.pool().query('select note from orders where id = 1');
    expect(rows).toEqual([{ note: 'before restart' }]);
  });

  it('keeps committed data across kill() then restart() (crash recovery)', async () => {
    const pool = db.pool({ max: 1 });
    await pool.query("insert into orders values (2, 'before kill')");
    await db.kill();
    await expect(pool.query('select 1')).rejects.toThrow();
    await db.restart();
    const { rows } = await db.pool().query('select id from orders order by id');
    expect(rows.map((r) => r.id)).toEqual([1, 2]);
  });

  it('pause() stalls open connections until resume()', async () => {
    const pool = db.pool({ max: 1 });
    await pool.query('select 1');
    db.pause();
    let settled = false;
    const q = pool.query('select 42 as x').finally(() => {
      settled = true;
    });
    await new Promise((r) => setTimeout(r, 500));
    expect(settled).toBe(false);
    db.resume();
    expect((await q).rows).toEqual([{ x: 42 }]);
  });
});
