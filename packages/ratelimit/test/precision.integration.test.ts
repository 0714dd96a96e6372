import { useRedis } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import { algorithmLua } from '../src/redis/scripts.js';

const redis = useRedis();

// A server TIME in µs where one absolute float per key (an empty-at time or a TAT near 1.7e15, ulp 0.25 µs)
// rounded the second same-instant charge: capacity 2 at 7/s, or gcra 7 per s with burst 2, admitted 1.
const NOW_US = 1_700_000_000_123_457;

/** Runs `calls` cost-1 charges of the algorithm's Lua on one key at one server instant. */
async function sameInstant(code: number, p1: number, p2: number, calls: number): Promise<number[]> {
  const script = `${algorithmLua(code)}
local now = tonumber(ARGV[1])
local out = {}
for i = 1, tonumber(ARGV[4]) do
  local ok = alg${code}(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), 0, now, 1, 1, 0)
  if ok then out[i] = 1 else out[i] = 0 end
end
return out`;
  const key = `${redis.prefix}prec:${code}:${p1}:${p2}`;
  return (await redis.client().eval(script, 1, key, NOW_US, p1, p2, calls)) as number[];
}

describe('Redis state kept as integer µs plus a small remainder', () => {
  it.each([
    [2, 7],
    [3, 7],
    [5, 7 / 3600],
    [3, 0.7],
  ])('a token bucket of capacity %s at %s/s admits its whole capacity in one µs', async (cap, perSec) => {
    const r = await sameInstant(1, cap, perSec / 1e6, cap + 1);
    expect(r).toEqual([...Array(cap).fill(1), 0]);
  });

  it.each([
    [7, 1000, 2],
    [7, 1000, 7],
    [9, 60_000, 3],
    [13, 3_600_000, 20],
  ])('gcra %s per %s ms with burst %s admits its whole burst in one µs', async (limit, periodMs, burst) => {
    const r = await sameInstant(2, (periodMs * 1000) / limit, burst, burst + 1);
    expect(r).toEqual([...Array(burst).fill(1), 0]);
  });
});
