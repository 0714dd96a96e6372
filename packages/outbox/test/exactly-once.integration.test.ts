import { fileURLToPath } from 'node:url';
import { spawnWorkers, until, usePostgres, useRedis, type WorkerGroup } from '@oms/testkit';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { migrate, type OutboxDb, type RelayStats } from '../src/index.js';
import { appliedLog, createAppliedLog } from './fixtures/applied.js';
import type { ConsumerInput } from './fixtures/consumer-worker.js';
import { freshTables, openDb } from './fixtures/db.js';
import type { ProducerInput, Written } from './fixtures/producer-worker.js';
import type { RelayWorkerInput } from './fixtures/relay-worker.js';
import { Watch } from './fixtures/watch.js';

const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
// OMS_OUTBOX_SOAK_MESSAGES=100000 is the acceptance size: on an idle machine it takes minutes, on a
// loaded 2-core one far longer, so the default run uses a fifth of it with the same shape and the same faults
const TOTAL = Number(process.env.OMS_OUTBOX_SOAK_MESSAGES ?? 20_000);
const KEYS = 1_000;

const pgServer = usePostgres({ dedicated: true });
const redisServer = useRedis();
let db: OutboxDb;
let close: () => Promise<void>;
beforeAll(() => {
  ({ db, close } = openDb(pgServer.url, 4));
});
afterAll(() => close());

const watch = new Watch();
afterAll(() => watch.killAll());

function startRelay(input: RelayWorkerInput) {
  const group: WorkerGroup<RelayStats> = watch.add(
    spawnWorkers(1, fixture('relay-worker.ts'), input, { timeoutMs: 900_000 }),
    'a relay',
  );
  const started = new Promise<void>((resolve) => {
    const off = group.on('message', (_i, m) => {
      if ((m as { started?: number }).started) {
        off();
        resolve();
      }
    });
  });
  return { group, started };
}

describe('exactly once under crashes', () => {
  it(`${TOTAL} messages from 4 producers (10% rolled back), 2 relays SIGKILLed 5 times, PostgreSQL restarted once, 2 inbox consumers`, async () => {
    const tables = freshTables();
    await migrate(db, { tables });
    await createAppliedLog(db, tables.schema!);
    const redis = redisServer.client();
    const prefix = `${redisServer.prefix}orders:p`;
    const group = 'app';
    for (const p of [0, 1]) await redis.xgroup('CREATE', `${prefix}${p}`, group, '0', 'MKSTREAM');

    const relayInput: RelayWorkerInput = {
      url: pgServer.url,
      tables,
      leaseMs: 2_000,
      pollMs: 200,
      batchSize: 200,
      sink: { kind: 'redis', url: redisServer.url, prefix, partitions: 2 },
    };
    const relays = [startRelay(relayInput), startRelay(relayInput)];
    const consumerInput: ConsumerInput = {
      url: pgServer.url,
      tables,
      redisUrl: redisServer.url,
      prefix,
      group,
    };
    const consumers = watch.add(
      spawnWorkers<ConsumerInput, { processed: number; duplicate: number; failures: number }>(
        2,
        fixture('consumer-worker.ts'),
        consumerInput,
        { timeoutMs: 900_000 },
      ),
      'a consumer',
    );
    await Promise.all(relays.map((r) => r.started));

    const producerInput: ProducerInput = {
      url: pgServer.url,
      tables,
      messages: TOTAL / 4,
      keys: KEYS,
      rollbackRate: 0.1,
    };
    let producersDone = false;
    const producing = watch
      .add(
        spawnWorkers<ProducerInput, { committed: Written; rolledBack: Written }>(
          4,
          fixture('producer-worker.ts'),
          producerInput,
          { timeoutMs: 900_000 },
        ),
        'a producer',
      )
      .outcomes.finally(() => {
        producersDone = true;
      });

    const applied = async () => {
      watch.check(); // a producer, consumer or relay that died on its own fails the test now, with its stderr
      for (;;) {
        try {
          const res = await sql<{
            n: string;
          }>`select count(*) as n from ${sql.id(tables.schema!, 'applied')}`.execute(db);
          return Number(res.rows[0]?.n);
        } catch {
          await new Promise((res) => setTimeout(res, 200)); // the restart
        }
      }
    };

    let kills = 0;
    let restarted = false;
    while (kills < 5 || !restarted) {
      const before = await applied();
      await until(
        async () =>
          (await applied()) >= Math.min(TOTAL, before + TOTAL / 12) || (kills >= 5 && producersDone),
        {
          timeoutMs: 300_000,
          intervalMs: 100,
          what: `progress after ${kills} kills (applied ${before})`,
        },
      );
      await new Promise((res) => setTimeout(res, Math.random() * 300));
      if (kills < 5) {
        const i = Math.floor(Math.random() * 2);
        watch.end(relays[i]!.group, () => relays[i]!.group.kill(0, 'SIGKILL'));
        const [outcome] = await relays[i]!.group.outcomes;
        expect(outcome?.ok).toBe(false);
        kills++;
        relays[i] = startRelay(relayInput);
        await relays[i]!.started;
      }
      // restart once the writers are done, so no commit of theirs is left in doubt
      if (!restarted && kills >= 3 && producersDone) {
        await pgServer.restart();
        restarted = true;
      }
    }

    const outcomes = await producing;
    const failed = outcomes.find((o) => !o.ok);
    if (failed && !failed.ok) throw failed.error;
    const results = outcomes.map((o) => (o as { value: { committed: Written; rolledBack: Written } }).value);
    const committed = results.flatMap((r) => r.committed);
    const rolledBack = results.flatMap((r) => r.rolledBack);
    expect(committed).toHaveLength(TOTAL);
    expect(rolledBack.length).toBeGreaterThan(0);

    await until(async () => (await applied()) >= TOTAL, {
      timeoutMs: 600_000,
      intervalMs: 200,
      what: `all ${TOTAL} applied`,
    });
    // a moment for any stray duplicate to arrive, so "exactly once" is checked after the fact, not during
    await new Promise((res) => setTimeout(res, 1_000));
    watch.end(consumers, () => {
      consumers.send(0, 'stop');
      consumers.send(1, 'stop');
    });
    for (const r of relays) watch.end(r.group, () => r.group.send(0, 'stop'));
    const [consumerOutcomes] = await Promise.all([
      consumers.outcomes,
      ...relays.map((r) => r.group.outcomes),
    ]);
    for (const o of consumerOutcomes) expect(o.ok, String(!o.ok && o.error)).toBe(true);

    const log = await appliedLog(db, tables.schema!);
    // exactly once: every committed message once, nothing else
    expect(log).toHaveLength(TOTAL);
    expect(new Set(log.map((r) => r.message_id)).size).toBe(TOTAL);
    const want = new Set(committed.map(([k, s]) => `${k}/${s}`));
    const got = new Set(log.map((r) => `${r.key}/${r.seq}`));
    expect(got.size).toBe(TOTAL);
    for (const [k, s] of rolledBack)
      expect(got.has(`${k}/${s}`), `rolled back ${k}/${s} applied`).toBe(false);
    for (const x of want) if (!got.has(x)) expect.fail(`committed ${x} never applied`);
    // per-key order in the consumers' applied log
    const last = new Map<string, number>();
    for (const r of log) {
      const prev = last.get(r.key) ?? -1;
      if (r.seq <= prev) expect.fail(`key ${r.key}: seq ${r.seq} applied after ${prev}`);
      last.set(r.key, r.seq);
    }
    expect(kills).toBe(5);
    expect(restarted).toBe(true);
  }, 900_000);
});
