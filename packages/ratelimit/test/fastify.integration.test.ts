import { request } from 'node:http';
import { useRedis } from '@oms/testkit';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import { type FastifyRateLimitOptions, rateLimitPlugin } from '../src/fastify/index.js';
import {
  adaptive,
  fixedWindow,
  type RateLimiter,
  rateLimiter,
  type StoreErrorPolicy,
  tokenBucket,
} from '../src/index.js';
import { redisStore } from '../src/redis/index.js';

const redis = useRedis({ dedicated: true });

// refills one token per 1000 s: nothing refills during a test, so every count below is exact
const bucket = (name: string, capacity = 2, extra: Partial<Parameters<typeof rateLimiter>[0]> = {}) =>
  rateLimiter({ name, algorithm: tokenBucket({ capacity, refillPerSec: 0.001 }), ...extra });

const apps: FastifyInstance[] = [];
afterEach(async () => {
  await Promise.all(apps.splice(0).map((a) => a.close()));
});

/** A Fastify app with the plugin, listening on loopback; `routes` adds routes after the plugin. */
async function serve(o: FastifyRateLimitOptions, routes?: (app: FastifyInstance) => void) {
  const app = Fastify();
  apps.push(app);
  await app.register(rateLimitPlugin, o);
  app.get('/', async () => ({ ok: true }));
  routes?.(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const { port } = app.server.address() as { port: number };
  const get = (path = '/', headers: Record<string, string> = {}) =>
    fetch(`http://127.0.0.1:${port}${path}`, { headers });
  return { app, get };
}

/** A GET from a given loopback address (127.0.0.0/8 is all loopback on Linux), on a fresh connection. */
function getFrom(url: string, localAddress: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(url, { localAddress, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    })
      .on('error', reject)
      .end();
  });
}

