import { until, usePostgres } from '@oms/testkit';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  deadLetters,
  enqueue,
  fnPublisher,
  migrate,
  type OutboxDb,
  type OutboxTables,
  type Publisher,
  type RelayOptions,
  relay,
} from '../src/index.js';
import { pgListen } from '../src/postgres/index.js';
import { freshTables, openDb } from './fixtures/db.js';
import { recorder, sequencesByKey } from './fixtures/recorder.js';

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
  const outbox = sql.id(tables.schema!, 'outbox');
  const count = async () =>
    Number((await sql<{ n: string }>`select count(*) as n from ${outbox}`.execute(db)).rows[0]?.n);
  const make = (o: Omit<RelayOptions, 'db' | 'tables'>) => relay({ db, tables, pollMs: 50, ...o });
  return { tables, outbox, count, make };
}

const msgs = (keys: number, perKey: number) =>
  Array.from({ length: keys * perKey }, (_, i) => ({
    topic: 't',
    key: `k${i % keys}`,
    type: 'x',
    payload: { seq: Math.floor(i / keys) },
  }));

describe('relay', () => {
  it('publishes every message once, deletes it, and reports stats', async () => {
    const { tables, count, make } = await setup();
    await enqueue(db, msgs(10, 30), { tables });
    const rec = recorder();
    const r = make({ publisher: rec.publisher, batchSize: 50 });
    const before = await r.stats();
    expect(before).toMatchObject({ backlog: 300, inFlight: 0, published: 0, state: 'idle' });
    expect(before.oldestAgeMs).toBeGreaterThanOrEqual(0);
    r.start();
    await until(() => rec.accepted.length === 300, { timeoutMs: 20_000, what: '300 messages published' });
    await r.stop();
    expect(new Set(rec.accepted.map((m) => m.id)).size).toBe(300);
    expect(await count()).toBe(0);
    expect(await r.stats()).toMatchObject({
      backlog: 0,
      oldestAgeMs: 0,
      inFlight: 0,
      published: 300,
      state: 'stopped',
    });
    const first = rec.accepted[0]!;
    expect(first).toMatchObject({ topic: 't', type: 'x', attempts: 0, headers: {} });
    expect(first.createdAt).toBeInstanceOf(Date);
  });

  it("per-key: a key's messages go out in id order even when publishes fail at random, one per key per call", async () => {
    const { tables, make } = await setup();
    await enqueue(db, msgs(8, 40), { tables });
    let n = 0;
    const rec = recorder(() => (n++ % 3 === 1 ? { ok: false, error: new Error('flaky') } : undefined));
    const r = make({ publisher: rec.publisher, batchSize: 64, backoff: () => 5, maxAttempts: 100 });
    r.start();
    await until(() => rec.accepted.length === 320, { timeoutMs: 30_000, what: '320 messages published' });
    await r.stop();
    for (const [key, seqs] of sequencesByKey(rec.accepted)) {
      expect(seqs, `key ${key}`).toEqual(Array.from({ length: 40 }, (_, i) => i));
    }
    for (const call of rec.calls) expect(new Set(call.map((m) => m.key)).size).toBe(call.length);
  });

  it('per-key: a single hot key drains batch after batch without waiting for the poll', async () => {
    const { tables, make } = await setup();
    await enqueue(db, msgs(1, 200), { tables });
    const rec = recorder();
    // at most 16 messages of a key per batch, and the next claim's snapshot still sees the batch being settled:
    // the relay must claim again at once rather than sleep through the 30 s poll
    const r = make({ publisher: rec.publisher, batchSize: 100, pollMs: 30_000 });
    r.start();
    await until(() => rec.accepted.length === 200, { timeoutMs: 20_000, what: '200 messages of one key' });
    await r.stop();
    expect(rec.accepted.map((m) => (m.payload as { seq: number }).seq)).toEqual(
      Array.from({ length: 200 }, (_, i) => i),
    );
  });

  it('a failed message retries alone: the rest of its batch is not sent again', async () => {
    const { tables, make } = await setup();
    const ids = await enqueue(db, msgs(10, 1), { tables });
    const bad = ids[3]!;
    const rec = recorder((m, call) =>
      m.id === bad && call === 1 ? { ok: false, error: new Error('once') } : undefined,
    );
    const r = make({ publisher: rec.publisher, backoff: () => 20 });
    r.start();
    await until(() => rec.accepted.length === 10, { timeoutMs: 10_000, what: 'all published' });
    await r.stop();
    expect(rec.calls[0]!.map((m) => m.id)).toEqual(ids);
    expect(rec.calls.slice(1).map((c) => c.map((m) => m.id))).toEqual([[bad]]);
    expect(rec.calls[1]![0]!.attempts).toBe(1);
  });

  it('a poison message reaches the dead letters after maxAttempts and delays only its own key', async () => {
    const { tables, make } = await setup();
    const [poison] = await enqueue(db, [{ topic: 't', key: 'bad', type: 'x', payload: { seq: 0 } }], {
      tables,
    });
    await enqueue(db, [{ topic: 't', key: 'bad', type: 'x', payload: { seq: 1 } }, ...msgs(5, 4)], {
      tables,
    });
    const order: string[] = [];
    const rec = recorder((m) => {
      order.push(`${m.key}:${(m.payload as { seq: number }).seq}`);
      return m.id === poison ? { ok: false, error: new Error('cannot parse') } : undefined;
    });
    const r = make({ publisher: rec.publisher, maxAttempts: 4, backoff: () => 30 });
    r.start();
    await until(() => rec.accepted.length === 21, {
      timeoutMs: 15_000,
      what: 'everything but the poison published',
    });
    await r.stop();
    expect(order.filter((o) => o === 'bad:0')).toHaveLength(4);
    // the other keys were all done before the poison's retries ran out; its own key waited behind it
    expect(order.indexOf('bad:1')).toBeGreaterThan(order.lastIndexOf('bad:0'));
    expect(order.lastIndexOf('k4:3')).toBeLessThan(order.lastIndexOf('bad:0'));
    const dead = await deadLetters.list(db, { tables });
    expect(dead).toHaveLength(1);
    expect(dead[0]).toMatchObject({ id: poison, key: 'bad', attempts: 4, lastError: 'Error: cannot parse' });
    expect(await r.stats()).toMatchObject({ failed: 4, deadLettered: 1, published: 21 });
  });

  it('a result with retryable: false goes to the dead letters at once; redrive brings it back with its id', async () => {
    const { tables, count, make } = await setup();
    const id = await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 1 }, { tables });
    let reject = true;
    const rec = recorder(() =>
      reject ? { ok: false, error: new Error('schema'), retryable: false } : undefined,
    );
    const r = make({ publisher: rec.publisher });
    r.start();
    await until(async () => (await deadLetters.list(db, { tables })).length === 1, {
      what: 'the dead letter',
    });
    expect(rec.calls).toHaveLength(1);
    expect(await count()).toBe(0);
    reject = false;
    expect(await deadLetters.redrive(db, [id], { tables })).toEqual([id]);
    await until(() => rec.accepted.length === 1, { what: 'the redriven message published' });
    await r.stop();
    expect(rec.accepted[0]).toMatchObject({ id, attempts: 0 });
    expect(await deadLetters.list(db, { tables })).toEqual([]);
    expect(await deadLetters.purge(db, { tables, olderThan: new Date() })).toBe(0);
  });

  it('a throwing publisher or a wrong number of results fails the messages, which then retry', async () => {
    const { tables, make } = await setup();
    await enqueue(db, msgs(3, 1), { tables });
    let call = 0;
    const accepted: string[] = [];
    const publisher: Publisher = {
      async publish(messages) {
        call++;
        if (call === 1) throw new Error('broker down');
        if (call === 2) return [{ ok: true }];
        for (const m of messages) accepted.push(m.id);
        return messages.map(() => ({ ok: true as const }));
      },
    };
    const failures: unknown[] = [];
    const r = make({ publisher, backoff: () => 10 });
    r.on('failed', (e) => failures.push(e.error));
    r.start();
    await until(() => accepted.length === 3, { what: 'published after two failed calls' });
    await r.stop();
    expect(failures).toHaveLength(6);
    expect(String(failures[3])).toMatch(/one result per message/);
  });

  it('the heartbeat keeps a long publish claimed: a second relay never takes it', async () => {
    const { tables, make } = await setup();
    await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 1 }, { tables });
    let slowCalls = 0;
    const slow = make({
      leaseMs: 600,
      publisher: fnPublisher(async () => {
        slowCalls++;
        await new Promise((res) => setTimeout(res, 2_500));
      }),
    });
    const rival = recorder();
    slow.start();
    await until(() => slowCalls === 1, { what: 'the slow publish to start' });
    const other = make({ publisher: rival.publisher, leaseMs: 600, pollMs: 20 });
    other.start();
    await until(async () => (await slow.stats()).published === 1, {
      timeoutMs: 10_000,
      what: 'the slow publish',
    });
    await Promise.all([slow.stop(), other.stop()]);
    expect(rival.calls).toEqual([]);
  });

  it('stop({ drain: true }) waits for the batch in flight; stop({ drain: false }) aborts it and hands it back', async () => {
    const { tables, outbox, make } = await setup();
    await enqueue(db, { topic: 't', key: 'a', type: 'x', payload: 1 }, { tables });
    let started = 0;
    let finished = 0;
    const draining = make({
      publisher: fnPublisher(async () => {
        started++;
        await new Promise((res) => setTimeout(res, 300));
        finished++;
      }),
    });
    draining.start();
    await until(() => started === 1, { what: 'the publish to start' });
    await draining.stop({ drain: true });
    expect(finished).toBe(1);
    expect((await draining.stats()).backlog).toBe(0);

    await enqueue(db, { topic: 't', key: 'b', type: 'x', payload: 2 }, { tables });
    let aborted: unknown;
    const hard = make({
      publisher: fnPublisher(
        (_m, signal) =>
          new Promise((_res, rej) => {
            started++;
            signal.addEventListener('abort', () => {
              aborted = signal.reason;
              rej(signal.reason);
            });
          }),
      ),
    });
    hard.start();
    await until(() => started === 2, { what: 'the second publish to start' });
    await hard.stop({ drain: false });
    expect(aborted).toMatchObject({ code: 'ERR_OMS_OUTBOX_STOPPED' });
    const rows = await sql<{
      claimed_by: string | null;
      attempts: number;
    }>`select claimed_by, attempts from ${outbox}`.execute(db);
    expect(rows.rows).toEqual([{ claimed_by: null, attempts: 0 }]);
  });

  it('stop({ drain: true, timeoutMs }) gives up on a publisher that never settles and hands the batch back', async () => {
    const { tables, outbox, make } = await setup();
    await enqueue(db, { topic: 't', key: 'a', type: 'x', payload: 1 }, { tables });
    let started = false;
    const r = make({
      publisher: {
        publish: () => {
          started = true;
          return new Promise(() => {});
        },
      },
    });
    r.start();
    await until(() => started, { what: 'the publish to start' });
    const t0 = Date.now();
    await r.stop({ drain: true, timeoutMs: 200 });
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    const rows = await sql<{ claimed_by: string | null }>`select claimed_by from ${outbox}`.execute(db);
    expect(rows.rows).toEqual([{ claimed_by: null }]);
    expect(() => r.start()).toThrow(/stopped/);
  });

  it('with LISTEN, an insert wakes the relay: published long before the 30 s poll', async () => {
    const { tables, make } = await setup();
    const client = new pg.Client({ connectionString: pgServer.url });
    await client.connect();
    try {
      const rec = recorder();
      const r = make({ publisher: rec.publisher, listen: pgListen(client), pollMs: 30_000 });
      let idle = 0;
      r.on('idle', () => idle++);
      r.start();
      await until(() => idle === 1, { what: 'the relay to go idle' });
      const t0 = Date.now();
      await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 1 }, { tables });
      await until(() => rec.accepted.length === 1, { timeoutMs: 10_000, what: 'the notified publish' });
      const ms = Date.now() - t0;
      // woken by the notification: the poll would have slept 30 s, and the loop went idle exactly once before
      expect(ms).toBeLessThan(10_000);
      expect(idle).toBeGreaterThanOrEqual(1);
      await r.stop();
    } finally {
      await client.end();
    }
  });

  it('pgListen with a connect function reconnects a lost session and keeps waking the relay', async () => {
    const { tables, make } = await setup();
    const connected: pg.Client[] = [];
    const listen = pgListen(
      async () => {
        const c = new pg.Client({ connectionString: pgServer.url });
        await c.connect();
        connected.push(c);
        return c;
      },
      { reconnectMs: 50 },
    );
    const rec = recorder();
    const r = make({ publisher: rec.publisher, listen, pollMs: 30_000 });
    let idle = 0;
    r.on('idle', () => idle++);
    r.start();
    await until(() => idle >= 1 && connected.length === 1, { what: 'the relay to listen and go idle' });
    const listenerPid = async () =>
      (
        await sql<{ pid: number }>`select pid from pg_stat_activity
          where query like 'LISTEN%' and datname = current_database()`.execute(db)
      ).rows.map((x) => x.pid);
    const [first] = await until(
      async () => {
        const pids = await listenerPid();
        return pids.length === 1 ? pids : undefined;
      },
      { what: 'the LISTEN session' },
    );
    await sql`select pg_terminate_backend(${first})`.execute(db);
    await until(() => connected.length === 2, { timeoutMs: 10_000, what: 'a reconnect' });
    await until(
      async () => {
        const pids = await listenerPid();
        return pids.length === 1 && pids[0] !== first;
      },
      { timeoutMs: 10_000, what: 'the new LISTEN session' },
    );
    await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 1 }, { tables });
    await until(() => rec.accepted.length === 1, {
      timeoutMs: 10_000,
      what: 'a publish woken through the new session',
    });
    await r.stop();
    await until(async () => (await listenerPid()).length === 0, { what: 'the session ended by stop' });
  });

  it('without LISTEN and a 30 s poll, the same insert waits for the poll', async () => {
    const { tables, make } = await setup();
    const rec = recorder();
    const r = make({ publisher: rec.publisher, pollMs: 30_000 });
    let idle = 0;
    r.on('idle', () => idle++);
    r.start();
    await until(() => idle === 1, { what: 'the relay to go idle' });
    await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 1 }, { tables });
    await new Promise((res) => setTimeout(res, 1_000));
    expect(rec.accepted).toEqual([]);
    await r.stop();
  });

  it("ordering: 'none' publishes every message, several keys' messages per call", async () => {
    const { tables, make } = await setup();
    await enqueue(db, msgs(2, 20), { tables });
    const rec = recorder();
    const r = make({ publisher: rec.publisher, ordering: 'none', batchSize: 40 });
    r.start();
    await until(() => rec.accepted.length === 40, { what: 'all published' });
    await r.stop();
    expect(rec.calls[0]!.length).toBe(40);
  });

  it('rejects bad options with a typed error', () => {
    const publisher = fnPublisher(async () => {});
    for (const bad of [
      { batchSize: 0 },
      { leaseMs: 10 },
      { maxAttempts: 0 },
      { ordering: 'random' },
      { pollMs: -1 },
      { backoff: { baseMs: -1 } },
      { concurrency: 1.5 },
    ]) {
      expect(() => relay({ db, publisher, ...(bad as object) }), JSON.stringify(bad)).toThrow(
        expect.objectContaining({ code: 'ERR_OMS_OUTBOX_INVALID_OPTION' }),
      );
    }
    expect(() => relay({ db, publisher: {} as Publisher })).toThrow(/publisher/);
  });
});

