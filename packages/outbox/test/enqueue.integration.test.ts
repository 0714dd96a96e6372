import { until, usePostgres } from '@oms/testkit';
import { context, TraceFlags, trace } from '@opentelemetry/api';
import { sql } from 'kysely';
import pgDriver from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deadLetters,
  enqueue,
  fnPublisher,
  isOmsOutboxError,
  migrate,
  migrationSql,
  type OutboxDb,
  type OutboxTables,
  relay,
} from '../src/index.js';
import { freshTables, openDb } from './fixtures/db.js';
import { useW3cPropagation } from './fixtures/otel.js';

const pg = usePostgres();
let db: OutboxDb;
let close: () => Promise<void>;
useW3cPropagation();

beforeAll(() => {
  ({ db, close } = openDb(pg.url));
});
afterAll(() => close());

async function setup(extra: Omit<OutboxTables, 'schema'> = {}) {
  const tables = freshTables(extra);
  await migrate(db, { tables });
  const count = async () =>
    Number(
      (
        await sql<{
          n: string;
        }>`select count(*) as n from ${sql.id(tables.schema!, tables.outbox ?? 'outbox')}`.execute(db)
      ).rows[0]?.n,
    );
  const rows = async () =>
    (
      await sql<{
        id: string;
        topic: string;
        key: string;
        type: string;
        payload: unknown;
        headers: Record<string, string>;
      }>`
        select id::text as id, topic, key, type, payload, headers from ${sql.id(tables.schema!, tables.outbox ?? 'outbox')} o order by o.id`.execute(
        db,
      )
    ).rows;
  return { tables, count, rows };
}

describe('migrate', () => {
  it('is idempotent and safe to run from several connections at once', async () => {
    const tables = freshTables();
    await Promise.all([migrate(db, { tables }), migrate(db, { tables }), migrate(db, { tables })]);
    await migrate(db, { tables });
    const res = await sql<{
      indexname: string;
    }>`select indexname from pg_indexes where schemaname = ${tables.schema!} order by indexname`.execute(db);
    expect(res.rows.map((r) => r.indexname)).toEqual([
      'inbox_pkey',
      'outbox_dead_pkey',
      'outbox_dead_topic_id',
      'outbox_key_id',
      'outbox_pkey',
    ]);
  });

  it('honours custom table names and the plain SQL script runs in a migration tool of your own', async () => {
    const tables = freshTables({ outbox: 'events_out', dead: 'events_dead', inbox: 'events_in' });
    const client = await openDb(pg.url, 1).pool.connect();
    try {
      await client.query(migrationSql(tables)); // one multi-statement script, as dbmate or psql would run it
      await client.query(migrationSql(tables));
    } finally {
      client.release();
    }
    const res = await sql<{
      tablename: string;
    }>`select tablename from pg_tables where schemaname = ${tables.schema!} order by 1`.execute(db);
    expect(res.rows.map((r) => r.tablename)).toEqual(['events_dead', 'events_in', 'events_out']);
    await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 1 }, { tables });
  });

  it('rejects table names that are not plain identifiers', async () => {
    await expect(migrate(db, { tables: { schema: 'a; drop table x' } })).rejects.toMatchObject({
      code: 'ERR_OMS_OUTBOX_INVALID_OPTION',
    });
    await expect(migrate(db, { tables: { outbox: 'same', dead: 'same' } })).rejects.toMatchObject({
      code: 'ERR_OMS_OUTBOX_INVALID_OPTION',
    });
  });
});