describe('rateLimitPlugin on Fastify over HTTP', () => {
  it('puts RateLimit-Policy and RateLimit on allowed responses and answers 429 with Retry-After once drained', async () => {
    const { get } = await serve({ scopes: [{ limiter: bucket('api') }] });
    const first = await get();
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ ok: true });
    expect(first.headers.get('ratelimit-policy')).toBe('"api";q=2;w=2000');
    expect(first.headers.get('ratelimit')).toBe('"api";r=1;t=1000');
    expect(first.headers.get('retry-after')).toBeNull();
    expect((await get()).headers.get('ratelimit')).toBe('"api";r=0;t=2000');

    const denied = await get();
    expect(denied.status).toBe(429);
    expect(denied.headers.get('ratelimit-policy')).toBe('"api";q=2;w=2000');
    expect(denied.headers.get('ratelimit')).toMatch(/^"api";r=0;t=\d+$/);
    expect(Number(denied.headers.get('retry-after'))).toBeGreaterThanOrEqual(999);
    expect(Number(denied.headers.get('retry-after'))).toBeLessThanOrEqual(1000);
    expect(denied.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await denied.json()).toEqual({
      type: 'about:blank',
      title: 'Too Many Requests',
      status: 429,
      detail: `Rate limit "api" exceeded; retry in ${denied.headers.get('retry-after')} s.`,
      scope: 'api',
      retryAfterSec: Number(denied.headers.get('retry-after')),
    });
  });

  it('names the scope that denied, never the key, and charges no scope for a denied request', async () => {
    const global = bucket('global', 10);
    const perUser = bucket('user', 1);
    const { get } = await serve({
      scopes: [
        { limiter: global, key: () => 'all' },
        { limiter: perUser, key: (req) => String(req.headers['x-user']) },
      ],
    });
    expect((await get('/', { 'x-user': 'secret-user-7' })).status).toBe(200);
    const denied = await get('/', { 'x-user': 'secret-user-7' });
    expect(denied.status).toBe(429);
    const text = await denied.text();
    expect(JSON.parse(text).scope).toBe('user');
    expect(text).not.toContain('secret-user-7');
    for (const [, v] of denied.headers) expect(v).not.toContain('secret-user-7');
    // the denial charged neither scope: global still has 10 - 1 (only the first request)
    expect((await global.peek('all')).remaining).toBe(9);
  });

  it('honours config.rateLimit per route: false skips limiting and headers, a list replaces the scopes', async () => {
    const everyone = bucket('api', 1);
    const login = bucket('login', 3);
    const { get } = await serve({ scopes: [{ limiter: everyone }] }, (app) => {
      app.get('/livez', { config: { rateLimit: false } }, async () => 'ok');
      app.get('/login', { config: { rateLimit: [{ limiter: login, key: () => 'k' }] } }, async () => 'ok');
    });
    expect((await get()).status).toBe(200);
    expect((await get()).status).toBe(429);
    for (let i = 0; i < 5; i++) {
      const r = await get('/livez');
      expect(r.status).toBe(200);
      expect(r.headers.get('ratelimit')).toBeNull();
    }
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await get('/login');
      statuses.push(r.status);
      expect(r.headers.get('ratelimit-policy')).toBe('"login";q=3;w=3000');
    }
    expect(statuses).toEqual([200, 200, 200, 429]);
  });

  it('gives each client address its own quota by default, also on a connection reused for many requests', async () => {
    const ip = bucket('ip', 2);
    const { get } = await serve({ scopes: [{ limiter: ip }] });
    const url = (await get()).url; // 127.0.0.1 takes one
    expect(await getFrom(url, '127.0.0.2')).toBe(200);
    expect(await getFrom(url, '127.0.0.2')).toBe(200);
    expect(await getFrom(url, '127.0.0.2')).toBe(429);
    expect(await getFrom(url, '127.0.0.3')).toBe(200);
    // the keep-alive connection of fetch keeps its own address's count
    expect((await get()).status).toBe(200);
    expect((await get()).status).toBe(429);
    expect((await ip.peek('ip:127.0.0.3')).remaining).toBe(1);
  });

  it('writes quotas beyond 32-bit integers exactly (the headers format big numbers in two halves)', async () => {
    // 1e12 tokens refilling 1 per 1000 s; 2_999_999_999 is just below a multiple of 1e9, where n / 1e9 rounds up
    const { get } = await serve({ scopes: [{ limiter: bucket('big', 1e12) }] });
    const first = await get();
    expect(first.headers.get('ratelimit-policy')).toBe('"big";q=1000000000000;w=1000000000000000');
    expect(first.headers.get('ratelimit')).toBe('"big";r=999999999999;t=1000');
    const odd = await serve({ scopes: [{ limiter: bucket('odd', 3_000_000_000) }] });
    expect((await odd.get()).headers.get('ratelimit')).toBe('"odd";r=2999999999;t=1000');
  });

  it('limits a route registered before the plugin too, with its own override', async () => {
    const app = Fastify();
    apps.push(app);
    app.get('/early', { config: { rateLimit: [{ limiter: bucket('early', 1) }] } }, async () => 'ok');
    await app.register(rateLimitPlugin, { scopes: [{ limiter: bucket('api', 5) }] });
    const first = await app.inject('/early');
    expect(first.statusCode).toBe(200);
    expect(first.headers['ratelimit-policy']).toBe('"early";q=1;w=1000');
    expect((await app.inject('/early')).statusCode).toBe(429);
  });

  it('keys by the socket address by default, so X-Forwarded-For cannot buy a fresh quota', async () => {
    const { get } = await serve({ scopes: [{ limiter: bucket('ip', 1) }] });
    expect((await get('/', { 'x-forwarded-for': '203.0.113.1' })).status).toBe(200);
    expect((await get('/', { 'x-forwarded-for': '203.0.113.2' })).status).toBe(429);
  });

  it('with trustProxy: 1 keys by the hop the proxy appended, and ignores what the client wrote before it', async () => {
    const ip = bucket('ip', 1);
    const { get } = await serve({ scopes: [{ limiter: ip }], trustProxy: 1 });
    expect((await get('/', { 'x-forwarded-for': '198.51.100.9, 203.0.113.1' })).status).toBe(200);
    // the client forged a different left part; the proxy-appended address is the same
    expect((await get('/', { 'x-forwarded-for': '192.0.2.77, 203.0.113.1' })).status).toBe(429);
    // another real client behind the proxy has its own quota
    expect((await get('/', { 'x-forwarded-for': '203.0.113.2' })).status).toBe(200);
    expect((await ip.peek('ip:203.0.113.1')).remaining).toBe(0);
    expect((await ip.peek('ip:127.0.0.1')).remaining).toBe(1);
  });

  it('puts the headers on the 404 of an unknown route and on an error a handler throws', async () => {
    const { get } = await serve({ scopes: [{ limiter: bucket('api', 5) }] }, (app) => {
      app.get('/boom', async () => {
        throw new Error('handler failed');
      });
    });
    const missing = await get('/nope');
    expect(missing.status).toBe(404);
    expect(missing.headers.get('ratelimit')).toBe('"api";r=4;t=1000');
    const boom = await get('/boom');
    expect(boom.status).toBe(500);
    expect(boom.headers.get('ratelimit')).toBe('"api";r=3;t=2000');
  });

  it('answers 500 through Fastify when a key function throws, and charges nothing', async () => {
    const l = bucket('api', 5);
    const { get } = await serve({
      scopes: [
        {
          limiter: l,
          key: () => {
            throw new Error('no tenant');
          },
        },
      ],
    });
    expect((await get()).status).toBe(500);
    expect((await l.peek('anything')).remaining).toBe(5);
  });

  it('charges two scopes keyed by client address together and lists both policies', async () => {
    const burst = bucket('burst', 3);
    const hourly = bucket('hourly', 2);
    const { get } = await serve({ scopes: [{ limiter: burst }, { limiter: hourly }] });
    const first = await get();
    expect(first.headers.get('ratelimit-policy')).toBe('"burst";q=3;w=3000, "hourly";q=2;w=2000');
    expect(first.headers.get('ratelimit')).toBe('"hourly";r=1;t=1000');
    expect((await get()).status).toBe(200);
    const denied = await get();
    expect(denied.status).toBe(429);
    expect(((await denied.json()) as { scope: string }).scope).toBe('hourly');
    // the denial charged neither: burst still has 3 - 2
    expect((await burst.peek('ip:127.0.0.1')).remaining).toBe(1);
  });

  it('follows an adaptive limiter: RateLimit-Policy advertises the quota the load leaves', async () => {
    let load = 0;
    const l = rateLimiter({
      name: 'ad',
      algorithm: adaptive(fixedWindow({ limit: 10, windowMs: 60_000 }), { load: () => load, floor: 0.5 }),
    });
    const { get } = await serve({ scopes: [{ limiter: l }] });
    expect((await get()).headers.get('ratelimit-policy')).toBe('"ad";q=10;w=60');
    load = 1;
    expect((await get()).headers.get('ratelimit-policy')).toBe('"ad";q=5;w=60');
  });

  it('awaits async keys (all of them) before one limitAll: all scopes charged or none', async () => {
    const global = bucket('global', 10);
    const perUser = bucket('user', 1);
    // a key that needs I/O, such as a verified principal, resolved on a later turn of the event loop
    const principal = (req: { headers: Record<string, unknown> }) =>
      new Promise<string>((resolve) => setImmediate(() => resolve(`user:${String(req.headers['x-user'])}`)));
    const { get } = await serve({
      scopes: [
        { limiter: global, key: async () => 'all' },
        { limiter: perUser, key: principal },
      ],
    });
    const ok = await get('/', { 'x-user': 'a' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('ratelimit-policy')).toBe('"global";q=10;w=10000, "user";q=1;w=1000');
    const denied = await get('/', { 'x-user': 'a' });
    expect(denied.status).toBe(429);
    expect(((await denied.json()) as { scope: string }).scope).toBe('user');
    expect((await get('/', { 'x-user': 'b' })).status).toBe(200);
    expect((await perUser.peek('user:a')).remaining).toBe(0);
    expect((await global.peek('all')).remaining).toBe(8); // the denial charged neither scope
  });

  it('answers 500 when an async key rejects, and charges nothing', async () => {
    const l = bucket('api', 5);
    const other = bucket('other', 5);
    const { get } = await serve({
      scopes: [{ limiter: other }, { limiter: l, key: () => Promise.reject(new Error('verifier down')) }],
    });
    expect((await get()).status).toBe(500);
    expect((await other.peek('ip:127.0.0.1')).remaining).toBe(5);
  });

  it("uses the app's problem type and code in the 429 body when given", async () => {
    const { get } = await serve({
      scopes: [{ limiter: bucket('api', 1) }],
      problem: { type: 'https://example.com/problems/rate-limited', code: 'RATE_LIMITED' },
    });
    expect((await get()).status).toBe(200);
    const denied = await get();
    expect(denied.status).toBe(429);
    expect(await denied.json()).toMatchObject({
      type: 'https://example.com/problems/rate-limited',
      code: 'RATE_LIMITED',
      title: 'Too Many Requests',
      status: 429,
      scope: 'api',
    });
  });

  it('answers 500 through Fastify once the limiter is closed', async () => {
    const l = bucket('api', 5);
    const { get } = await serve({ scopes: [{ limiter: l }] });
    expect((await get()).status).toBe(200);
    await l.close();
    expect((await get()).status).toBe(500);
  });

  it('refuses bad options at registration and a bad route override when the route is added', async () => {
    const app = Fastify();
    apps.push(app);
    await expect(app.register(rateLimitPlugin, { scopes: [] }).ready()).rejects.toMatchObject({
      code: 'ERR_OMS_RATELIMIT_INVALID_OPTION',
    });
    const b = Fastify();
    apps.push(b);
    await expect(
      b.register(rateLimitPlugin, { scopes: [{ limiter: bucket('a') }], trustProxy: ['not-an-ip'] }).ready(),
    ).rejects.toMatchObject({ code: 'ERR_OMS_RATELIMIT_INVALID_OPTION' });
    const d = Fastify();
    apps.push(d);
    await expect(
      d.register(rateLimitPlugin, { scopes: [{ limiter: bucket('a') }], problem: { code: '' } }).ready(),
    ).rejects.toThrow(/problem.code must be a non-empty string/);
    const c = Fastify();
    apps.push(c);
    await c.register(rateLimitPlugin, { scopes: [{ limiter: bucket('a') }] });
    expect(() =>
      c.get('/x', { config: { rateLimit: [{ limiter: {} as RateLimiter }] } }, async () => 'x'),
    ).toThrow(/route GET \/x: config.rateLimit\[0\]\.limiter/);
  });

  describe('store failure on a paused Redis: the limiter policy decides, unchanged', () => {
    const cases: [StoreErrorPolicy, number, string | null][] = [
      ['closed', 429, '2'],
      ['open', 200, null],
      ['insurance', 200, null],
    ];
    it.each(cases)('onStoreError %s answers %i', async (policy, status, retryAfter) => {
      const client = redis.client({ autoResendUnfulfilledCommands: false });
      await client.ping(); // connected, so the one bound below is the store call's alone
      const store = redisStore({ redis: client, prefix: `${redis.prefix}${policy}:` });
      const l = bucket(`r-${policy}`, 100, {
        store,
        onStoreError: policy,
        timeoutMs: 1000,
        closedRetryAfterMs: 1500,
        insuranceFraction: 0.5,
      });
      const { get } = await serve({ scopes: [{ limiter: l }] });
      expect((await get()).status).toBe(200); // the store works
      redis.pause();
      try {
        const r = await get();
        expect(r.status).toBe(status);
        expect(r.headers.get('retry-after')).toBe(retryAfter);
        expect(r.headers.get('ratelimit-policy')).toBe(`"r-${policy}";q=100;w=100000`);
        if (status === 429) expect(((await r.json()) as { scope: string }).scope).toBe(`r-${policy}`);
      } finally {
        redis.resume();
      }
      expect((await get()).status).toBe(200);
    });

    it('insurance admits only its fraction of the limit in this process while the store is down', async () => {
      const client = redis.client({ autoResendUnfulfilledCommands: false });
      await client.ping();
      const store = redisStore({ redis: client, prefix: `${redis.prefix}ins:` });
      const l = bucket('ins', 10, {
        store,
        onStoreError: 'insurance',
        timeoutMs: 1000,
        insuranceFraction: 0.2,
      });
      const { get } = await serve({ scopes: [{ limiter: l }] });
      expect((await get()).status).toBe(200);
      redis.pause();
      const statuses: number[] = [];
      try {
        for (let i = 0; i < 3; i++) statuses.push((await get()).status);
      } finally {
        redis.resume();
      }
      expect(statuses).toEqual([200, 200, 429]);
    });
  });
});
