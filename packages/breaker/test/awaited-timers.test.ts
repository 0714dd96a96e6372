import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { type AloneRun, explainRun, runAlone as runScript } from '@oms/testkit';
import { describe, expect, it } from 'vitest';

// Each script runs alone in a fresh `node` with nothing else alive, importing the built package the way a
// user's script does. A timer that bounds or delays an awaited promise must hold the process open until it
// settles; if it were unref'd, Node would exit with code 13 ("unsettled top-level await") mid-await.
const dist = fileURLToPath(new URL('../dist/index.js', import.meta.url));
const distRedis = fileURLToPath(new URL('../dist/redis/index.js', import.meta.url));
const runAlone = (body: string): Promise<AloneRun> => {
  if (!existsSync(dist)) throw new Error('dist/index.js is missing: build the package before testing');
  // A ref'd background timer would keep the script alive forever: that is a failure too, not a hang.
  return runScript({
    imports: { b: dist, breakerRedis: distRedis },
    body: `const { redisBreakerStore } = breakerRedis;\n${body}`,
    killAfterMs: 20_000,
  });
};

const expectClean = (r: AloneRun) => {
  expect(r.signal, explainRun(r)).toBeNull();
  expect(r.code, explainRun(r)).toBe(0);
};

/**
 * A stand-in for an ioredis client and its subscriber, enough for redisBreakerStore: scripts are answered
 * (or left hanging) by what they contain, so only the store's own timers can keep the script alive.
 */
const fakeRedis = `
  const fakeRedis = ({ probe = 'answer', subscribeFailures = 0 } = {}) => {
    const listeners = new Map();
    const sub = {
      subscribe: async () => {
        if (subscribeFailures-- > 0) throw new Error("Stream isn't writeable and enableOfflineQueue options is false");
        return 1;
      },
      unsubscribe: async () => 1,
      quit: async () => 'OK',
      on: (e, f) => { listeners.set(f, e); return sub; },
      removeListener: (e, f) => { listeners.delete(f); return sub; },
    };
    const redis = {
      evalsha: async () => { throw new Error('NOSCRIPT No matching script'); },
      eval: (script, _n, ...rest) => {
        if (script.includes("'ZADD'")) return Promise.resolve([1, Number(rest[3]), Number(rest[4])]); // TRIP
        if (script.includes("'NX', 'PX'")) return probe === 'hang' ? new Promise(() => {}) : Promise.resolve([1]);
        if (script.includes("'closed', 'trips', 0")) return Promise.resolve(1); // CLOSE
        return Promise.resolve([0]); // READ: closed
      },
      duplicate: () => sub,
    };
    return redis;
  };
`;

