import { monitorEventLoopDelay } from 'node:perf_hooks';
import { until, useRedis } from '@oms/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Decision,
  fixedWindow,
  limitAll,
  type RateLimiter,
  rateLimiter,
  type StoreErrorPolicy,
} from '../src/index.js';
import { redisStore } from '../src/redis/index.js';

const redis = useRedis({ dedicated: true });
const BOUND_MS = 200;
const SLACK_MS = 50;
const LIMIT = 1_000_000; // never the reason for a denial here, so every denial is the policy's

const unhandled: unknown[] = [];
const onUnhandled = (e: unknown) => unhandled.push(e);
beforeAll(() => {
  process.on('unhandledRejection', onUnhandled);
});
afterAll(() => {
  process.off('unhandledRejection', onUnhandled);
});

interface Call {
  start: number;
  end: number;
  d: Decision;
}

/** Keeps `callers` loops calling consume until stopped; records every call. */
function load(l: RateLimiter, key: string, callers = 8) {
  const calls: Call[] = [];
  let stop = false;
  const loops = Array.from({ length: callers }, async () => {
    while (!stop) {
      const start = performance.now();
      const d = await l.consume(key);
      calls.push({ start, end: performance.now(), d });
      await new Promise((r) => setTimeout(r, 2));
    }
  });
  return {
    calls,
    async stop() {
      stop = true;
      await Promise.all(loops);
    },
  };
}

function makeLimiters() {
  // as the README recommends: a command whose reply was lost in the disconnect must not be sent again
  const client = redis.client({ maxRetriesPerRequest: null, autoResendUnfulfilledCommands: false });
  const store = redisStore({ redis: client, prefix: `${redis.prefix}f${Date.now()}:` });
  const mk = (policy: StoreErrorPolicy, limit = LIMIT) =>
    rateLimiter({
      name: policy,
      algorithm: fixedWindow({ limit, windowMs: 3_600_000 }),
      store,
      onStoreError: policy,
      timeoutMs: BOUND_MS,
      insuranceFraction: 0.001,
    });
  return { client, limiters: { open: mk('open'), closed: mk('closed'), insurance: mk('insurance', 10_000) } };
}

/**
 * Event-loop delay while the outage lasted: time this process was not scheduled at all (the machine runs
 * other suites). The library's promise is bound + 50 ms of its own; the OS's stalls come on top.
 */
function lagMs(h: ReturnType<typeof monitorEventLoopDelay>): number {
  return h.max / 1e6;
}

function checkOutage(calls: Call[], policy: StoreErrorPolicy, schedulerLagMs: number) {
  const degraded = calls.filter((c) => c.d.degraded);
  expect(degraded.length, `${policy}: some calls were decided by the policy`).toBeGreaterThan(0);
  for (const c of degraded) {
    expect(c.d.degraded).toBe(policy);
    expect(
      c.end - c.start,
      `${policy}: decided within the bound + ${SLACK_MS} ms (+ ${schedulerLagMs.toFixed(0)} ms the process was not scheduled)`,
    ).toBeLessThanOrEqual(BOUND_MS + SLACK_MS + schedulerLagMs);
  }
  if (policy === 'open') expect(degraded.every((c) => c.d.allowed)).toBe(true);
  if (policy === 'closed') expect(degraded.every((c) => !c.d.allowed && c.d.retryAfterMs > 0)).toBe(true);
  if (policy === 'insurance') {
    // 0.001 x 10,000 = 10 per window on this process; the window is an hour, so at most two windows
    const allowed = degraded.filter((c) => c.d.allowed).length;
    expect(allowed).toBeGreaterThan(0);
    expect(allowed).toBeLessThanOrEqual(20);
    expect(degraded.some((c) => !c.d.allowed)).toBe(true);
  }
}

/**
 * After recovery, the store holds the charges of the calls the store admitted, plus at most one per call whose
 * caller gave up on it (it may have run in time on the server and its reply come late): never a replayed one.
 * `calls` must be every call on `key` that could still charge: an outage-phase call on the same key was
 * answered (by its policy) before the restart began, and each command carries its caller's deadline in server
 * time (the store reads the server's clock before its first command), so none of them may charge after it.
 */
async function checkNoDoubleCount(l: RateLimiter, key: string, calls: Call[], limit: number) {
  // give any replayed command time to land before counting
  await new Promise((r) => setTimeout(r, BOUND_MS * 2));
  const peek = await until2(() => l.peek(key));
  const fromStore = calls.filter((c) => !c.d.degraded && c.d.allowed).length;
  const late = calls.filter((c) => c.d.degraded).length;
  const charges = limit - peek.remaining;
  expect(charges, 'charges in redis >= admitted decisions').toBeGreaterThanOrEqual(fromStore);
  expect(charges, 'charges in redis <= admitted + timed-out calls (no replay)').toBeLessThanOrEqual(
    fromStore + late,
  );
}

