import { fileURLToPath } from 'node:url';
import { spawnWorkers, until, usePostgres, type WorkerGroup } from '@oms/testkit';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue, migrate, type OutboxDb, type RelayStats, relay } from '../src/index.js';
import { appliedLog, applyingPublisher, createAppliedLog } from './fixtures/applied.js';
import { freshTables, openDb } from './fixtures/db.js';
import type { RelayWorkerInput } from './fixtures/relay-worker.js';
import { Watch } from './fixtures/watch.js';

const worker = fileURLToPath(new URL('./fixtures/relay-worker.ts', import.meta.url));
const pgServer = usePostgres();
let db: OutboxDb;
let close: () => Promise<void>;
beforeAll(() => {
  ({ db, close } = openDb(pgServer.url, 8));
});
afterAll(() => close());

const watch = new Watch();
afterAll(() => watch.killAll());

function startRelay(input: RelayWorkerInput) {
  const group: WorkerGroup<RelayStats> = watch.add(
    spawnWorkers(1, worker, input, { timeoutMs: 240_000 }),
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

describe('relays killed with SIGKILL', () => {
  it('lose no message and break no key order: every message is applied exactly once, in key order', async () => {
    const tables = freshTables();
    await migrate(db, { tables });
    await createAppliedLog(db, tables.schema!);
    const keys = 40;
    const perKey = 50;
    const input: RelayWorkerInput = {
      url: pgServer.url,
      tables,
      leaseMs: 1_000,
      pollMs: 100,
      batchSize: 50,
      sink: { kind: 'apply' },
    };
    const relays = [startRelay(input), startRelay(input)];
    await Promise.all(relays.map((r) => r.started));
    let kills = 0;
    let written = 0;
    let writerWaiting = false;
    // the writers keep going while relays die: one writer per key, so per-writer order is key order.
    // Every tenth round waits for one more kill, so the run spans at least four kills however fast the machine
    // is: on a quiet one the relays would otherwise drain everything before the third.
    const writing = (async () => {
      for (let seq = 0; seq < perKey; seq++) {
        if (seq > 0 && seq % 10 === 0) {
          const want = seq / 10;
          writerWaiting = true;
          await until(() => kills >= want, { timeoutMs: 120_000, what: `kill ${want} before writing on` });
          writerWaiting = false;
        }
        await enqueue(
          db,
          Array.from({ length: keys }, (_, k) => ({ topic: 't', key: `k${k}`, type: 'x', payload: { seq } })),
          { tables },
        );
        written += keys;
        await new Promise((res) => setTimeout(res, 20));
      }
    })();
    const applied = async () => {
      watch.check();
      return Number(
        (await sql<{ n: string }>`select count(*) as n from ${sql.id(tables.schema!, 'applied')}`.execute(db))
          .rows[0]?.n,
      );
    };
    while (kills < 6) {
      const before = await applied();
      // kill after some progress, or once the relays have caught up with a writer that waits for this kill
      await until(
        async () => {
          const n = await applied();
          return n > before + 50 || n === keys * perKey || (writerWaiting && n === written);
        },
        {
          timeoutMs: 60_000,
          what: 'progress before the next kill',
        },
      );
      if ((await applied()) === keys * perKey) break;
      const i = kills % 2;
      watch.end(relays[i]!.group, () => relays[i]!.group.kill(0, 'SIGKILL'));
      const [outcome] = await relays[i]!.group.outcomes;
      expect(outcome?.ok).toBe(false);
      kills++;
      relays[i] = startRelay(input);
      await relays[i]!.started;
    }
    await writing;
    await until(async () => (await applied()) === keys * perKey, {
      timeoutMs: 60_000,
      what: 'every message applied',
    });
    for (const r of relays) watch.end(r.group, () => r.group.send(0, 'stop'));
    await Promise.all(relays.map((r) => r.group.outcomes));
    expect(kills).toBeGreaterThanOrEqual(4);

    const log = await appliedLog(db, tables.schema!);
    expect(log).toHaveLength(keys * perKey);
    expect(new Set(log.map((r) => r.message_id)).size).toBe(keys * perKey);
    const byKey = new Map<string, number[]>();
    for (const r of log) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.seq]);
    expect(byKey.size).toBe(keys);
    for (const [key, seqs] of byKey)
      expect(seqs, `key ${key}`).toEqual(Array.from({ length: perKey }, (_, i) => i));
  }, 240_000);
});

describe('a relay frozen with SIGSTOP while holding claims', () => {
  it('has them reclaimed after leaseMs, and its late publish is a duplicate the inbox drops', async () => {
    const tables = freshTables();
    await migrate(db, { tables });
    await createAppliedLog(db, tables.schema!);
    const ids = await enqueue(
      db,
      Array.from({ length: 20 }, (_, i) => ({
        topic: 't',
        key: `k${i % 5}`,
        type: 'x',
        payload: { seq: Math.floor(i / 5) },
      })),
      { tables },
    );
    const leaseMs = 1_500;
    const frozen = startRelay({
      url: pgServer.url,
      tables,
      leaseMs,
      pollMs: 100,
      sink: { kind: 'apply' },
      hangFirstBatch: true,
    });
    const claimed = await new Promise<string[]>((resolve) => {
      frozen.group.on('message', (_i, m) => {
        const c = (m as { claimed?: string[] }).claimed;
        if (c) resolve(c);
      });
    });
    expect(claimed).toEqual(ids.slice(0, 5)); // the first wave: each key's head (the whole batch is claimed)
    frozen.group.kill(0, 'SIGSTOP');
    const stoppedAt = Date.now();
    const taker = relay({
      db,
      tables,
      publisher: applyingPublisher(db, tables, 'taker'),
      leaseMs,
      pollMs: 50,
    });
    let firstAt = 0;
    taker.on('published', () => {
      firstAt ||= Date.now();
    });
    taker.start();
    await until(async () => (await appliedLog(db, tables.schema!)).length === 20, {
      timeoutMs: 30_000,
      what: 'the frozen claims taken over',
    });
    // the last heartbeat was at most leaseMs/3 before the freeze, so the claim cannot lapse much sooner
    expect(firstAt - stoppedAt).toBeGreaterThanOrEqual(leaseMs - leaseMs / 3 - 100);
    frozen.group.kill(0, 'SIGCONT');
    // the frozen relay wakes up and publishes its stale batch: every apply is a duplicate
    await new Promise((res) => setTimeout(res, 2_500));
    frozen.group.send(0, 'stop');
    const [outcome] = await frozen.group.outcomes;
    await taker.stop();
    expect(outcome?.ok, String(!outcome?.ok && outcome?.error)).toBe(true);
    const log = await appliedLog(db, tables.schema!);
    expect(log).toHaveLength(20);
    expect(log.every((r) => r.by === 'taker')).toBe(true);
    const byKey = new Map<string, number[]>();
    for (const r of log) byKey.set(r.key, [...(byKey.get(r.key) ?? []), r.seq]);
    for (const seqs of byKey.values()) expect(seqs).toEqual([0, 1, 2, 3]);
  }, 120_000);
});
