import { enqueue, fnPublisher, migrate, type Relay, relay } from '@oms/outbox';
import { pgListen } from '@oms/outbox/postgres';
import { redisStreamsPublisher } from '@oms/outbox/redis';
import { Redis } from 'ioredis';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import PgBoss from 'pg-boss';
import { defineSuite } from '../src/harness.js';

// Drain cases: one iteration writes N rows with one multi-row INSERT and then waits until they are drained, so
// every side pays the same write and the ratios compare the drains. The relay cases run a started relay that
// sleeps between iterations and is woken by the insert's NOTIFY, as in production; the floor is a bare
// `DELETE … FOR UPDATE SKIP LOCKED LIMIT 100` loop; pg-boss fetches 100 jobs and completes them by id.
const N = 1_000;
const KEYS = 1_000;
const batchOf = (topic: string) =>
  Array.from({ length: N }, (_, i) => ({ topic, key: `k${i % KEYS}`, type: 'bench', payload: { i } }));

/** A relay that resolves `drained()` once `n` more messages were published. */
function drainable(r: Relay) {
  let published = 0;
  let waiter: { target: number; resolve: () => void } | undefined;
  r.on('published', (e) => {
    published += e.messages.length;
    if (waiter && published >= waiter.target) {
      waiter.resolve();
      waiter = undefined;
    }
  });
  return (n: number) =>
    new Promise<void>((resolve) => {
      const target = published + n;
      if (published >= target) resolve();
      else waiter = { target, resolve };
    });
}

