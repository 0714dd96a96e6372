import { createRequire } from 'node:module';
import { until, useRedis } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { createVerifier, isOmsAuthError, type Jwk, localJwks, revocationList } from '../src/index.js';
import { type RedisStreams, redisRevocationStore } from '../src/redis/index.js';
import { AUD, ISS, makeKey, sign } from './fixtures/tokens.js';

const redis = useRedis();

const codeOf = (p: Promise<unknown>) =>
  p.then(
    () => 'resolved',
    (e: unknown) => (isOmsAuthError(e) ? e.code : `not an OmsAuthError: ${String(e)}`),
  );

describe('redisRevocationStore', () => {
  it('shares a revocation between two instances on two connections: the other refuses it after its next poll', async () => {
    const key = await makeKey('ES256', 'k1');
    const store = (c: RedisStreams) => redisRevocationStore({ redis: c, key: `${redis.prefix}revocations` });
    const instance = () => {
      const revocations = revocationList({ store: store(redis.client()), pollMs: 50 });
      const verifier = createVerifier({
        issuer: ISS,
        audience: AUD,
        algorithms: ['ES256'],
        keys: localJwks({ keys: [key.publicJwk as Jwk] }),
        revocations,
      });
      return { revocations, verifier };
    };
    const a = instance();
    const b = instance();
    const now = Math.floor(Date.now() / 1000);
    const token = await sign(key, { claims: { jti: 'j-1', sub: 'alice', iat: now - 10, exp: now + 600 } });
    const bobs = await sign(key, { claims: { jti: 'j-2', sub: 'bob', iat: now - 10, exp: now + 600 } });
    expect(await codeOf(a.verifier.verify(token))).toBe('resolved');
    expect(await codeOf(b.verifier.verify(token))).toBe('resolved'); // now cached in b

    await a.revocations.revoke({ subject: 'alice' });
    expect(await codeOf(a.verifier.verify(token))).toBe('ERR_OMS_AUTH_TOKEN_REVOKED');
    // b learns it from its own poll of the stream, and refuses its cached verification too
    await until(async () => (await codeOf(b.verifier.verify(token))) === 'ERR_OMS_AUTH_TOKEN_REVOKED', {
      timeoutMs: 10_000,
      what: 'the second instance to refuse the token revoked on the first',
    });
    expect(await codeOf(b.verifier.verify(bobs))).toBe('resolved');

    // an instance that starts later reads every revocation kept
    const c = instance();
    expect(await codeOf(c.verifier.verify(token))).toBe('ERR_OMS_AUTH_TOKEN_REVOKED');
    await Promise.all([a, b, c].map((i) => i.revocations.close()));
  });

  it('reads only entries after its cursor, page by page', async () => {
    const store = redisRevocationStore({ redis: redis.client(), key: `${redis.prefix}paged` });
    const until_ = Date.now() + 60_000;
    // one connection sends in call order, so the stream holds j0..j1204 in order
    await Promise.all(
      Array.from({ length: 1_205 }, (_, i) =>
        store.add({ kind: 'jti', value: `j${i}`, notBefore: Date.now(), until: until_ }),
      ),
    );
    const first = await store.read(undefined);
    expect(first.revocations).toHaveLength(1_205);
    expect(first.revocations[1_204]?.value).toBe('j1204');
    await store.add({ kind: 'subject', value: 'alice', notBefore: Date.now(), until: until_ });
    const next = await store.read(first.cursor);
    expect(next.revocations.map((r) => r.value)).toEqual(['alice']);
  });

  it('rejects with ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE when Redis fails', async () => {
    const require = createRequire(import.meta.resolve('@oms/testkit'));
    type Client = RedisStreams & { on(e: 'error', fn: () => void): unknown; disconnect(): void };
    const { Redis } = require('ioredis') as { Redis: new (url: string, o: object) => Client };
    const dead = new Redis('redis://127.0.0.1:1', {
      enableOfflineQueue: false,
      retryStrategy: () => null,
      lazyConnect: true,
    });
    dead.on('error', () => {});
    const store = redisRevocationStore({ redis: dead });
    await expect(
      store.add({ kind: 'jti', value: 'x', notBefore: 0, until: Date.now() + 1_000 }),
    ).rejects.toMatchObject({ code: 'ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE', httpStatus: 503 });
    await expect(store.read(undefined)).rejects.toMatchObject({
      code: 'ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE',
    });
    dead.disconnect();
  });
});
