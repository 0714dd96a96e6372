import { fileURLToPath } from 'node:url';
import { forkWorkers, usePostgres } from '@oms/testkit';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { handleOnce, migrate, type OutboxDb } from '../src/index.js';
import { appliedLog, createAppliedLog } from './fixtures/applied.js';
import { freshTables, openDb } from './fixtures/db.js';

const worker = fileURLToPath(new URL('./fixtures/inbox-worker.ts', import.meta.url));
const pgServer = usePostgres();
let db: OutboxDb;
let close: () => Promise<void>;
beforeAll(() => {
  ({ db, close } = openDb(pgServer.url, 8));
});
afterAll(() => close());

async function setup() {
  const tables = freshTables();
  await migrate(db, { tables });
  await createAppliedLog(db, tables.schema!);
  return tables;
}

describe('handleOnce', () => {
  it('processes a message once, then reports duplicates', async () => {
    const tables = await setup();
    let runs = 0;
    const first = await handleOnce(db, { consumer: 'c', messageId: '1' }, async () => ++runs, { tables });
    const again = await handleOnce(db, { consumer: 'c', messageId: '1' }, async () => ++runs, { tables });
    const other = await handleOnce(db, { consumer: 'other', messageId: '1' }, async () => ++runs, { tables });
    expect([first, again, other]).toEqual([
      { status: 'processed', result: 1 },
      { status: 'duplicate' },
      { status: 'processed', result: 2 },
    ]);
  });

  it("commits the handler's writes with the inbox row: a throwing handler leaves neither, so a redelivery processes it", async () => {
    const tables = await setup();
    const applied = sql.id(tables.schema!, 'applied');
    const fail = handleOnce(
      db,
      { consumer: 'c', messageId: '7' },
      async (trx) => {
        await sql`insert into ${applied} (message_id, key, seq, by) values ('7', 'k', 0, 'first')`.execute(
          trx,
        );
        throw new Error('handler failed');
      },
      { tables },
    );
    await expect(fail).rejects.toThrow('handler failed');
    expect(await appliedLog(db, tables.schema!)).toEqual([]);
    const r = await handleOnce(
      db,
      { consumer: 'c', messageId: '7' },
      async (trx) => {
        await sql`insert into ${applied} (message_id, key, seq, by) values ('7', 'k', 0, 'second')`.execute(
          trx,
        );
        return 'ok';
      },
      { tables },
    );
    expect(r).toEqual({ status: 'processed', result: 'ok' });
    expect((await appliedLog(db, tables.schema!)).map((x) => x.by)).toEqual(['second']);
  });

  it('joins a transaction it is given', async () => {
    const tables = await setup();
    await db
      .transaction()
      .execute(async (trx) => {
        await handleOnce(trx, { consumer: 'c', messageId: '9' }, async () => 1, { tables });
        throw new Error('outer rollback');
      })
      .catch(() => {});
    const r = await handleOnce(db, { consumer: 'c', messageId: '9' }, async () => 2, { tables });
    expect(r).toEqual({ status: 'processed', result: 2 });
  });

  it('rejects a bad consumer or message id with a typed error', async () => {
    await expect(handleOnce(db, { consumer: '', messageId: '1' }, () => 1)).rejects.toMatchObject({
      code: 'ERR_OMS_OUTBOX_INVALID_OPTION',
    });
    await expect(
      handleOnce(db, { consumer: 'c', messageId: 'x'.repeat(1025) }, () => 1),
    ).rejects.toMatchObject({
      code: 'ERR_OMS_OUTBOX_INVALID_OPTION',
    });
  });

  it('applies each message exactly once when 4 processes deliver the same 200 messages at the same time', async () => {
    const tables = await setup();
    const ids = Array.from({ length: 200 }, (_, i) => String(1000 + i));
    const results = await forkWorkers<unknown, { processed: number; duplicate: number }>(
      4,
      worker,
      { url: pgServer.url, tables, ids },
      { timeoutMs: 120_000 },
    );
    expect(results.reduce((s, r) => s + r.processed, 0)).toBe(200);
    expect(results.reduce((s, r) => s + r.duplicate, 0)).toBe(600);
    const log = await appliedLog(db, tables.schema!);
    expect(log).toHaveLength(200);
    expect(new Set(log.map((r) => r.message_id)).size).toBe(200);
  }, 120_000);
});
