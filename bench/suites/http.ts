import { once } from 'node:events';
import { Agent, createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import fastifyRateLimit from '@fastify/rate-limit';
import { rateLimiter, tokenBucket } from '@oms/ratelimit';
import { rateLimitMiddleware } from '@oms/ratelimit/express';
import { rateLimitPlugin } from '@oms/ratelimit/fastify';
import { rateLimit as expressRateLimit } from 'express-rate-limit';
import Fastify from 'fastify';
import { defineSuite } from '../src/harness.js';

// Per-request overhead of a rate limiter in a real framework over real HTTP on loopback: each case is IN_FLIGHT
// keep-alive GETs at once against one app; the bare app of the same framework is the floor the ratios subtract.
// Every limiter runs on its in-process memory store, keys by client IP (all requests come from 127.0.0.1), and
// has a limit so large nothing is ever denied, so each does its full admit path and sets its headers.
const IN_FLIGHT = 16;
const HUGE = 1e12;
const WINDOW_MS = 60_000;

type Fetch = () => Promise<void>;
type Handler = (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void;
/** The part of Express this suite uses (bench has express but not @types/express). */
interface ExpressApp {
  (req: IncomingMessage, res: ServerResponse): void;
  use(h: Handler): void;
  get(
    path: string,
    h: (req: IncomingMessage, res: ServerResponse & { send(body: string): void }) => void,
  ): void;
}
const express = createRequire(import.meta.url)('express') as () => ExpressApp;
const agents: Agent[] = [];

async function listen(server: Server): Promise<Fetch> {
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  agents.push(agent);
  return () =>
    new Promise<void>((resolve, reject) => {
      get({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
}
const burst = (fetch: Fetch) => () => Promise.all(Array.from({ length: IN_FLIGHT }, fetch));

const limiter = (name: string) =>
  rateLimiter({ name, algorithm: tokenBucket({ capacity: HUGE, refillPerSec: HUGE }) });

async function fastifyApp(register?: (app: ReturnType<typeof Fastify>) => Promise<unknown>) {
  const app = Fastify();
  if (register) await register(app);
  app.get('/', async () => 'ok');
  await app.ready();
  return { close: () => app.close(), fetch: await listen(app.server) };
}

async function expressApp(middleware?: Handler) {
  const app = express();
  if (middleware) app.use(middleware);
  app.get('/', (_req, res) => void res.send('ok'));
  const server = createServer(app);
  return {
    close: () => new Promise<void>((r) => server.close(() => r())),
    fetch: await listen(server),
  };
}

export default defineSuite({
  name: 'http',
  async setup() {
    const apps = {
      fastifyBare: await fastifyApp(),
      fastifyOms: await fastifyApp((app) =>
        app.register(rateLimitPlugin, { scopes: [{ limiter: limiter('f') }] }),
      ),
      fastifyAnchor: await fastifyApp((app) =>
        app.register(fastifyRateLimit, { max: HUGE, timeWindow: WINDOW_MS }),
      ),
      expressBare: await expressApp(),
      expressOms: await expressApp(rateLimitMiddleware({ scopes: [{ limiter: limiter('e') }] })),
      expressAnchor: await expressApp(
        // typed against Express's Request; at run time it is plain Connect middleware
        expressRateLimit({
          windowMs: WINDOW_MS,
          limit: HUGE,
          standardHeaders: 'draft-8',
          legacyHeaders: false,
        }) as unknown as Handler,
      ),
    };
    // warm every app (JIT, sockets) before the first measured case
    for (const a of Object.values(apps)) await burst(a.fetch)();
    return apps;
  },
  cases: (a) => [
    { name: 'fastify bare', ops: IN_FLIGHT, fn: burst(a.fastifyBare.fetch) },
    { name: 'fastify + oms plugin', ops: IN_FLIGHT, fn: burst(a.fastifyOms.fetch) },
    { name: 'fastify + @fastify/rate-limit', ops: IN_FLIGHT, fn: burst(a.fastifyAnchor.fetch) },
    { name: 'express bare', ops: IN_FLIGHT, fn: burst(a.expressBare.fetch) },
    { name: 'express + oms middleware', ops: IN_FLIGHT, fn: burst(a.expressOms.fetch) },
    { name: 'express + express-rate-limit', ops: IN_FLIGHT, fn: burst(a.expressAnchor.fetch) },
  ],
  ratios: [
    {
      name: 'fastify: oms overhead / @fastify/rate-limit overhead',
      numerator: 'fastify + oms plugin',
      denominator: 'fastify + @fastify/rate-limit',
      subtract: 'fastify bare',
      goal: '<= 1',
    },
    {
      name: 'fastify: oms time / @fastify/rate-limit time',
      numerator: 'fastify + oms plugin',
      denominator: 'fastify + @fastify/rate-limit',
      goal: '<= 1',
    },
    {
      name: 'express: oms overhead / express-rate-limit overhead',
      numerator: 'express + oms middleware',
      denominator: 'express + express-rate-limit',
      subtract: 'express bare',
      goal: '<= 1',
    },
    {
      name: 'express: oms time / express-rate-limit time',
      numerator: 'express + oms middleware',
      denominator: 'express + express-rate-limit',
      goal: '<= 1',
    },
  ],
  async teardown(a) {
    for (const agent of agents.splice(0)) agent.destroy();
    await Promise.all(Object.values(a).map((x) => x.close()));
  },
});
