import { until, usePostgres } from '@oms/testkit';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue, isOmsOutboxError, type Listen, migrate, type OutboxDb, relay } from '../src/index.js';
import { CLOSE_WAIT_MS } from '../src/listen-session.js';
import { pgListen } from '../src/postgres/index.js';
import { freshTables, openDb } from './fixtures/db.js';
import { recorder } from './fixtures/recorder.js';

// a server of this file's own: the test restarts it
const pgServer = usePostgres({ dedicated: true });
let db: OutboxDb;
let close: () => Promise<void>;
beforeAll(() => {
  ({ db, close } = openDb(pgServer.url, 4));
});
afterAll(() => close());

/** A relay on `listen` with a 30 s poll (so only a notification wakes it soon), and what it reported. */
function watchedRelay(tables: ReturnType<typeof freshTables>, listen: Listen) {
  const rec = recorder();
  const r = relay({ db, tables, publisher: rec.publisher, listen, pollMs: 30_000 });
  const listenErrors: unknown[] = [];
  r.on('error', (e) => {
    if (e.phase === 'listen') listenErrors.push(e.error);
  });
  const idle = { count: 0 };
  r.on('idle', () => idle.count++);
  return { r, rec, listenErrors, idle };
}

describe('pgListen on a client you passed in', () => {
  it('reports ERR_OMS_OUTBOX_LISTEN_LOST when PostgreSQL restarts, and the relay falls back to polling', async () => {
    const tables = freshTables();
    await migrate(db, { tables });
    const client = new pg.Client({ connectionString: pgServer.url });
    await client.connect();
    const { r, rec, listenErrors, idle } = watchedRelay(tables, pgListen(client));
    r.start();
    await until(() => idle.count >= 1, { what: 'the relay to go idle' });
    // notified while the session is alive
    await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 1 }, { tables });
    await until(() => rec.accepted.length === 1, { timeoutMs: 10_000, what: 'the notified publish' });

    await pgServer.restart();
    await until(() => listenErrors.length === 1, {
      timeoutMs: 20_000,
      what: 'the lost LISTEN to be reported',
    });
    const [lost] = listenErrors;
    expect(isOmsOutboxError(lost) && lost.code).toBe('ERR_OMS_OUTBOX_LISTEN_LOST');
    expect(isOmsOutboxError(lost) && lost.retryable).toBe(true);

    // nothing will notify any more; the relay finds the next message on its fallback poll, not after 30 s
    await until(
      async () => {
        try {
          await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 2 }, { tables });
          return true;
        } catch {
          return false; // the pool's first connections after the restart may fail
        }
      },
      { timeoutMs: 20_000, what: 'an enqueue after the restart' },
    );
    // within 20 s: the 30 s poll could not have found it
    await until(() => rec.accepted.length === 2, { timeoutMs: 20_000, what: 'the polled publish' });
    expect(listenErrors).toHaveLength(1);
    await r.stop();
    await client.end().catch(() => {});
  });

  it('listens again on a new client after its backend is terminated, and goes back to the 30 s poll', async () => {
    const tables = freshTables();
    await migrate(db, { tables });
    const channel = `${tables.schema}_outbox`;
    const listeners = async () =>
      (
        await sql<{ pid: number }>`select pid from pg_stat_activity
          where query = ${`LISTEN "${channel}"`} and datname = current_database()`.execute(db)
      ).rows.map((x) => x.pid);
    const client = new pg.Client({ connectionString: pgServer.url });
    client.on('error', () => {}); // the terminated session's error is the user's client's to handle
    await client.connect();
    const { r, rec, listenErrors, idle } = watchedRelay(tables, pgListen(client));
    r.start();
    const [first] = await until(
      async () => {
        const pids = await listeners();
        return idle.count >= 1 && pids.length === 1 ? pids : undefined;
      },
      { what: 'the relay to listen and go idle' },
    );
    await sql`select pg_terminate_backend(${first})`.execute(db);
    await until(() => listenErrors.length === 1, {
      timeoutMs: 10_000,
      what: 'the lost LISTEN to be reported',
    });
    const [lost] = listenErrors;
    expect(isOmsOutboxError(lost) && lost.code).toBe('ERR_OMS_OUTBOX_LISTEN_LOST');
    // the relay subscribes again after 1 s, on a client pgListen connects with the same settings
    await until(
      async () => {
        const pids = await listeners();
        return pids.length === 1 && pids[0] !== first;
      },
      { timeoutMs: 15_000, what: 'a new LISTEN session' },
    );
    // back on the 30 s poll: a 1 s poll would go idle about 3 times in 3 s; the look after the restore is 1
    await new Promise((res) => setTimeout(res, 500));
    const idleBefore = idle.count;
    await new Promise((res) => setTimeout(res, 3_000));
    expect(idle.count - idleBefore).toBeLessThanOrEqual(1);
    const t0 = Date.now();
    await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 1 }, { tables });
    await until(() => rec.accepted.length === 1, {
      timeoutMs: 10_000,
      what: 'a publish woken by the new session',
    });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(listenErrors).toHaveLength(1);
    await r.stop();
    // the replacement was pgListen's own: the stop ends it
    await until(async () => (await listeners()).length === 0, { what: 'the replacement ended by stop' });
    await client.end().catch(() => {});
  });
});

