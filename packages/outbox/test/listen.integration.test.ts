import { until, usePostgres } from '@oms/testkit';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue, isOmsOutboxError, migrate, type OutboxDb, relay } from '../src/index.js';
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

describe('pgListen on a client you passed in', () => {
  it('reports ERR_OMS_OUTBOX_LISTEN_LOST when PostgreSQL restarts, and the relay falls back to polling', async () => {
    const tables = freshTables();
    await migrate(db, { tables });
    const client = new pg.Client({ connectionString: pgServer.url });
    await client.connect();
    const rec = recorder();
    const r = relay({ db, tables, publisher: rec.publisher, listen: pgListen(client), pollMs: 30_000 });
    const listenErrors: unknown[] = [];
    r.on('error', (e) => {
      if (e.phase === 'listen') listenErrors.push(e.error);
    });
    let idle = 0;
    r.on('idle', () => idle++);
    r.start();
    await until(() => idle >= 1, { what: 'the relay to go idle' });
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
});
