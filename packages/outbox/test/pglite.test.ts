import { PGlite } from '@electric-sql/pglite';
import { until } from '@oms/testkit';
import { Kysely, PGliteDialect, sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { deadLetters, enqueue, handleOnce, migrate, type OutboxDb, relay } from '../src/index.js';
import { pgliteListen } from '../src/pglite/index.js';
import { recorder, sequencesByKey } from './fixtures/recorder.js';

let pglite: PGlite;
let db: OutboxDb;
beforeAll(async () => {
  pglite = new PGlite();
  db = new Kysely({ dialect: new PGliteDialect({ pglite }) });
  await migrate(db);
  await migrate(db);
});
afterAll(async () => {
  await db.destroy();
});

describe('the core on PGlite (embedded PostgreSQL)', () => {
  it('enqueues in a transaction, relays on a NOTIFY wake-up in key order, and dead-letters a poison message', async () => {
    await db
      .transaction()
      .execute(async (trx) => {
        await enqueue(trx, { topic: 't', key: 'gone', type: 'x', payload: { seq: 0 } });
        throw new Error('rollback');
      })
      .catch(() => {});
    const rec = recorder((m) => (m.key === 'poison' ? { ok: false, error: new Error('bad') } : undefined));
    const r = relay({
      db,
      publisher: rec.publisher,
      listen: pgliteListen(pglite),
      pollMs: 30_000,
      maxAttempts: 2,
      backoff: () => 10,
    });
    let idle = 0;
    r.on('idle', () => idle++);
    r.start();
    await until(() => idle >= 1, { what: 'the relay to go idle' });
    await db.transaction().execute(async (trx) => {
      await enqueue(trx, [
        { topic: 't', key: 'poison', type: 'x', payload: { seq: 0 } },
        ...Array.from({ length: 30 }, (_, i) => ({
          topic: 't',
          key: `k${i % 3}`,
          type: 'x',
          payload: { seq: Math.floor(i / 3) },
        })),
      ]);
    });
    await until(() => rec.accepted.length === 30, { timeoutMs: 10_000, what: 'the notified publish' });
    await until(async () => (await deadLetters.list(db)).length === 1, { what: 'the poison dead-lettered' });
    await r.stop();
    for (const seqs of sequencesByKey(rec.accepted).values())
      expect(seqs).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(rec.accepted.some((m) => m.key === 'gone')).toBe(false);
    expect((await r.stats()).backlog).toBe(0);
  });

  it('runs handleOnce exactly once', async () => {
    await sql`create table applied_pglite (id text primary key)`.execute(db);
    const apply = () =>
      handleOnce(db, { consumer: 'c', messageId: '1' }, async (trx) => {
        await sql`insert into applied_pglite values ('1')`.execute(trx);
      });
    const results = await Promise.all([apply(), apply(), apply()]);
    expect(results.map((x) => x.status).sort()).toEqual(['duplicate', 'duplicate', 'processed']);
  });
});