/** A peek that the store itself answered (under heavy load one may exceed the bound). */
async function until2(fn: () => Promise<Decision>): Promise<Decision> {
  for (let i = 0; i < 50; i++) {
    const d = await fn();
    if (!d.degraded) return d;
  }
  throw new Error('the store never answered a peek within the bound');
}

describe('store faults on a dedicated Redis', () => {
  it('kill -9 under load: each policy decides within the bound, and after restart decisions resume with no double count', async () => {
    const { client, limiters } = makeLimiters();
    const policies = Object.keys(limiters) as StoreErrorPolicy[];
    const loads = policies.map((p) => load(limiters[p], 'before'));
    await new Promise((r) => setTimeout(r, 200));
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    await redis.kill();
    const outage = policies.map((p) => load(limiters[p], 'during'));
    await new Promise((r) => setTimeout(r, 800));
    for (const l of loads) await l.stop();
    for (const l of outage) await l.stop();
    lag.disable();
    policies.forEach((p, i) => {
      checkOutage(outage[i]!.calls, p, lagMs(lag));
    });

    await redis.restart();
    await until(() => client.status === 'ready', { timeoutMs: 20_000, what: 'the client to reconnect' });
    // same limiters, no restart: decisions come from Redis again
    for (const p of policies) {
      const after = load(limiters[p], 'during');
      await until(() => after.calls.filter((c) => !c.d.degraded).length >= 20, {
        timeoutMs: 20_000,
        what: `${p} to resume`,
      });
      await after.stop();
      await checkNoDoubleCount(limiters[p], 'during', after.calls, p === 'insurance' ? 10_000 : LIMIT);
    }
    expect(unhandled).toEqual([]);
  }, 90_000);

  it('calls made while the client is still connecting never charge when it connects, after their callers were answered', async () => {
    const mk = (name: string, store: ReturnType<typeof redisStore>) =>
      rateLimiter({
        name,
        algorithm: fixedWindow({ limit: LIMIT, windowMs: 3_600_000 }),
        store,
        onStoreError: 'closed',
        timeoutMs: BOUND_MS,
      });
    // the kernel accepts the connection of a stopped server, which never answers ioredis's ready check: the
    // client stays in 'connect', so every command waits in its offline queue, and the store has had no reply
    redis.pause();
    const client = redis.client({ maxRetriesPerRequest: null, autoResendUnfulfilledCommands: false });
    const store = redisStore({ redis: client, prefix: `${redis.prefix}c${Date.now()}:` });
    const a = mk('early', store);
    const b = mk('early2', store);
    let answered: Decision[];
    try {
      await until(() => client.status === 'connect', { timeoutMs: 20_000, what: 'the TCP connection' });
      // one tick of calls (one batch), a call alone in its tick, and a limitAll (the multi-scope batch)
      const batch = await Promise.all(Array.from({ length: 8 }, () => a.consume('k')));
      const alone = await a.consume('k');
      const all = await limitAll([
        { limiter: a, key: 'g' },
        { limiter: b, key: 'g' },
      ]);
      answered = [...batch, alone, ...all.decisions];
    } finally {
      redis.resume();
    }
    expect(answered.every((d) => d.degraded === 'closed' && !d.allowed)).toBe(true);
    await until(() => client.status === 'ready', { timeoutMs: 20_000, what: 'the client to connect' });
    // a peek goes out on the same connection after everything queued, so it sees whatever those charged
    for (const [l, key] of [
      [a, 'k'],
      [a, 'g'],
      [b, 'g'],
    ] as const) {
      const d = await until2(() => l.peek(key));
      expect(LIMIT - d.remaining, `${l.name}:${key}: denied calls charged nothing`).toBe(0);
    }
    expect(unhandled).toEqual([]);
  }, 60_000);

  it('SIGSTOP behaves like kill, bounded by time, and the queued commands do not charge after SIGCONT', async () => {
    const { client, limiters } = makeLimiters();
    const policies = Object.keys(limiters) as StoreErrorPolicy[];
    await until(() => client.status === 'ready', { timeoutMs: 20_000, what: 'the client to connect' });
    for (const p of policies) await limiters[p].consume('warm');
    const lag = monitorEventLoopDelay({ resolution: 5 });
    lag.enable();
    redis.pause();
    let outage: ReturnType<typeof load>[];
    try {
      outage = policies.map((p) => load(limiters[p], 'paused'));
      await new Promise((r) => setTimeout(r, 1000));
      for (const l of outage) await l.stop();
    } finally {
      redis.resume();
    }
    lag.disable();
    policies.forEach((p, i) => {
      checkOutage(outage[i]!.calls, p, lagMs(lag));
    });
    for (const p of policies) {
      // everything sent while paused ran after its caller gave up, so it must not have charged
      const limit = p === 'insurance' ? 10_000 : LIMIT;
      // every call ended (timed out) before SIGCONT, so none may have charged
      await checkNoDoubleCount(limiters[p], 'paused', [], limit);
    }
    expect(unhandled).toEqual([]);
  }, 60_000);
});
