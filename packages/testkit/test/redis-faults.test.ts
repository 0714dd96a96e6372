import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { useRedis } from '../src/use.js';

const refused = (port: number) =>
  new Promise<string>((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });

describe('a throwaway Redis', () => {
  const redis = useRedis({ dedicated: true });

  it('kill() makes a fail-fast client reject at once and refuses new connections', async () => {
    const client = redis.client({ enableOfflineQueue: false, maxRetriesPerRequest: 0, lazyConnect: true });
    await client.connect();
    expect(await client.ping()).toBe('PONG');
    await redis.kill();
    const started = Date.now();
    await expect(client.ping()).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(1_000);
    expect(await refused(Number(new URL(redis.url).port))).toBe('ECONNREFUSED');
  });

  it('restart() brings it back on the same port, empty', async () => {
    await redis.restart();
    const client = redis.client();
    expect(await client.ping()).toBe('PONG');
    expect(await client.dbsize()).toBe(0);
  });

  it('pause() makes commands time out; resume() answers them', async () => {
    const client = redis.client({ commandTimeout: 300 });
    await client.set(`${redis.prefix}k`, 'v');
    redis.pause();
    await expect(client.get(`${redis.prefix}k`)).rejects.toThrow(/timed out/i);
    redis.resume();
    expect(await client.get(`${redis.prefix}k`)).toBe('v');
  });
});