describe('enqueue with serializeKey', () => {
  async function race(tables: OutboxTables, serializeKey: boolean) {
    // T1 enqueues first (the lower id) but commits after T2
    let t1Enqueued!: () => void;
    const t1Ready = new Promise<void>((res) => {
      t1Enqueued = res;
    });
    let release!: () => void;
    const t1Hold = new Promise<void>((res) => {
      release = res;
    });
    const t1 = db.transaction().execute(async (trx) => {
      await enqueue(trx, { topic: 't', key: 'k', type: 'x', payload: { seq: 1 } }, { tables, serializeKey });
      t1Enqueued();
      await t1Hold;
    });
    await t1Ready;
    const t2 = db.transaction().execute(async (trx) => {
      await enqueue(trx, { topic: 't', key: 'k', type: 'x', payload: { seq: 2 } }, { tables, serializeKey });
    });
    const t2First = await Promise.race([
      t2.then(() => true),
      new Promise((res) => setTimeout(() => res(false), 500)),
    ]);
    return {
      t2First,
      finish: async () => {
        release();
        await Promise.all([t1, t2]);
      },
    };
  }

  it('without it, the order is per writer: a later id can commit (and be published) first', async () => {
    const { tables, make } = await setup();
    const { t2First, finish } = await race(tables, false);
    expect(t2First).toBe(true);
    const rec = recorder();
    const r = make({ publisher: rec.publisher });
    r.start();
    // generous bounds: two CI runs at once have stalled this relay's 50 ms poll past the default 5 s
    await until(() => rec.accepted.length === 1, { timeoutMs: 20_000, what: 'the committed message' });
    await finish();
    await until(() => rec.accepted.length === 2, { timeoutMs: 20_000, what: 'both' });
    await r.stop();
    expect(rec.accepted.map((m) => (m.payload as { seq: number }).seq)).toEqual([2, 1]);
    expect(BigInt(rec.accepted[0]!.id)).toBeGreaterThan(BigInt(rec.accepted[1]!.id));
  });

  it('with it, a second writer of the key waits, so id order is commit order and publish order', async () => {
    const { tables, make } = await setup();
    const { t2First, finish } = await race(tables, true);
    expect(t2First).toBe(false);
    await finish();
    const rec = recorder();
    const r = make({ publisher: rec.publisher });
    r.start();
    await until(() => rec.accepted.length === 2, { timeoutMs: 20_000, what: 'both' });
    await r.stop();
    expect(rec.accepted.map((m) => (m.payload as { seq: number }).seq)).toEqual([1, 2]);
    expect(BigInt(rec.accepted[0]!.id)).toBeLessThan(BigInt(rec.accepted[1]!.id));
  });

  it('a lower id that commits while a later one is being published goes out once after it, and the later one is not published again', async () => {
    const { tables, outbox, make } = await setup();
    // T1 takes the lower id and holds it uncommitted; T2's later id commits and is published first
    let release!: () => void;
    const hold = new Promise<void>((res) => {
      release = res;
    });
    let t1Enqueued!: () => void;
    const t1Ready = new Promise<void>((res) => {
      t1Enqueued = res;
    });
    const t1 = db.transaction().execute(async (trx) => {
      await enqueue(trx, { topic: 't', key: 'k', type: 'x', payload: { seq: 1 } }, { tables });
      t1Enqueued();
      await hold;
    });
    await t1Ready;
    await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: { seq: 2 } }, { tables });
    const seen: number[] = [];
    const r = make({
      publisher: fnPublisher(async (m) => {
        const seq = (m.payload as { seq: number }).seq;
        seen.push(seq);
        // T1 commits after seq 2 was published and before its settle: the next claim sees seq 1 as the key's
        // head while it settles seq 2 in the same statement
        if (seq === 2) {
          release();
          await t1;
        }
      }),
    });
    r.start();
    await until(() => seen.length >= 2, { timeoutMs: 20_000, what: 'both published' });
    await new Promise((res) => setTimeout(res, 500));
    await r.stop();
    expect(seen).toEqual([2, 1]);
    const left = await sql<{ n: string }>`select count(*) as n from ${outbox}`.execute(db);
    expect(Number(left.rows[0]?.n)).toBe(0);
  });
});