export default defineSuite({
  name: 'outbox',
  async setup(env) {
    const pool = new pg.Pool({ connectionString: env.postgresUrl, max: 12 });
    await Promise.all(Array.from({ length: 12 }, () => pool.query('select 1')));
    const db = new Kysely<unknown>({ dialect: new PostgresDialect({ pool }) });
    const redis = new Redis(env.redisUrl);
    const listeners: pg.Client[] = [];
    const listener = async () => {
      const c = new pg.Client({ connectionString: env.postgresUrl });
      await c.connect();
      listeners.push(c);
      return pgListen(c);
    };

    const started: Relay[] = [];
    const relayCase = async (
      schema: string,
      ordering: 'per-key' | 'none',
      publisher: Parameters<typeof relay>[0]['publisher'],
      batchSize = 100,
    ) => {
      const tables = { schema };
      await migrate(db, { tables });
      const r = relay({
        db,
        tables,
        publisher,
        ordering,
        batchSize,
        pollMs: 60_000,
        listen: await listener(),
      });
      const drained = drainable(r);
      r.start();
      started.push(r);
      return async () => {
        const done = drained(N);
        await enqueue(db, batchOf('bench'), { tables });
        await done;
      };
    };
    const noop = fnPublisher(() => undefined);
    const perKey = await relayCase('bench_outbox_key', 'per-key', noop);
    const unordered = await relayCase('bench_outbox_none', 'none', noop);
    const perKey500 = await relayCase('bench_outbox_key500', 'per-key', noop, 500);
    const toRedis = await relayCase(
      'bench_outbox_redis',
      'per-key',
      redisStreamsPublisher({ redis, stream: 'bench:outbox', maxLen: 100_000 }),
    );

    // the floor: the same table shape, drained by the bare statement a hand-written relay would run
    await migrate(db, { tables: { schema: 'bench_outbox_raw' } });
    const rawDrain = async () => {
      await enqueue(db, batchOf('bench'), { tables: { schema: 'bench_outbox_raw' } });
      for (;;) {
        const res = await pool.query(
          `delete from bench_outbox_raw.outbox where id in (
             select id from bench_outbox_raw.outbox order by id limit 100 for update skip locked
           ) returning id, topic, key, type, payload, headers`,
        );
        if (res.rowCount === 0) return;
      }
    };

    const boss = new PgBoss({
      connectionString: env.postgresUrl,
      schema: 'bench_pgboss',
      supervise: false,
      schedule: false,
    });
    boss.on('error', () => {});
    await boss.start();
    await boss.createQueue('bench');
    const bossJobs = Array.from({ length: N }, (_, i) => ({ name: 'bench', data: { i } }));
    const bossWorker = async () => {
      for (;;) {
        const jobs = await boss.fetch<{ i: number }>('bench', { batchSize: 100 });
        if (jobs.length === 0) return;
        await boss.complete(
          'bench',
          jobs.map((j) => j.id),
        );
      }
    };
    const bossDrain = (workers: number) => async () => {
      await boss.insert(bossJobs);
      await Promise.all(Array.from({ length: workers }, bossWorker));
    };

    // enqueue cost inside a transaction the application already runs, next to the bare INSERT transaction
    await sql`create table if not exists bench_orders (id bigserial primary key, total int not null)`.execute(
      db,
    );
    await migrate(db, { tables: { schema: 'bench_outbox_enqueue' } });
    const bareTx = () =>
      db.transaction().execute(async (trx) => {
        await sql`insert into bench_orders (total) values (1)`.execute(trx);
      });
    // the same transaction with one more statement that writes almost nothing: the round trip any second
    // statement costs, which no enqueue (a statement of its own in the caller's transaction) can get under
    const txWithSecondInsert = () =>
      db.transaction().execute(async (trx) => {
        await sql`insert into bench_orders (total) values (1)`.execute(trx);
        await sql`insert into bench_orders (total) values (${2})`.execute(trx);
      });
    const txWithEnqueue = () =>
      db.transaction().execute(async (trx) => {
        await sql`insert into bench_orders (total) values (1)`.execute(trx);
        await enqueue(
          trx,
          { topic: 'orders', key: 'o', type: 'created', payload: { total: 1 } },
          {
            tables: { schema: 'bench_outbox_enqueue' },
          },
        );
      });
    const txWithQuietEnqueue = () =>
      db.transaction().execute(async (trx) => {
        await sql`insert into bench_orders (total) values (1)`.execute(trx);
        await enqueue(
          trx,
          { topic: 'orders', key: 'o', type: 'created', payload: { total: 1 } },
          { tables: { schema: 'bench_outbox_enqueue' }, notify: false },
        );
      });
    // the same outbox row written by a hand-written INSERT into a copy of the table without the NOTIFY trigger:
    // what any outbox row costs the transaction, whoever writes it
    await migrate(db, { tables: { schema: 'bench_outbox_plain' } });
    await sql`drop trigger if exists outbox_notify on bench_outbox_plain.outbox`.execute(db);
    const txWithPlainRow = () =>
      db.transaction().execute(async (trx) => {
        await sql`insert into bench_orders (total) values (1)`.execute(trx);
        await sql`insert into bench_outbox_plain.outbox (topic, key, type, payload, headers)
          values (${'orders'}, ${'o'}, ${'created'}, cast(${'{"total":1}'} as jsonb), cast(${'{}'} as jsonb))
          returning id::text as id`.execute(trx);
      });
    const x8 = (fn: () => Promise<unknown>) => () => Promise.all(Array.from({ length: 8 }, fn));

    // enqueue→publish latency at a light load: one message at a time, to a relay sleeping on LISTEN
    await migrate(db, { tables: { schema: 'bench_outbox_latency' } });
    const latencyRelay = relay({
      db,
      tables: { schema: 'bench_outbox_latency' },
      publisher: noop,
      pollMs: 60_000,
      listen: await listener(),
    });
    const latencyDrained = drainable(latencyRelay);
    latencyRelay.start();
    started.push(latencyRelay);
    const latencies: number[] = [];
    const oneLatency = async () => {
      const t0 = performance.now();
      const done = latencyDrained(1);
      await enqueue(
        db,
        { topic: 'orders', key: 'o', type: 'created', payload: { total: 1 } },
        { tables: { schema: 'bench_outbox_latency' } },
      );
      await done;
      latencies.push(performance.now() - t0);
    };
    // keep the tables small: the enqueue case's relay-less outbox would otherwise grow for the whole run
    const trimEnqueue = () =>
      sql`truncate bench_outbox_enqueue.outbox, bench_outbox_plain.outbox, bench_orders`.execute(db);

    return {
      pool,
      db,
      redis,
      listeners,
      started,
      boss,
      perKey,
      unordered,
      perKey500,
      toRedis,
      rawDrain,
      bossDrain,
      bareTx,
      txWithSecondInsert,
      txWithEnqueue,
      txWithQuietEnqueue,
      txWithPlainRow,
      oneLatency,
      latencies,
      x8,
      trimEnqueue,
    };
  },
  cases: (c) => [
    { name: 'raw DELETE SKIP LOCKED LIMIT 100 drain', ops: N, fn: c.rawDrain },
    { name: 'oms relay drain, no-op publisher, per-key', ops: N, fn: c.perKey },
    { name: 'oms relay drain, no-op publisher, unordered', ops: N, fn: c.unordered },
    { name: 'oms relay drain, no-op publisher, per-key, batchSize 500', ops: N, fn: c.perKey500 },
    { name: 'oms relay drain to Redis Streams, per-key', ops: N, fn: c.toRedis, redis: true },
    { name: 'pg-boss fetch+complete drain, 1 worker', ops: N, fn: c.bossDrain(1) },
    { name: 'pg-boss fetch+complete drain, 2 workers', ops: N, fn: c.bossDrain(2) },
    { name: 'bare INSERT transaction c1', fn: c.bareTx },
    { name: 'INSERT + second bare INSERT transaction c1', fn: c.txWithSecondInsert },
    { name: 'INSERT + enqueue transaction c1', fn: c.txWithEnqueue },
    { name: 'INSERT + enqueue (notify: false) transaction c1', fn: c.txWithQuietEnqueue },
    { name: 'INSERT + plain outbox-row INSERT transaction c1', fn: c.txWithPlainRow },
    { name: 'bare INSERT transaction c8', ops: 8, fn: c.x8(c.bareTx) },
    { name: 'INSERT + enqueue transaction c8', ops: 8, fn: c.x8(c.txWithEnqueue) },
    { name: 'INSERT + enqueue (notify: false) transaction c8', ops: 8, fn: c.x8(c.txWithQuietEnqueue) },
    { name: 'INSERT + plain outbox-row INSERT transaction c8', ops: 8, fn: c.x8(c.txWithPlainRow) },
    { name: 'enqueue→publish latency, LISTEN, light load (p50)', fn: c.oneLatency },
  ],
  ratios: [
    {
      name: 'relay (per-key) drain time / raw DELETE floor',
      numerator: 'oms relay drain, no-op publisher, per-key',
      denominator: 'raw DELETE SKIP LOCKED LIMIT 100 drain',
    },
    {
      name: 'pg-boss (1 worker) drain time / relay (per-key)',
      numerator: 'pg-boss fetch+complete drain, 1 worker',
      denominator: 'oms relay drain, no-op publisher, per-key',
      goal: '>= 8',
    },
    {
      name: 'pg-boss (1 worker) drain time / raw DELETE floor (the most any relay could reach here)',
      numerator: 'pg-boss fetch+complete drain, 1 worker',
      denominator: 'raw DELETE SKIP LOCKED LIMIT 100 drain',
    },
    {
      name: 'per-key / unordered drain time',
      numerator: 'oms relay drain, no-op publisher, per-key',
      denominator: 'oms relay drain, no-op publisher, unordered',
      goal: '<= 2',
    },
    {
      name: 'INSERT + enqueue / bare INSERT transaction, c1',
      numerator: 'INSERT + enqueue transaction c1',
      denominator: 'bare INSERT transaction c1',
      goal: '<= 1.2',
    },
    {
      name: 'INSERT + enqueue / bare INSERT transaction, c8',
      numerator: 'INSERT + enqueue transaction c8',
      denominator: 'bare INSERT transaction c8',
      goal: '<= 1.2',
    },
    {
      name: 'INSERT + second bare INSERT / bare INSERT transaction, c1 (one more round trip: the floor)',
      numerator: 'INSERT + second bare INSERT transaction c1',
      denominator: 'bare INSERT transaction c1',
    },
    {
      name: 'INSERT + enqueue (notify: false) / bare INSERT transaction, c1',
      numerator: 'INSERT + enqueue (notify: false) transaction c1',
      denominator: 'bare INSERT transaction c1',
    },
    {
      name: 'INSERT + enqueue (notify: false) / bare INSERT transaction, c8',
      numerator: 'INSERT + enqueue (notify: false) transaction c8',
      denominator: 'bare INSERT transaction c8',
    },
    {
      name: 'INSERT + plain outbox-row INSERT / bare INSERT transaction, c1 (the extra statement alone)',
      numerator: 'INSERT + plain outbox-row INSERT transaction c1',
      denominator: 'bare INSERT transaction c1',
    },
    {
      name: 'time enqueue adds / time a plain outbox-row INSERT adds, c1',
      numerator: 'INSERT + enqueue transaction c1',
      denominator: 'INSERT + plain outbox-row INSERT transaction c1',
      subtract: 'bare INSERT transaction c1',
    },
    {
      name: 'pg-boss (1 worker) drain time / relay (per-key, batchSize 500)',
      numerator: 'pg-boss fetch+complete drain, 1 worker',
      denominator: 'oms relay drain, no-op publisher, per-key, batchSize 500',
    },
  ],
  async teardown(c) {
    // the harness reports each case's p50; the tail of the latency case is printed here
    const l = [...c.latencies].sort((a, b) => a - b);
    const at = (q: number) => l[Math.min(l.length - 1, Math.floor(q * l.length))]?.toFixed(2);
    process.stdout.write(
      `enqueue→publish latency over ${l.length} messages: p50 ${at(0.5)} ms, p99 ${at(0.99)} ms\n`,
    );
    await Promise.all(c.started.map((r) => r.stop({ drain: false })));
    await c.trimEnqueue().catch(() => {});
    await c.boss.stop({ graceful: false }).catch(() => {});
    for (const l of c.listeners) await l.end().catch(() => {});
    c.redis.disconnect();
    await c.db.destroy();
  },
});
