import { Redis } from 'ioredis';
import { expect, it } from 'vitest';
import { usePostgres, useRedis } from '../../src/use.js';

/** The body of both isolation fixtures: write under the same names, meet at a barrier, read back. */
export function isolationFixture(me: 'a' | 'b'): void {
  const other = me === 'a' ? 'b' : 'a';
  const db = usePostgres();
  const redis = useRedis();

  it(`file ${me} sees only its own data while file ${other} runs`, async () => {
    const run = process.env.ISO_RUN_ID;
    if (!run) throw new Error('ISO_RUN_ID is not set');
    const pool = db.pool();
    await pool.query('create table if not exists same_name (who text)');
    await pool.query('insert into same_name values ($1)', [me]);
    const client = redis.client();
    await client.set(`${redis.prefix}same`, me);

    // Coordination keys sit outside any prefix on purpose: they are how the two files meet.
    const coord = new Redis(redis.url);
    await coord.set(`iso:${run}:prefix:${me}`, redis.prefix, 'EX', 120);
    await coord.set(`iso:${run}:db:${me}`, db.url, 'EX', 120);
    await coord.incr(`iso:${run}:arrived`);
    await coord.expire(`iso:${run}:arrived`, 120);
    const deadline = Date.now() + 30_000;
    while (Number(await coord.get(`iso:${run}:arrived`)) < 2) {
      if (Date.now() > deadline) throw new Error(`file ${other} never ran alongside file ${me}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const otherPrefix = await coord.get(`iso:${run}:prefix:${other}`);
    const otherDb = await coord.get(`iso:${run}:db:${other}`);
    coord.disconnect();

    expect(otherPrefix).not.toBe(redis.prefix);
    expect(otherDb).not.toBe(db.url);
    const { rows } = await pool.query('select who from same_name');
    expect(rows).toEqual([{ who: me }]);
    expect(await client.get(`${redis.prefix}same`)).toBe(me);
    const [, mine] = await client.scan('0', 'MATCH', `${redis.prefix}*`, 'COUNT', 1000);
    expect(mine).toEqual([`${redis.prefix}same`]);
  });
}
