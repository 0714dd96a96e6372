import { createRequire } from 'node:module';
import { forkWorkers, useRedis } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import type { Jwk } from '../src/index.js';
import { type RedisSetNx, redisReplayStore } from '../src/redis/index.js';
import { proof, proofKey } from './fixtures/dpop.js';
import type { ReplayInput } from './fixtures/dpop-replay-worker.js';
import { makeKey, sign } from './fixtures/tokens.js';

const redis = useRedis();
const worker = new URL('./fixtures/dpop-replay-worker.ts', import.meta.url).pathname;

describe('redisReplayStore', () => {
  it('accepts each proof exactly once across two processes sharing one Redis', async () => {
    const issuer = await makeKey('ES256', 'idp-1');
    const client = await proofKey();
    const now = Math.floor(Date.now() / 1000);
    const token = await sign(issuer, { claims: { iat: now, exp: now + 600, cnf: { jkt: client.jkt } } });
    const proofs = await Promise.all(Array.from({ length: 20 }, () => proof(client, { accessToken: token })));
    const input: ReplayInput = {
      redisUrl: redis.url,
      prefix: redis.prefix,
      issuerJwk: issuer.publicJwk as Jwk,
      token,
      proofs,
    };
    const [a, b] = (await forkWorkers<ReplayInput, string[]>(2, worker, input, { timeoutMs: 60_000 })) as [
      string[],
      string[],
    ];
    for (let i = 0; i < proofs.length; i++) {
      const both = [a[i], b[i]].sort();
      expect(both, `proof ${i}`).toEqual(['ERR_OMS_AUTH_DPOP_REPLAY', 'ok']);
    }
  });

  it('answers 503 ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE when Redis fails, never accepting unchecked', async () => {
    // a real client of a port nobody listens on, failing fast instead of queueing
    const require = createRequire(import.meta.resolve('@oms/testkit'));
    type Client = RedisSetNx & { on(e: 'error', fn: () => void): unknown; disconnect(): void };
    const { Redis } = require('ioredis') as { Redis: new (url: string, o: object) => Client };
    const dead = new Redis('redis://127.0.0.1:1', {
      enableOfflineQueue: false,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    dead.on('error', () => {});
    const store = redisReplayStore({ redis: dead });
    await expect(store.remember('id', 1000)).rejects.toMatchObject({
      code: 'ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE',
      httpStatus: 503,
    });
    dead.disconnect();
  });

  it('expires ids on the Redis clock', async () => {
    const c = redis.client();
    const store = redisReplayStore({ redis: c, prefix: redis.prefix });
    expect(await store.remember('x', 100)).toBe(true);
    expect(await store.remember('x', 100)).toBe(false);
    const ttl = await c.pttl(`${redis.prefix}x`);
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(100);
  });
});