describe('enqueue', () => {
  it('writes in the caller transaction: a rollback leaves nothing, a commit leaves the message', async () => {
    const { tables, count, rows } = await setup();
    await db
      .transaction()
      .execute(async (trx) => {
        await enqueue(trx, { topic: 'orders', key: 'o-1', type: 'created', payload: { n: 1 } }, { tables });
        throw new Error('rollback');
      })
      .catch(() => {});
    expect(await count()).toBe(0);
    const id = await db
      .transaction()
      .execute((trx) =>
        enqueue(trx, { topic: 'orders', key: 'o-1', type: 'created', payload: { n: 2 } }, { tables }),
      );
    expect(id).toMatch(/^\d+$/);
    expect(await rows()).toEqual([
      { id, topic: 'orders', key: 'o-1', type: 'created', payload: { n: 2 }, headers: {} },
    ]);
  });

  it('inserts an array in one statement and returns the ids in input order', async () => {
    const { tables, rows } = await setup();
    const messages = Array.from({ length: 50 }, (_, i) => ({
      topic: 't',
      key: `k${i % 3}`,
      type: 'x',
      payload: { i, s: 'quote " and \\ and ünïcode' },
      headers: { h: String(i) },
    }));
    const ids = await enqueue(db, messages, { tables });
    expect(ids).toHaveLength(50);
    const got = await rows();
    expect(got.map((r) => r.id)).toEqual(ids);
    expect(got.map((r) => (r.payload as { i: number }).i)).toEqual(messages.map((m) => m.payload.i));
    expect(got[7]).toMatchObject({ key: 'k1', headers: { h: '7' }, payload: messages[7]!.payload });
    expect(await enqueue(db, [], { tables })).toEqual([]);
  });

  it('carries the active trace context as traceparent, and a header the caller set wins', async () => {
    const { tables, rows } = await setup();
    const span = trace.wrapSpanContext({
      traceId: '0af7651916cd43dd8448eb211c80319c',
      spanId: 'b7ad6b7169203331',
      traceFlags: TraceFlags.SAMPLED,
    });
    await context.with(trace.setSpan(context.active(), span), async () => {
      await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: null }, { tables });
      await enqueue(db, [{ topic: 't', key: 'k', type: 'x', payload: 1, headers: { traceparent: 'mine' } }], {
        tables,
      });
    });
    await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 2 }, { tables });
    const got = await rows();
    expect(got[0]!.headers).toEqual({
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
    });
    expect(got[1]!.headers).toEqual({ traceparent: 'mine' });
    expect(got[2]!.headers).toEqual({});
  });

  describe('rejects bad input with a typed error, writes nothing and leaves the transaction usable', () => {
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const cases: [string, unknown, string][] = [
      ['a BigInt payload', { payload: { n: 10n } }, 'ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON'],
      ['a circular payload', { payload: circular }, 'ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON'],
      ['a function payload', { payload: () => 1 }, 'ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON'],
      ['an undefined payload', { payload: undefined }, 'ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON'],
      ['NaN inside the payload', { payload: { a: [1, Number.NaN] } }, 'ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON'],
      ['a NUL character in the payload', { payload: { s: 'a\u0000b' } }, 'ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON'],
      ['a payload over the limit', { payload: 'x'.repeat(1024 * 1024) }, 'ERR_OMS_OUTBOX_PAYLOAD_TOO_LARGE'],
      ['an empty topic', { topic: '' }, 'ERR_OMS_OUTBOX_INVALID_MESSAGE'],
      ['a key over 1 KiB', { key: 'é'.repeat(513) }, 'ERR_OMS_OUTBOX_INVALID_MESSAGE'],
      ['a missing type', { type: undefined }, 'ERR_OMS_OUTBOX_INVALID_MESSAGE'],
      ['a non-string header', { headers: { n: 1 } }, 'ERR_OMS_OUTBOX_INVALID_MESSAGE'],
    ];
    it.each(cases)('%s', async (_name, patch, code) => {
      const { tables, count } = await setup();
      const good = { topic: 't', key: 'k', type: 'x', payload: { ok: true } };
      const bad = { ...good, ...(patch as object) };
      await db.transaction().execute(async (trx) => {
        const err = await enqueue(trx, [good, bad as typeof good], { tables }).catch((e: unknown) => e);
        expect(isOmsOutboxError(err), String(err)).toBe(true);
        expect(err).toMatchObject({ code });
        expect((err as Error).message).toMatch(/messages\[1\]/);
        // the transaction is not aborted: the caller's next statement still works
        await enqueue(trx, good, { tables });
      });
      expect(await count()).toBe(1);
    });

    it('a payload just under the limit is written; maxPayloadBytes lowers it', async () => {
      const { tables, count } = await setup();
      await enqueue(
        db,
        { topic: 't', key: 'k', type: 'x', payload: 'x'.repeat(1024 * 1024 - 2) },
        { tables },
      );
      await expect(
        enqueue(
          db,
          { topic: 't', key: 'k', type: 'x', payload: 'xxxxxxxxx' },
          { tables, maxPayloadBytes: 10 },
        ),
      ).rejects.toMatchObject({ code: 'ERR_OMS_OUTBOX_PAYLOAD_TOO_LARGE' });
      expect(await count()).toBe(1);
    });
  });
});

