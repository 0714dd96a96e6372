import { fileURLToPath } from 'node:url';
import { spawnWorkers, usePostgres, useRedis } from '@oms/testkit';
import { beforeAll, describe, expect, it } from 'vitest';
import { postgresLocks } from '../src/postgres/index.js';
import { type BackendSpec, open } from './fixtures/backends.js';

const holder = fileURLToPath(new URL('./fixtures/holder.ts', import.meta.url));
const db = usePostgres();
const redis = useRedis();

beforeAll(async () => {
  await postgresLocks({ pool: db.pool({ max: 1 }), strategy: 'lease' }).migrate();
});

async function killHolder(spec: BackendSpec, key: string, ttlMs: number) {
  const group = spawnWorkers(1, holder, { spec, key, ttlMs }, { timeoutMs: 60_000 });
  const token = await new Promise<bigint>((resolve) => {
    const off = group.on('message', (_i, data) => {
      off();
      resolve(BigInt((data as { token: string }).token));
    });
  });
  group.kill(0, 'SIGKILL');
  const [outcome] = await group.outcomes;
  expect(outcome?.ok).toBe(false);
  return { token, killedAt: Date.now() };
}

describe.each([
  ['Redis', (): BackendSpec => ({ kind: 'redis', url: redis.url, prefix: `${redis.prefix}crash:` })],
  ['PostgreSQL lease', (): BackendSpec => ({ kind: 'lease', url: db.url })],
])('a SIGKILLed holder on %s', (_name, spec) => {
  it('leaves the lock taken until its ttl runs out, then it is acquirable with a higher token', async () => {
    const ttlMs = 1_500;
    const { token, killedAt } = await killHolder(spec(), 'crash-key', ttlMs);
    const { locks, close } = open(spec(), { ttlMs: 5_000 });
    expect(await locks.tryAcquire('crash-key')).toBeNull();
    const lease = await locks.acquire('crash-key', { waitMs: 10_000 });
    const after = Date.now() - killedAt;
    expect(lease.fencingToken).toBeGreaterThan(token);
    expect(after).toBeLessThanOrEqual(ttlMs + 1_000);
    await lease.release();
    await close();
  });
});

describe('a SIGKILLed holder on PostgreSQL advisory', () => {
  it('frees the lock as soon as its connection dies, long before its ttl', async () => {
    const spec: BackendSpec = { kind: 'advisory', url: db.url };
    const { token, killedAt } = await killHolder(spec, 'crash-key', 60_000);
    const { locks, close } = open(spec);
    const lease = await locks.acquire('crash-key', { waitMs: 10_000 });
    expect(lease.fencingToken).toBeGreaterThan(token);
    expect(Date.now() - killedAt).toBeLessThan(5_000);
    await lease.release();
    await close();
  });
});