describe('a relay whose listen subscription fails', () => {
  it('reports it once, polls meanwhile, and subscribes again until it works', async () => {
    const tables = freshTables();
    await migrate(db, { tables });
    let calls = 0;
    let notify: (() => void) | undefined;
    let unsubscribed = 0;
    // a structural Listen whose first two subscribes fail (a database that is not up yet)
    const listen: Listen = {
      async subscribe(_channel, onNotify) {
        calls++;
        if (calls <= 2) throw new Error(`not up yet (${calls})`);
        notify = onNotify;
        return async () => {
          unsubscribed++;
        };
      },
    };
    const { r, rec, listenErrors } = watchedRelay(tables, listen);
    r.start();
    // polled while the subscription is down (1 s, not 30 s)
    await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 1 }, { tables, notify: false });
    await until(() => rec.accepted.length === 1, { timeoutMs: 10_000, what: 'the polled publish' });
    // 1 s, then 2 s later: the third subscribe works
    await until(() => notify !== undefined, { timeoutMs: 15_000, what: 'the third subscribe' });
    expect(calls).toBe(3);
    expect(listenErrors).toHaveLength(1);
    expect((listenErrors[0] as Error).message).toBe('not up yet (1)');
    await new Promise((res) => setTimeout(res, 300));
    // back on the 30 s poll: without the notification, this message waits
    await enqueue(db, { topic: 't', key: 'k', type: 'x', payload: 2 }, { tables, notify: false });
    await new Promise((res) => setTimeout(res, 2_500));
    expect(rec.accepted).toHaveLength(1);
    notify?.();
    await until(() => rec.accepted.length === 2, { timeoutMs: 10_000, what: 'the notified publish' });
    await r.stop();
    expect(unsubscribed).toBe(1);
    expect(calls).toBe(3);
  });
});

describe('a relay whose listen subscribe never answers', () => {
  it('stops within the close bound, reports it, and drops the subscription when it answers late', async () => {
    const tables = freshTables();
    await migrate(db, { tables });
    let answer: ((unsubscribe: () => Promise<void>) => void) | undefined;
    let unsubscribed = 0;
    // a connect that hangs (a firewall dropping packets): subscribe is called and never settles on its own
    const listen: Listen = {
      subscribe: () =>
        new Promise((resolve) => {
          answer = resolve;
        }),
    };
    const { r, listenErrors } = watchedRelay(tables, listen);
    r.start();
    await until(() => answer !== undefined, { what: 'the subscribe call' });
    const t0 = performance.now();
    await r.stop();
    const took = performance.now() - t0;
    expect(took).toBeGreaterThanOrEqual(CLOSE_WAIT_MS - 50);
    expect(took).toBeLessThan(CLOSE_WAIT_MS + 10_000);
    expect(r.state).toBe('stopped');
    expect(listenErrors).toHaveLength(1);
    expect(isOmsOutboxError(listenErrors[0]) && listenErrors[0].code).toBe('ERR_OMS_OUTBOX_LISTEN_LOST');
    // the late answer is unsubscribed at once, not kept
    answer?.(async () => {
      unsubscribed++;
    });
    await until(() => unsubscribed === 1, { what: 'the late subscription dropped' });
  }, 30_000);
});