describe("idType: 'uuidv7'", () => {
  const UUID7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

  it('makes RFC 9562 version-7 ids that sort in insertion order, within one statement and across statements', async () => {
    const { tables, rows } = await setup({ idType: 'uuidv7' });
    const before = Date.now();
    const batch = await enqueue(
      db,
      Array.from({ length: 300 }, (_, i) => ({ topic: 't', key: `k${i % 7}`, type: 'x', payload: { i } })),
      { tables },
    );
    const single: string[] = [];
    for (let i = 0; i < 20; i++) {
      single.push(
        await enqueue(db, { topic: 't', key: 'k0', type: 'x', payload: { i: 300 + i } }, { tables }),
      );
    }
    const ids = [...batch, ...single];
    for (const id of ids) expect(id).toMatch(UUID7);
    expect(new Set(ids).size).toBe(ids.length);
    // the database orders uuids byte by byte: that order is the insertion order
    const got = await rows();
    expect(got.map((r) => (r.payload as { i: number }).i)).toEqual(ids.map((_, i) => i));
    expect(got.map((r) => r.id)).toEqual(ids);
    // the first 48 bits are the server's Unix time in ms
    const ms = Number.parseInt((ids[0] as string).replaceAll('-', '').slice(0, 12), 16);
    expect(Math.abs(ms - before)).toBeLessThan(60_000);
  });

  it('relays in per-key order, dead-letters and redrives by uuid, and the SQL script creates the same tables', async () => {
    const { tables, count } = await setup({ idType: 'uuidv7' });
    const ids = await enqueue(
      db,
      Array.from({ length: 60 }, (_, i) => ({ topic: 't', key: `k${i % 3}`, type: 'x', payload: { i } })),
      { tables },
    );
    const poison = ids[4] as string;
    const seen: { id: string; key: string; i: number }[] = [];
    const r = relay({
      db,
      tables,
      pollMs: 50,
      maxAttempts: 2,
      backoff: () => 5,
      publisher: fnPublisher((m) => {
        if (m.id === poison) throw new Error('poison');
        seen.push({ id: m.id, key: m.key, i: (m.payload as { i: number }).i });
      }),
    });
    r.start();
    await until(() => seen.length === 59, { timeoutMs: 20_000, what: '59 messages published' });
    await r.stop();
    for (const k of ['k0', 'k1', 'k2']) {
      const order = seen.filter((m) => m.key === k).map((m) => m.i);
      expect(order).toEqual([...order].sort((a, b) => a - b));
    }
    const dead = await deadLetters.list(db, { tables });
    expect(dead.map((d) => d.id)).toEqual([poison]);
    expect(dead[0]).toMatchObject({ key: 'k1', attempts: 2, lastError: 'Error: poison' });
    expect(await deadLetters.list(db, { tables, afterId: poison })).toEqual([]);
    expect(await deadLetters.redrive(db, [poison.toUpperCase()], { tables })).toEqual([poison]);
    expect(await count()).toBe(1);
    await expect(deadLetters.redrive(db, ['42'], { tables })).rejects.toThrow(
      /must be a message id such as "0190/,
    );
    expect(migrationSql({ idType: 'uuidv7', schema: 'm' })).toContain('default "m"."outbox_uuidv7"()');
    expect(() => migrationSql({ idType: 'uuid4' as 'uuidv7' })).toThrow(
      /idType must be 'bigserial' or 'uuidv7'/,
    );
  });
});

describe('enqueue notify', () => {
  /** Notifications on the outbox channel, up to a marker sent after the writes under test committed. */
  async function notificationsOf(tables: OutboxTables, write: () => Promise<void>): Promise<string[]> {
    const channel = `${tables.schema}_outbox`;
    const client = new pgDriver.Client({ connectionString: pg.url });
    await client.connect();
    try {
      const got: string[] = [];
      client.on('notification', (n) => got.push(n.payload ?? ''));
      await client.query(`listen "${channel}"`);
      await write();
      // notifications arrive in commit order: once the marker is here, every earlier one is too
      await sql`select pg_notify(${channel}, 'marker')`.execute(db);
      await until(() => got.includes('marker'), { what: 'the marker notification' });
      return got.slice(0, got.indexOf('marker'));
    } finally {
      await client.end();
    }
  }
  const m = { topic: 't', key: 'k', type: 'x', payload: 1 };

  it('notify: false commits without a NOTIFY; the default (and the next statement in the transaction) notifies', async () => {
    const { tables, count } = await setup();
    expect(
      await notificationsOf(tables, async () => {
        await enqueue(db, m, { tables, notify: false });
        await enqueue(db, [m, m], { tables, notify: false });
      }),
    ).toEqual([]);
    expect(await notificationsOf(tables, () => enqueue(db, m, { tables }).then(() => {}))).toEqual(['']);
    expect(
      await notificationsOf(tables, () =>
        db.transaction().execute(async (trx) => {
          await enqueue(trx, m, { tables, notify: false });
          await enqueue(trx, m, { tables });
        }),
      ),
    ).toEqual(['']);
    expect(await count()).toBe(6);
  });
});
