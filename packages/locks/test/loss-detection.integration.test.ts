import { setTimeout as sleep } from 'node:timers/promises';
import { timerLag, usePostgres, useRedis } from '@oms/testkit';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { isOmsLocksError, type Locks } from '../src/index.js';
import { postgresLocks } from '../src/postgres/index.js';
import { redisLocks } from '../src/redis/index.js';

// These servers belong to this file, so they can be paused (SIGSTOP) past the lease ttl.
const redis = useRedis({ dedicated: true });
const db = usePostgres({ dedicated: true });

beforeAll(async () => {
  await postgresLocks({ pool: db.pool({ max: 1 }), strategy: 'lease' }).migrate();
});

let paused: { resume(): void } | undefined;
afterEach(() => {
  paused?.resume();
  paused = undefined;
});

const TTL = 1_000;

const backends: [string, () => Locks, { pause(): void; resume(): void }][] = [
  ['Redis', () => redisLocks({ redis: redis.client(), prefix: redis.prefix, ttlMs: TTL }), redis],
  [
    'PostgreSQL advisory',
    () => postgresLocks({ pool: db.pool({ max: 4 }), strategy: 'advisory', ttlMs: TTL }),
    db,
  ],
  ['PostgreSQL lease', () => postgresLocks({ pool: db.pool({ max: 4 }), strategy: 'lease', ttlMs: TTL }), db],
];

describe.each(backends)('loss detection on %s with the server paused past the ttl', (name, make, server) => {
  it('aborts lease.signal within the ttl of the last extension, before anyone else acquires; withLock rejects LOST', async () => {
    const locks = make();
    const extendedAt: number[] = [];
    locks.on('extended', (e) => extendedAt.push(e.at));
    const key = `loss:${name}`;
    const lease = await locks.acquire(key);
    const acquiredSent = Date.now();
    let abortedAt = 0;
    lease.signal.addEventListener('abort', () => {
      abortedAt = Date.now();
    });
    const fn = locks.withLock(`${key}:with`, () => sleep(20_000).then(() => 'too late'));
    fn.catch(() => {});
    // this process's own stalls on a loaded machine delay the abort too; the bound allows for what was measured
    const lag = timerLag();
    await sleep(TTL / 2); // at least one extension goes through
    server.pause();
    paused = server;
    const pausedAt = Date.now();
    const outcome = await fn.then(
      () => 'resolved',
      (e) => (isOmsLocksError(e) ? e.code : String(e)),
    );
    expect(outcome).toBe('ERR_OMS_LOCKS_LOST');
    const deadline = Date.now() + 5_000;
    while (!lease.signal.aborted && Date.now() < deadline) await sleep(5);
    expect(lease.signal.aborted).toBe(true);
    lag.stop();
    const lastExtension = Math.max(acquiredSent - 50, ...extendedAt.filter((t) => t <= pausedAt));
    expect(
      abortedAt - lastExtension,
      `aborted ${abortedAt - lastExtension} ms after the last extension (stalls ${lag.total().toFixed(1)} ms)`,
    ).toBeLessThanOrEqual(TTL + lag.total());
    await sleep(TTL); // well past the server-side expiry
    server.resume();
    paused = undefined;
    const other = make();
    const l2 = await other.acquire(key, { waitMs: 10_000 });
    expect(Date.now()).toBeGreaterThan(abortedAt);
    expect(l2.fencingToken).toBeGreaterThan(lease.fencingToken);
    await l2.release();
    await Promise.all([locks.close(), other.close()]);
  });
});
