import { describe, expect, it } from 'vitest';
import {
  adaptive,
  fixedWindow,
  gcra,
  isOmsRatelimitError,
  limitAll,
  memoryStore,
  rateLimiter,
  slidingWindow,
  tokenBucket,
} from '../src/index.js';
import { redisStore } from '../src/redis/index.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(isOmsRatelimitError(e), String(e)).toBe(true);
    return (e as { code: string }).code;
  }
  return undefined;
}

async function codeAsync(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
  } catch (e) {
    expect(isOmsRatelimitError(e), String(e)).toBe(true);
    return (e as { code: string }).code;
  }
  return undefined;
}

const BAD_NUMBERS = [
  0,
  -1,
  Number.NaN,
  Number.POSITIVE_INFINITY,
  Number.NEGATIVE_INFINITY,
  '5' as unknown as number,
];
const INVALID = 'ERR_OMS_RATELIMIT_INVALID_OPTION';

describe('bad options are rejected at construction with ERR_OMS_RATELIMIT_INVALID_OPTION', () => {
  it.each(BAD_NUMBERS)('limits and windows of %s', (bad) => {
    expect(code(() => tokenBucket({ capacity: bad, refillPerSec: 1 }))).toBe(INVALID);
    expect(code(() => tokenBucket({ capacity: 1, refillPerSec: bad }))).toBe(INVALID);
    expect(code(() => gcra({ limit: bad, periodMs: 1000 }))).toBe(INVALID);
    expect(code(() => gcra({ limit: 1, periodMs: bad }))).toBe(INVALID);
    expect(code(() => gcra({ limit: 1, periodMs: 1000, burst: bad }))).toBe(INVALID);
    expect(code(() => slidingWindow({ limit: bad, windowMs: 1000 }))).toBe(INVALID);
    expect(code(() => slidingWindow({ limit: 1, windowMs: bad, mode: 'log' }))).toBe(INVALID);
    expect(code(() => fixedWindow({ limit: bad, windowMs: 1000 }))).toBe(INVALID);
    expect(code(() => fixedWindow({ limit: 1, windowMs: bad }))).toBe(INVALID);
    expect(code(() => memoryStore({ maxKeys: bad }))).toBe(INVALID);
  });

  it('non-integers where an integer is required', () => {
    expect(code(() => tokenBucket({ capacity: 1.5, refillPerSec: 1 }))).toBe(INVALID);
    expect(code(() => gcra({ limit: 2.5, periodMs: 1000 }))).toBe(INVALID);
    expect(code(() => gcra({ limit: 2, periodMs: 1000, burst: 1.1 }))).toBe(INVALID);
    expect(code(() => slidingWindow({ limit: 3, windowMs: 10.5 }))).toBe(INVALID);
    expect(code(() => fixedWindow({ limit: 3.2, windowMs: 10 }))).toBe(INVALID);
    expect(code(() => memoryStore({ maxKeys: 10.5 }))).toBe(INVALID);
    // rates and periods may be fractional
    expect(code(() => tokenBucket({ capacity: 3, refillPerSec: 0.5 }))).toBeUndefined();
    expect(code(() => gcra({ limit: 3, periodMs: 0.5 }))).toBeUndefined();
  });

  it('bad limiter, store and adaptive options', () => {
    const algorithm = tokenBucket({ capacity: 1, refillPerSec: 1 });
    expect(code(() => rateLimiter({ name: '', algorithm }))).toBe(INVALID);
    expect(code(() => rateLimiter({ name: 'has space', algorithm }))).toBe(INVALID);
    expect(code(() => rateLimiter({ name: 'x', algorithm: {} as never }))).toBe(INVALID);
    expect(code(() => rateLimiter({ name: 'x', algorithm, onStoreError: 'maybe' as never }))).toBe(INVALID);
    expect(code(() => rateLimiter({ name: 'x', algorithm, timeoutMs: 0 }))).toBe(INVALID);
    expect(code(() => rateLimiter({ name: 'x', algorithm, insuranceFraction: 1.5 }))).toBe(INVALID);
    expect(code(() => rateLimiter({ name: 'x', algorithm, store: {} as never }))).toBe(INVALID);
    expect(code(() => slidingWindow({ limit: 1, windowMs: 1, mode: 'exact' as never }))).toBe(INVALID);
    expect(code(() => adaptive(algorithm, { load: () => 0, threshold: 1 }))).toBe(INVALID);
    expect(code(() => adaptive(algorithm, { load: () => 0, floor: 0 }))).toBe(INVALID);
    expect(code(() => adaptive(algorithm, {} as never))).toBe(INVALID);
    expect(code(() => redisStore({ redis: {} as never }))).toBe(INVALID);
    expect(code(() => redisStore({ redis: { evalsha() {}, eval() {} } as never, prefix: 'a{b' }))).toBe(
      INVALID,
    );
  });
});

