import { once } from 'node:events';
import { createServer, type IncomingMessage, request, type Server } from 'node:http';
import { useRedis } from '@oms/testkit';
import express, { type Express } from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { type RequestLimitOptions, rateLimitMiddleware } from '../src/express/index.js';
import { type RateLimiter, rateLimiter, type StoreErrorPolicy, tokenBucket } from '../src/index.js';
import { redisStore } from '../src/redis/index.js';

const redis = useRedis({ dedicated: true });

// refills one token per 1000 s: nothing refills during a test, so every count below is exact
const bucket = (name: string, capacity = 2, extra: Partial<Parameters<typeof rateLimiter>[0]> = {}) =>
  rateLimiter({ name, algorithm: tokenBucket({ capacity, refillPerSec: 0.001 }), ...extra });

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(
    servers.splice(0).map((s) => {
      s.closeAllConnections();
      return new Promise((r) => s.close(r));
    }),
  );
});

async function listen(server: Server) {
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  return (path = '/', headers: Record<string, string> = {}) =>
    fetch(`http://127.0.0.1:${port}${path}`, { headers });
}

/** An Express 5 app with the middleware first; `routes` adds routes after it. */
function serve(o: RequestLimitOptions<IncomingMessage>, routes?: (app: Express) => void) {
  const app = express();
  app.use(rateLimitMiddleware(o));
  app.get('/', (_req, res) => void res.json({ ok: true }));
  routes?.(app);
  return listen(createServer(app));
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

describe('rateLimitMiddleware on Express 5 over HTTP', () => {
  it('puts RateLimit-Policy and RateLimit on allowed responses and answers 429 with Retry-After once drained', async () => {
    const get = await serve({ scopes: [{ limiter: bucket('api') }] });
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
    expect(denied.headers.get('content-type')).toBe('application/problem+json');
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
    const get = await serve({
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
    expect((await global.peek('all')).remaining).toBe(9);
  });

  it('limits only the routes it is mounted on', async () => {
    const login = bucket('login', 1);
    const app = express();
    app.get('/livez', (_req, res) => void res.send('ok'));
    app.post(
      '/login',
      rateLimitMiddleware({ scopes: [{ limiter: login }] }),
      (_req, res) => void res.send('ok'),
    );
    const get = await listen(createServer(app));
    for (let i = 0; i < 3; i++) {
      const r = await get('/livez');
      expect(r.status).toBe(200);
      expect(r.headers.get('ratelimit')).toBeNull();
    }
    const post = (await get('/livez')).url.replace('/livez', '/login');
    expect((await fetch(post, { method: 'POST' })).status).toBe(200);
    expect((await fetch(post, { method: 'POST' })).status).toBe(429);
  });

  it('gives each client address its own quota by default, also on a connection reused for many requests', async () => {
    const ip = bucket('ip', 2);
    const get = await serve({ scopes: [{ limiter: ip }] });
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

  it('keys by the socket address by default, so X-Forwarded-For cannot buy a fresh quota', async () => {
    const get = await serve({ scopes: [{ limiter: bucket('ip', 1) }] });
    expect((await get('/', { 'x-forwarded-for': '203.0.113.1' })).status).toBe(200);
    expect((await get('/', { 'x-forwarded-for': '203.0.113.2' })).status).toBe(429);
  });

  it("ignores Express's own trust proxy setting: only the middleware's trustProxy reads the header", async () => {
    const app = express();
    app.set('trust proxy', true);
    app.use(rateLimitMiddleware({ scopes: [{ limiter: bucket('ip', 1) }] }));
    app.get('/', (_req, res) => void res.send('ok'));
    const get = await listen(createServer(app));
    expect((await get('/', { 'x-forwarded-for': '203.0.113.1' })).status).toBe(200);
    expect((await get('/', { 'x-forwarded-for': '203.0.113.2' })).status).toBe(429);
  });

  it('with trustProxy: 1 keys by the hop the proxy appended, and ignores what the client wrote before it', async () => {
    const ip = bucket('ip', 1);
    const get = await serve({ scopes: [{ limiter: ip }], trustProxy: 1 });
    expect((await get('/', { 'x-forwarded-for': '198.51.100.9, 203.0.113.1' })).status).toBe(200);
    expect((await get('/', { 'x-forwarded-for': '192.0.2.77, 203.0.113.1' })).status).toBe(429);
    expect((await get('/', { 'x-forwarded-for': '203.0.113.2' })).status).toBe(200);
    expect((await ip.peek('ip:203.0.113.1')).remaining).toBe(0);
    expect((await ip.peek('ip:127.0.0.1')).remaining).toBe(1);
  });

  it("keeps the headers on Express's 404 and on the response of a failing handler", async () => {
    const get = await serve({ scopes: [{ limiter: bucket('api', 5) }] }, (app) => {
      app.get('/boom', () => {
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

  it('passes a key function that throws to next(err), and charges nothing', async () => {
    const l = bucket('api', 5);
    const errors: unknown[] = [];
    const app = express();
    app.use(
      rateLimitMiddleware({
        scopes: [
          {
            limiter: l,
            key: () => {
              throw new Error('no tenant');
            },
          },
        ],
      }),
    );
    app.get('/', (_req, res) => void res.send('ok'));
    app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(err);
      res.status(503).end();
    });
    const get = await listen(createServer(app));
    expect((await get()).status).toBe(503);
    expect(errors).toEqual([expect.objectContaining({ message: 'no tenant' })]);
    expect((await l.peek('anything')).remaining).toBe(5);
  });

  it('awaits an async key before limiting, and passes a rejected one to next(err) charging nothing', async () => {
    const l = bucket('user', 1);
    const errors: unknown[] = [];
    const app = express();
    app.use(
      rateLimitMiddleware({
        scopes: [
          {
            limiter: l,
            key: (req) =>
              req.headers['x-user'] === undefined
                ? Promise.reject(new Error('no principal'))
                : new Promise((resolve) =>
                    setImmediate(() => resolve(`user:${String(req.headers['x-user'])}`)),
                  ),
          },
        ],
      }),
    );
    app.get('/', (_req, res) => void res.send('ok'));
    app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(err);
      res.status(503).end();
    });
    const get = await listen(createServer(app));
    const ok = await get('/', { 'x-user': 'a' });
    expect(ok.status).toBe(200);
    expect(ok.headers.get('ratelimit')).toBe('"user";r=0;t=1000');
    expect((await get('/', { 'x-user': 'a' })).status).toBe(429);
    expect((await get('/')).status).toBe(503);
    expect(errors).toEqual([expect.objectContaining({ message: 'no principal' })]);
    expect((await get('/', { 'x-user': 'b' })).status).toBe(200);
  });

  it("uses the app's problem type and code in the 429 body when given", async () => {
    const get = await serve({
      scopes: [{ limiter: bucket('api', 1) }],
      problem: { type: 'https://example.com/problems/rate-limited', code: 'RATE_LIMITED' },
    });
    expect((await get()).status).toBe(200);
    const denied = await get();
    expect(denied.status).toBe(429);
    expect(denied.headers.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(await denied.json()).toMatchObject({
      type: 'https://example.com/problems/rate-limited',
      code: 'RATE_LIMITED',
      scope: 'api',
    });
  });

  it('passes a closed limiter to next(err)', async () => {
    const l = bucket('api', 5);
    const errors: unknown[] = [];
    const app = express();
    app.use(rateLimitMiddleware({ scopes: [{ limiter: l }] }));
    app.get('/', (_req, res) => void res.send('ok'));
    app.use((err: unknown, _req: express.Request, res: express.Response, _next: express.NextFunction) => {
      errors.push(err);
      res.status(503).end();
    });
    const get = await listen(createServer(app));
    expect((await get()).status).toBe(200);
    await l.close();
    expect((await get()).status).toBe(503);
    expect(errors).toEqual([expect.objectContaining({ code: 'ERR_OMS_RATELIMIT_CLOSED' })]);
  });

  it('works on plain node:http with a next of its own', async () => {
    const limit = rateLimitMiddleware({ scopes: [{ limiter: bucket('api', 1) }] });
    const get = await listen(
      createServer((req, res) =>
        limit(req, res, (err) => {
          if (err) res.writeHead(500).end();
          else res.end('ok');
        }),
      ),
    );
    const ok = await get();
    expect(ok.status).toBe(200);
    expect(await ok.text()).toBe('ok');
    expect(ok.headers.get('ratelimit')).toBe('"api";r=0;t=1000');
    const denied = await get();
    expect(denied.status).toBe(429);
    expect(((await denied.json()) as { scope: string }).scope).toBe('api');
  });

  it('refuses bad options when the middleware is created', () => {
    expect(() => rateLimitMiddleware({ scopes: [] })).toThrow(/scopes must be a non-empty array/);
    expect(() => rateLimitMiddleware({ scopes: [{ limiter: {} as RateLimiter }] })).toThrow(
      /scopes\[0\]\.limiter/,
    );
    expect(() =>
      rateLimitMiddleware({ scopes: [{ limiter: bucket('a') }], problem: { type: 42 as unknown as string } }),
    ).toThrow(/problem.type must be a non-empty string/);
    expect(() => rateLimitMiddleware({ scopes: [{ limiter: bucket('a') }], trustProxy: ['nope'] })).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_RATELIMIT_INVALID_OPTION' }),
    );
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
      const get = await serve({ scopes: [{ limiter: l }] });
      expect((await get()).status).toBe(200);
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
  });
});
