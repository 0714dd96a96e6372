import { describe, expect, it } from 'vitest';
import { useRedisCluster } from '../src/use.js';

describe('a 3-master Redis Cluster', () => {
  const cluster = useRedisCluster({ masters: 3 });

  it('has three masters that split the slots', async () => {
    const client = cluster.client();
    const slots = await client.cluster('SLOTS');
    const owners = new Set(slots.map((s) => s[2]?.[1]));
    expect(owners.size).toBe(3);
    const covered = slots.reduce((n, [from, to]) => n + (to - from + 1), 0);
    expect(covered).toBe(16384);
  });

  it('serves hash-tagged keys from one slot, so a script may touch them together', async () => {
    const client = cluster.client();
    const a = `${cluster.prefix}{user:1}:a`;
    const b = `${cluster.prefix}{user:1}:b`;
    const [slotA, slotB] = await Promise.all([client.cluster('KEYSLOT', a), client.cluster('KEYSLOT', b)]);
    expect(slotA).toBe(slotB);
    const result = await client.eval(
      "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return redis.call('MGET', KEYS[1], KEYS[2])",
      2,
      a,
      b,
      'x',
    );
    expect(result).toEqual(['x', 'x']);
  });

  it('rejects a script over keys in different slots (it really is a cluster)', async () => {
    const client = cluster.client();
    await expect(
      client.eval(
        "return redis.call('MGET', KEYS[1], KEYS[2])",
        2,
        `${cluster.prefix}{a}`,
        `${cluster.prefix}{b}`,
      ),
    ).rejects.toThrow(/CROSSSLOT/);
  });

  it('spreads untagged keys over more than one master', async () => {
    const client = cluster.client();
    const keys = Array.from({ length: 30 }, (_, i) => `${cluster.prefix}k${i}`);
    await Promise.all(keys.map((k) => client.set(k, '1')));
    const perNode = await Promise.all(client.nodes('master').map((n) => n.dbsize()));
    expect(perNode.filter((n) => n > 0).length).toBeGreaterThan(1);
  });
});
