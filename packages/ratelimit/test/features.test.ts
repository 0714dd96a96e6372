import { fakeClock } from '@oms/testkit';
import {
  AggregationTemporality,
  InMemoryMetricExporter,
  MeterProvider,
  PeriodicExportingMetricReader,
} from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import {
  adaptive,
  clientKey,
  type Decision,
  fixedWindow,
  gcra,
  httpHeaders,
  instrument,
  isOmsRatelimitError,
  limitAll,
  memoryStore,
  rateLimiter,
  slidingWindow,
  tokenBucket,
} from '../src/index.js';

describe('acquire', () => {
  it('sleeps exactly retryAfterMs (one timer, no polling) and then admits', async () => {
    const clock = fakeClock();
    const l = rateLimiter({ name: 'a', algorithm: tokenBucket({ capacity: 1, refillPerSec: 4 }), clock });
    await l.consume('k');
    const p = l.acquire('k', { maxWaitMs: 1000 });
    await clock.advanceAsync(0);
    expect(clock.pending()).toBe(1);
    let done = false;
    void p.then(() => {
      done = true;
    });
    await clock.advanceAsync(249);
    expect(done).toBe(false);
    await clock.advanceAsync(1);
    expect((await p).allowed).toBe(true);
    expect(done).toBe(true);
  });

  it('rejects at once with ERR_OMS_RATELIMIT_TIMEOUT when capacity frees up after maxWaitMs', async () => {
    const clock = fakeClock();
    const l = rateLimiter({ name: 'a', algorithm: fixedWindow({ limit: 1, windowMs: 60_000 }), clock });
    await l.consume('k');
    const e = await l.acquire('k', { maxWaitMs: 100 }).catch((x: unknown) => x);
    expect(isOmsRatelimitError(e) && e.code).toBe('ERR_OMS_RATELIMIT_TIMEOUT');
    expect((e as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(100);
    expect(clock.pending()).toBe(0);
  });

  it('stops waiting when its signal aborts, leaving no timer behind', async () => {
    const clock = fakeClock();
    const l = rateLimiter({ name: 'a', algorithm: gcra({ limit: 1, periodMs: 1000 }), clock });
    await l.consume('k');
    const ac = new AbortController();
    const p = l.acquire('k', { maxWaitMs: 5000, signal: ac.signal }).catch((x: unknown) => x);
    await clock.advanceAsync(0);
    ac.abort();
    const e = await p;
    expect(isOmsRatelimitError(e) && e.code).toBe('ERR_OMS_RATELIMIT_ABORTED');
    expect(clock.pending()).toBe(0);
  });
});

describe('adaptive', () => {
  it('scales the limit by max(floor, 1 - (load - threshold) / (1 - threshold))', async () => {
    let load = 0;
    const algorithm = adaptive(fixedWindow({ limit: 100, windowMs: 60_000 }), {
      load: () => load,
      threshold: 0.5,
      floor: 0.2,
    });
    const l = rateLimiter({ name: 'ad', algorithm, clock: fakeClock(0) });
    expect((await l.peek('a')).limit).toBe(100);
    load = 0.75; // 1 - 0.25 / 0.5 = 0.5
    expect((await l.peek('b')).limit).toBe(50);
    load = 1; // 0 -> floor 0.2
    expect((await l.peek('c')).limit).toBe(20);
    let admitted = 0;
    for (let i = 0; i < 30; i++) if ((await l.consume('d')).allowed) admitted++;
    expect(admitted).toBe(20);
    load = 0.1;
    expect((await l.consume('d')).remaining).toBe(79);
  });

  it('scales the refill rate of a token bucket too', async () => {
    const clock = fakeClock();
    const algorithm = adaptive(tokenBucket({ capacity: 10, refillPerSec: 10 }), {
      load: () => 0.85,
      threshold: 0.7,
    });
    const l = rateLimiter({ name: 'ad', algorithm, clock }); // multiplier 0.5: capacity 5, 5/s
    expect((await l.consume('k', { cost: 5 })).allowed).toBe(true);
    expect((await l.consume('k')).retryAfterMs).toBe(200);
  });
});

describe('limitAll on memory', () => {
  it('charges all scopes or none and names the scope that denied', async () => {
    const store = memoryStore({ maxKeys: 100 });
    const global = rateLimiter({
      name: 'global',
      algorithm: tokenBucket({ capacity: 100, refillPerSec: 1 }),
      store,
    });
    const user = rateLimiter({ name: 'user', algorithm: gcra({ limit: 2, periodMs: 60_000 }), store });
    const ip = rateLimiter({
      name: 'ip',
      algorithm: slidingWindow({ limit: 3, windowMs: 60_000, mode: 'log' }),
      store,
    });
    const scopes = (u: string) => [
      { limiter: global, key: 'all' },
      { limiter: user, key: u },
      { limiter: ip, key: '10.0.0.1' },
    ];
    expect((await limitAll(scopes('u1'))).allowed).toBe(true);
    expect((await limitAll(scopes('u1'))).allowed).toBe(true);
    const r = await limitAll(scopes('u1'));
    expect(r).toMatchObject({ allowed: false, deniedBy: { index: 1, name: 'user', key: 'u1' } });
    expect(r.decisions.map((d) => d.remaining)).toEqual([98, 0, 1]);
    expect((await limitAll(scopes('u2'))).allowed).toBe(true);
    expect((await limitAll(scopes('u3'))).deniedBy?.name).toBe('ip');
    expect((await global.peek('all')).remaining).toBe(97);
  });
});

describe('limitAll with one scope on memory (one step, no check-then-charge walk)', () => {
  const algorithms = [
    ['tokenBucket', () => tokenBucket({ capacity: 5, refillPerSec: 2 })],
    ['gcra', () => gcra({ limit: 5, periodMs: 2000, burst: 4 })],
    ['slidingWindow counter', () => slidingWindow({ limit: 5, windowMs: 2000 })],
    ['slidingWindow log', () => slidingWindow({ limit: 5, windowMs: 2000, mode: 'log' })],
    ['fixedWindow', () => fixedWindow({ limit: 5, windowMs: 2000 })],
  ] as const;
  const strip = ({ policy: _p, ...rest }: Decision) => rest;
  it.each(algorithms)('%s: decides every call as consume and as the two-scope walk do', async (_, alg) => {
    const clock = fakeClock(1_000_000);
    const one = rateLimiter({ name: 'one', algorithm: alg(), clock });
    const twin = rateLimiter({ name: 'twin', algorithm: alg(), clock });
    const walked = rateLimiter({ name: 'walked', algorithm: alg(), clock });
    // a scope that never denies, so the two-scope walk is decided by `walked` alone
    const roomy = rateLimiter({
      name: 'roomy',
      algorithm: fixedWindow({ limit: 1e9, windowMs: 1000 }),
      clock,
    });
    const costs = [1, 2, 1, 3, 1, 1, 2, 1, 1, 1, 4, 1];
    let denied = 0;
    for (const [i, cost] of costs.entries()) {
      const r = await limitAll([{ limiter: one, key: 'k' }], { cost });
      const d = await twin.consume('k', { cost });
      const w = await limitAll(
        [
          { limiter: walked, key: 'k' },
          { limiter: roomy, key: 'k' },
        ],
        { cost },
      );
      expect(strip(r.decisions[0]!), `call ${i}`).toEqual(strip(d));
      expect(strip(r.decisions[0]!), `call ${i}`).toEqual(strip(w.decisions[0]!));
      expect(r.allowed).toBe(d.allowed);
      if (!r.allowed) denied++;
      expect(r.deniedBy).toEqual(d.allowed ? undefined : { index: 0, name: 'one', key: 'k' });
      clock.advance(i % 3 === 0 ? 150 : 0);
    }
    expect(strip(await one.peek('k'))).toEqual(strip(await twin.peek('k')));
    // the sequence exercises both outcomes
    expect(denied).toBeGreaterThan(0);
    expect(denied).toBeLessThan(costs.length);
  });

  it('rejects an aborted signal or bad input before it charges anything', async () => {
    const l = rateLimiter({ name: 'api', algorithm: fixedWindow({ limit: 3, windowMs: 60_000 }) });
    const ac = new AbortController();
    ac.abort();
    const code = (p: Promise<unknown>) =>
      p.then(
        () => 'resolved',
        (e) => isOmsRatelimitError(e) && e.code,
      );
    expect(await code(limitAll([{ limiter: l, key: 'k' }], { signal: ac.signal }))).toBe(
      'ERR_OMS_RATELIMIT_ABORTED',
    );
    expect(await code(limitAll([{ limiter: l, key: '' }], { signal: ac.signal }))).toBe(
      'ERR_OMS_RATELIMIT_INVALID_KEY',
    );
    expect(await code(limitAll([{ limiter: l, key: 'k' }], { cost: 4 }))).toBe(
      'ERR_OMS_RATELIMIT_COST_EXCEEDS_LIMIT',
    );
    expect(await code(limitAll([null as never]))).toBe('ERR_OMS_RATELIMIT_INVALID_OPTION');
    expect((await l.peek('k')).remaining).toBe(3);
    await l.close();
    expect(await code(limitAll([{ limiter: l, key: 'k' }]))).toBe('ERR_OMS_RATELIMIT_CLOSED');
  });
});

describe('limitAll across limiters built with the default store', () => {
  it('is one atomic step over their memory stores: all charged or none', async () => {
    const clock = fakeClock(0);
    const a = rateLimiter({ name: 'a', algorithm: fixedWindow({ limit: 3, windowMs: 60_000 }), clock });
    const b = rateLimiter({ name: 'b', algorithm: fixedWindow({ limit: 1, windowMs: 60_000 }), clock });
    const scopes = [
      { limiter: a, key: 'k' },
      { limiter: b, key: 'k' },
    ];
    expect((await limitAll(scopes)).allowed).toBe(true);
    const r = await limitAll(scopes);
    expect(r).toMatchObject({ allowed: false, deniedBy: { index: 1, name: 'b', key: 'k' } });
    expect((await a.peek('k')).remaining).toBe(2);
    expect((await b.peek('k')).remaining).toBe(0);
  });
});

describe('httpHeaders', () => {
  it('emits RateLimit-Policy and RateLimit structured fields, and Retry-After on denial', async () => {
    const clock = fakeClock(0);
    const l = rateLimiter({ name: 'api', algorithm: fixedWindow({ limit: 2, windowMs: 60_000 }), clock });
    clock.advance(30_000);
    const h1 = httpHeaders(await l.consume('k'));
    expect(h1).toEqual({ 'RateLimit-Policy': '"api";q=2;w=60', RateLimit: '"api";r=1;t=30' });
    await l.consume('k');
    clock.advance(500);
    const h3 = httpHeaders(await l.consume('k'));
    expect(h3).toEqual({
      'RateLimit-Policy': '"api";q=2;w=60',
      RateLimit: '"api";r=0;t=30',
      'Retry-After': '30',
    });
  });

  it('with several policies lists all and reports the one with the lowest remaining', async () => {
    const clock = fakeClock(0);
    const store = memoryStore();
    const a = rateLimiter({
      name: 'burst',
      algorithm: tokenBucket({ capacity: 10, refillPerSec: 1 }),
      store,
      clock,
    });
    const b = rateLimiter({
      name: 'daily',
      algorithm: fixedWindow({ limit: 3, windowMs: 86_400_000 }),
      store,
      clock,
    });
    const r = await limitAll([
      { limiter: a, key: 'u' },
      { limiter: b, key: 'u' },
    ]);
    expect(httpHeaders(r.decisions)).toEqual({
      'RateLimit-Policy': '"burst";q=10;w=10, "daily";q=3;w=86400',
      RateLimit: '"daily";r=2;t=86400',
    });
  });
});

describe('RateLimit-Policy advertises the sustained quota over its window', () => {
  it('gcra with a burst: q is the limit per period, not the burst', async () => {
    const l = rateLimiter({ name: 'user', algorithm: gcra({ limit: 100, periodMs: 60_000, burst: 20 }) });
    const d = await l.consume('k');
    expect(l.policy).toMatchObject({ limit: 100, windowSec: 60 });
    expect(d).toMatchObject({ limit: 100, remaining: 19 });
    expect(httpHeaders(d)['RateLimit-Policy']).toBe('"user";q=100;w=60');
  });

  it('the draft examples: "default";q=100;w=10 from each algorithm, and several policies in one field', async () => {
    const clock = fakeClock(0);
    for (const algorithm of [
      tokenBucket({ capacity: 100, refillPerSec: 10 }),
      gcra({ limit: 100, periodMs: 10_000, burst: 10 }),
      fixedWindow({ limit: 100, windowMs: 10_000 }),
      slidingWindow({ limit: 100, windowMs: 10_000 }),
    ]) {
      const l = rateLimiter({ name: 'default', algorithm, clock });
      expect(httpHeaders(await l.consume('k'))['RateLimit-Policy'], algorithm.kind).toBe(
        '"default";q=100;w=10',
      );
    }
    const store = memoryStore();
    const permin = rateLimiter({
      name: 'permin',
      algorithm: gcra({ limit: 50, periodMs: 60_000, burst: 5 }),
      store,
      clock,
    });
    const perhr = rateLimiter({
      name: 'perhr',
      algorithm: fixedWindow({ limit: 1000, windowMs: 3_600_000 }),
      store,
      clock,
    });
    const r = await limitAll([
      { limiter: permin, key: 'k' },
      { limiter: perhr, key: 'k' },
    ]);
    expect(httpHeaders(r.decisions)).toEqual({
      'RateLimit-Policy': '"permin";q=50;w=60, "perhr";q=1000;w=3600',
      RateLimit: '"permin";r=4;t=2',
    });
  });

  it('under adaptive() the quota scales with the limit', async () => {
    const algorithm = adaptive(gcra({ limit: 100, periodMs: 60_000, burst: 20 }), {
      load: () => 1,
      floor: 0.5,
    });
    const l = rateLimiter({ name: 'ad', algorithm });
    const d = await l.consume('k');
    expect(d).toMatchObject({ limit: 50, remaining: 9 });
    expect(httpHeaders(d)['RateLimit-Policy']).toBe('"ad";q=50;w=60');
  });
});

describe("the 'decision' event", () => {
  it('carries the very Decision each call returns, degraded ones included', async () => {
    const l = rateLimiter({ name: 'ev', algorithm: fixedWindow({ limit: 1, windowMs: 60_000 }) });
    const seen: Decision[] = [];
    const off = l.on('decision', (d) => seen.push(d));
    const a = await l.consume('k');
    const b = await l.peek('k');
    const c = await limitAll([{ limiter: l, key: 'k' }]);
    expect(seen).toHaveLength(3);
    expect(seen[0]).toBe(a);
    expect(seen[1]).toBe(b);
    expect(seen[2]).toBe(c.decisions[0]);
    expect(seen[2]).toMatchObject({ allowed: false, limit: 1, policy: { name: 'ev' } });
    off();
    await l.consume('k');
    expect(seen).toHaveLength(3);
  });
});

describe('clientKey', () => {
  const h = (xff?: string) => (xff === undefined ? {} : { 'x-forwarded-for': xff });

  it('uses the socket address and ignores X-Forwarded-For unless a proxy is trusted', () => {
    expect(clientKey({ ip: '203.0.113.9', headers: h('1.2.3.4') })).toBe('ip:203.0.113.9');
  });

  it('groups IPv6 by /64 and unmaps IPv4-mapped addresses', () => {
    expect(clientKey({ ip: '2001:db8:1:2:aaaa::1', headers: {} })).toBe('ip:2001:db8:1:2:0:0:0:0/64');
    expect(clientKey({ ip: '2001:db8:1:2:ffff:1:2:3', headers: {} })).toBe('ip:2001:db8:1:2:0:0:0:0/64');
    expect(clientKey({ ip: '::ffff:198.51.100.7', headers: {} })).toBe('ip:198.51.100.7');
    expect(clientKey({ ip: '2001:db8::1', headers: {} }, { ipv6Prefix: 48 })).toBe(
      'ip:2001:db8:0:0:0:0:0:0/48',
    );
  });

  it('reads the forms sockets and proxies write: ports, brackets, zones, upper case, embedded IPv4', () => {
    const key = (ip: string, ipv6Prefix?: number) =>
      clientKey({ ip, headers: {} }, ipv6Prefix === undefined ? {} : { ipv6Prefix });
    expect(key('198.51.100.7:8080')).toBe('ip:198.51.100.7');
    expect(key(' 198.51.100.7 ')).toBe('ip:198.51.100.7');
    expect(key('[2001:db8:1:2::9]:443')).toBe('ip:2001:db8:1:2:0:0:0:0/64');
    expect(key('2001:DB8:1:2:AAAA::1')).toBe('ip:2001:db8:1:2:0:0:0:0/64');
    expect(key('fe80::1%eth0')).toBe('ip:fe80:0:0:0:0:0:0:0/64');
    expect(key('::FFFF:198.51.100.7')).toBe('ip:198.51.100.7');
    expect(key('::ffff:c633:6407')).toBe('ip:198.51.100.7');
    expect(key('0:0:0:0:0:ffff:198.51.100.7')).toBe('ip:198.51.100.7');
    expect(key('1:2:3:4:5:6:198.51.100.7', 128)).toBe('ip:1:2:3:4:5:6:c633:6407/128');
    expect(key('::1', 128)).toBe('ip:0:0:0:0:0:0:0:1/128');
    expect(key('2001:db8:ffff:ffff::', 33)).toBe('ip:2001:db8:8000:0:0:0:0:0/33');
    expect(key('not-an-ip')).toBe('ip:unknown');
  });

  it('reads X-Forwarded-For only as far as the trusted hops', () => {
    // client spoofs 6.6.6.6; the load balancer appended the real client 198.51.100.7
    const req = { ip: '10.0.0.2', headers: h('6.6.6.6, 198.51.100.7') };
    expect(clientKey(req, { trustProxy: 1 })).toBe('ip:198.51.100.7');
    expect(clientKey(req, { trustProxy: ['10.0.0.0/8'] })).toBe('ip:198.51.100.7');
    expect(clientKey(req, { trustProxy: 2 })).toBe('ip:6.6.6.6');
    expect(clientKey(req, { trustProxy: ['10.0.0.0/8', '198.51.100.0/24'] })).toBe('ip:6.6.6.6');
    // a peer outside the trusted list: its header is not believed
    expect(clientKey({ ip: '203.0.113.1', headers: h('6.6.6.6') }, { trustProxy: ['10.0.0.0/8'] })).toBe(
      'ip:203.0.113.1',
    );
    // more hops trusted than present: the left-most address
    expect(clientKey({ ip: '10.0.0.2', headers: h('198.51.100.7') }, { trustProxy: 5 })).toBe(
      'ip:198.51.100.7',
    );
  });

  it('falls back to the peer on garbage and rejects bad options', () => {
    expect(clientKey({ ip: '10.0.0.2', headers: h('not-an-ip') }, { trustProxy: 1 })).toBe('ip:10.0.0.2');
    expect(() => clientKey({ ip: '1.1.1.1', headers: {} }, { trustProxy: ['nope'] })).toThrow(/trustProxy/);
  });
});

describe('telemetry', () => {
  it('counts decisions by policy and outcome, never with the key', async () => {
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 60_000 });
    const provider = new MeterProvider({ readers: [reader] });
    const l = rateLimiter({ name: 'tel', algorithm: fixedWindow({ limit: 1, windowMs: 60_000 }) });
    const stop = instrument(l, { meter: provider.getMeter('@oms/ratelimit') });
    await l.consume('secret-user-key');
    await l.consume('secret-user-key');
    await reader.forceFlush();
    const metrics = exporter.getMetrics().flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics));
    const decisions = metrics.find((m) => m.descriptor.name === 'oms.ratelimit.decisions')!;
    const points = decisions.dataPoints.map((p) => ({ attrs: p.attributes, value: p.value }));
    expect(points).toEqual(
      expect.arrayContaining([
        { attrs: { 'oms.ratelimit.policy': 'tel', 'oms.ratelimit.outcome': 'allowed' }, value: 1 },
        { attrs: { 'oms.ratelimit.policy': 'tel', 'oms.ratelimit.outcome': 'denied' }, value: 1 },
      ]),
    );
    expect(JSON.stringify(metrics)).not.toContain('secret-user-key');
    stop();
    await provider.shutdown();
  });
});