describe('bad calls reject with a stable code', () => {
  const l = rateLimiter({ name: 'v', algorithm: tokenBucket({ capacity: 5, refillPerSec: 1 }) });

  it.each([
    ['an empty key', ''],
    ['a non-string key', 42],
    ['an undefined key', undefined],
    ['a key over 1 KiB', 'x'.repeat(1025)],
    ['a key over 1 KiB once UTF-8 encoded', 'é'.repeat(513)],
  ])('%s -> ERR_OMS_RATELIMIT_INVALID_KEY', async (_, key) => {
    expect(await codeAsync(l.consume(key as string))).toBe('ERR_OMS_RATELIMIT_INVALID_KEY');
    expect(await codeAsync(l.peek(key as string))).toBe('ERR_OMS_RATELIMIT_INVALID_KEY');
    expect(await codeAsync(l.reset(key as string))).toBe('ERR_OMS_RATELIMIT_INVALID_KEY');
  });

  it('accepts a key of exactly 1 KiB', async () => {
    expect((await l.consume('k'.repeat(1024))).allowed).toBe(true);
  });

  it.each([0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY])(
    'cost %s -> ERR_OMS_RATELIMIT_INVALID_COST',
    async (cost) => {
      expect(await codeAsync(l.consume('k', { cost }))).toBe('ERR_OMS_RATELIMIT_INVALID_COST');
    },
  );

  it('a cost above capacity can never pass, so it is an error rather than a denial', async () => {
    expect(await codeAsync(l.consume('k', { cost: 6 }))).toBe('ERR_OMS_RATELIMIT_COST_EXCEEDS_LIMIT');
    expect(await codeAsync(limitAll([{ limiter: l, key: 'k' }], { cost: 6 }))).toBe(
      'ERR_OMS_RATELIMIT_COST_EXCEEDS_LIMIT',
    );
    expect((await l.consume('k2', { cost: 5 })).allowed).toBe(true);
  });

  it('acquire without a valid maxWaitMs, limitAll without scopes or across store kinds', async () => {
    expect(await codeAsync(l.acquire('k', { maxWaitMs: -1 }))).toBe(INVALID);
    expect(await codeAsync(l.acquire('k', {} as never))).toBe(INVALID);
    expect(await codeAsync(limitAll([]))).toBe(INVALID);
    // a Redis store is checked before any command is sent, so this client is never called
    const redisLike = { evalsha() {}, eval() {}, script() {}, del() {}, status: 'ready' } as never;
    const remote = rateLimiter({
      name: 'o',
      algorithm: tokenBucket({ capacity: 5, refillPerSec: 1 }),
      store: redisStore({ redis: redisLike }),
    });
    expect(
      await codeAsync(
        limitAll([
          { limiter: l, key: 'a' },
          { limiter: remote, key: 'a' },
        ]),
      ),
    ).toBe('ERR_OMS_RATELIMIT_MIXED_STORES');
  });

  it('an aborted signal and a closed limiter', async () => {
    const ac = new AbortController();
    ac.abort();
    expect(await codeAsync(l.consume('k', { signal: ac.signal }))).toBe('ERR_OMS_RATELIMIT_ABORTED');
    const c = rateLimiter({ name: 'c', algorithm: tokenBucket({ capacity: 5, refillPerSec: 1 }) });
    await c.close();
    expect(await codeAsync(c.consume('k'))).toBe('ERR_OMS_RATELIMIT_CLOSED');
  });
});