describe('awaited timers hold a bare script open until they settle', () => {
  it('retry: the backoff sleep between attempts keeps the script alive until the third attempt succeeds', async () => {
    const r = await runAlone(`
      let calls = 0;
      const fn = () => { if (++calls < 3) throw new Error('flaky'); return 'ok'; };
      const t0 = Date.now();
      const value = await b.retry({ maxAttempts: 3, backoff: b.constantBackoff(150) }).execute(fn);
      print({ value, calls, waited: Date.now() - t0 >= 290 });
    `);
    expectClean(r);
    expect(r.out).toEqual({ value: 'ok', calls: 3, waited: true });
  });

  it('timeout (aggressive): a function that never settles is rejected with ERR_OMS_BREAKER_TIMEOUT', async () => {
    const r = await runAlone(`
      const e = await b.timeout(150, { strategy: 'aggressive' }).execute(() => new Promise(() => {})).catch((e) => e);
      print({ code: e.code });
    `);
    expectClean(r);
    expect(r.out).toEqual({ code: 'ERR_OMS_BREAKER_TIMEOUT' });
  });

  it('timeout (default): a function that never settles is rejected with ERR_OMS_BREAKER_TIMEOUT and the script exits 0', async () => {
    const r = await runAlone(`
      const { timeout } = b;
      try {
        await timeout(150).execute(() => new Promise(() => {}));
        print({ settled: 'resolved' });
      } catch (e) {
        print({ settled: 'rejected', code: e.code });
      }
    `);
    expectClean(r);
    expect(r.out).toEqual({ settled: 'rejected', code: 'ERR_OMS_BREAKER_TIMEOUT' });
  });

  it('timeout (cooperative): a function that honours ctx.signal is aborted and the caller gets ERR_OMS_BREAKER_TIMEOUT', async () => {
    const r = await runAlone(`
      const e = await b.timeout(150, { strategy: 'cooperative' }).execute(({ signal }) =>
        new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason))),
      ).catch((e) => e);
      print({ code: e.code });
    `);
    expectClean(r);
    expect(r.out).toEqual({ code: 'ERR_OMS_BREAKER_TIMEOUT' });
  });

  it('timeout: a call that finished leaves nothing holding the script open until its old deadline', async () => {
    const r = await runAlone(`
      const t0 = Date.now();
      const value = await b.timeout(60_000).execute(() => 1);
      print({ value });
      process.on('exit', () => process.stderr.write('exit after ' + (Date.now() - t0) + ' ms'));
    `);
    expectClean(r);
    expect(r.out).toEqual({ value: 1 });
    // The killer would have fired at 20 s; the old deadline is 60 s away.
    expect(r.stderr).toMatch(/^exit after \d+ ms$/);
  });

  it('bulkhead: a queued call waits for queueTimeoutMs and is rejected with ERR_OMS_BREAKER_BULKHEAD_FULL', async () => {
    const r = await runAlone(`
      const pool = b.bulkhead({ maxConcurrent: 1, maxQueue: 1, queueTimeoutMs: 150 });
      void pool.execute(() => new Promise(() => {})); // holds the only slot and never settles
      const e = await pool.execute(() => 'ran').catch((e) => e);
      print({ code: e.code, message: e.message });
    `);
    expectClean(r);
    expect(r.out).toEqual({
      code: 'ERR_OMS_BREAKER_BULKHEAD_FULL',
      message: "bulkhead 'bulkhead': no slot freed within 150 ms",
    });
  });

  it('adaptive concurrency has no queue: over the limit it rejects at once; under an outer timeout it settles', async () => {
    const r = await runAlone(`
      const limiter = b.adaptiveConcurrency({ algorithm: 'aimd', initialLimit: 1, minLimit: 1, maxLimit: 1 });
      const guarded = b.pipeline(b.timeout(150, { strategy: 'aggressive' }), limiter);
      const first = guarded.execute(() => new Promise(() => {})).catch((e) => e.code);
      const over = await limiter.execute(() => 'ran').catch((e) => e.code);
      print({ over, first: await first });
    `);
    expectClean(r);
    expect(r.out).toEqual({ over: 'ERR_OMS_BREAKER_CONCURRENCY_LIMIT', first: 'ERR_OMS_BREAKER_TIMEOUT' });
  });

  it('circuit breaker: the half-open wait for a probe lease from a hung Redis holds the script until commandTimeoutMs', async () => {
    // The lease request never gets an answer; the store gives up after commandTimeoutMs, switches to local
    // mode and lets this instance probe. Its background sync timer must not keep the script alive after.
    const r = await runAlone(`${fakeRedis}
      const store = redisBreakerStore({ redis: fakeRedis({ probe: 'hang' }), prefix: 't:', commandTimeoutMs: 150 });
      await store.ready();
      const breaker = b.circuitBreaker({ name: 'dep', consecutiveFailures: 1, openMs: 50, store });
      await new Promise((r) => setTimeout(r, 20)); // the attach-time sync reads 'closed' first
      await breaker.execute(() => { throw new Error('down'); }).catch(() => {});
      await new Promise((r) => setTimeout(r, 100)); // the (shared) open period passes
      const t0 = Date.now();
      const value = await breaker.execute(() => 'probed');
      print({ value, state: breaker.state, mode: store.mode, waited: Date.now() - t0 >= 140 });
    `);
    expectClean(r);
    expect(r.out).toEqual({ value: 'probed', state: 'closed', mode: 'local', waited: true });
  });

  it('redis store: ready() waits out a subscriber that is still connecting, and the sync timer never holds the script', async () => {
    const r = await runAlone(`${fakeRedis}
      const store = redisBreakerStore({ redis: fakeRedis({ subscribeFailures: 2 }), prefix: 't:', syncIntervalMs: 60_000 });
      const modes = [];
      store.on('modeChange', (e) => modes.push(e.mode));
      await store.ready();
      print({ mode: store.mode, modes });
      // no close(): the periodic reconcile is background work and must let the script end
    `);
    expectClean(r);
    expect(r.out).toEqual({ mode: 'shared', modes: [] });
  });
});
