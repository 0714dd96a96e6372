import { once } from 'node:events';
import { Agent, createServer, get, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import fastifyRateLimit from '@fastify/rate-limit';
import { rateLimiter, tokenBucket } from '@oms/ratelimit';
import { rateLimitMiddleware } from '@oms/ratelimit/express';
import { rateLimitPlugin } from '@oms/ratelimit/fastify';
import { rateLimit as expressRateLimit } from 'express-rate-limit';
import Fastify from 'fastify';
import { defineSuite, type Metric, median } from '../src/harness.js';

// Per-request overhead of a rate limiter in a real framework over real HTTP on loopback: each case is IN_FLIGHT
// keep-alive GETs at once against one app; the bare app of the same framework is the floor the ratios subtract.
// Every limiter runs on its in-process memory store, keys by client IP (all requests come from 127.0.0.1), and
// has a limit so large nothing is ever denied, so each does its full admit path and sets its headers.
const IN_FLIGHT = 16;
// Large enough that nothing is denied in a run, small enough that every count in a header stays a 32-bit
// integer, as at any real limit: at 1e12 Node formatted @fastify/rate-limit's remaining count through V8's
// slow double-to-text path on every request, a cost no deployment pays (ours formats big numbers fast).
const HUGE = 1e9;
const WINDOW_MS = 60_000;
// Warm-up before the first timed run: every app, twice round, WARM_BURSTS bursts each time. With
// one burst (later 600 ms, which was only ~40 bursts on a cold stack) the JIT had not optimized the plugins'
// paths, nor the framework and header code they share: the first plugin case measured (ours) compiled them
// during its run 1 and read up to 10 times its later runs, and the anchor after it found them ready.
const WARM_ROUNDS = 2;
const WARM_BURSTS = 150;
// CPU metrics: rounds of BURSTS bursts per app, the apps' order rotating each round. Process CPU time is what
// the server and the client in this process spend; a loaded box stretches wall time but not CPU time.
const CPU_ROUNDS = 21;
const CPU_BURSTS = { fastify: 150, express: 25 };

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

interface App {
  fetch: Fetch;
}

/**
 * Process CPU µs per request over the bare app for [bare, oms, anchor], each the median over rounds in which
 * every app runs `bursts` bursts (its place in the order rotating), and the ratio of those two medians (a
 * round's own ratio explodes when noise brings its anchor overhead near zero).
 */
async function cpuOverhead(apps: readonly [App, App, App], bursts: number) {
  const perRound: number[][] = [];
  for (let r = 0; r < CPU_ROUNDS; r++) {
    const cpu = [0, 0, 0];
    for (let k = 0; k < 3; k++) {
      const i = (k + r) % 3;
      const run = burst(apps[i]!.fetch);
      const c0 = process.cpuUsage();
      for (let b = 0; b < bursts; b++) await run();
      const c = process.cpuUsage(c0);
      cpu[i] = (c.user + c.system) / (bursts * IN_FLIGHT);
    }
    perRound.push(cpu);
  }
  const oms = perRound.map(([bare, o]) => o! - bare!);
  const anchor = perRound.map(([bare, , x]) => x! - bare!);
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return {
    ratio: round(median(oms) / median(anchor)),
    oms: round(median(oms)),
    anchor: round(median(anchor)),
  };
}

/** The published CPU figures of one framework: our overhead over its anchor's (the goal), and both per request. */
function cpuMetrics(
  framework: string,
  anchor: string,
  r: { ratio: number; oms: number; anchor: number },
): Metric[] {
  return [
    {
      name: `${framework}: oms CPU overhead / ${anchor} CPU overhead`,
      value: r.ratio,
      unit: '×',
      goal: '<= 1',
    },
    { name: `${framework}: oms CPU overhead per request`, value: r.oms, unit: 'µs' },
    { name: `${framework}: ${anchor} CPU overhead per request`, value: r.anchor, unit: 'µs' },
  ];
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
    // warm every app (JIT, sockets) the same number of requests before the first measured case
    for (let round = 0; round < WARM_ROUNDS; round++) {
      for (const a of Object.values(apps)) {
        const run = burst(a.fetch);
        for (let b = 0; b < WARM_BURSTS; b++) await run();
      }
    }
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
  // The wall-time ratios subtract two noisy medians of ~50 µs to get differences of a few µs, so on a loaded
  // box a single run can read anything; CPU time per request, interleaved, is the steadier view of the same
  // overhead. Same apps, same client, same subtraction of the bare app as the timed ratios.
  async metrics(a) {
    const fastify = await cpuOverhead([a.fastifyBare, a.fastifyOms, a.fastifyAnchor], CPU_BURSTS.fastify);
    const express = await cpuOverhead([a.expressBare, a.expressOms, a.expressAnchor], CPU_BURSTS.express);
    return [
      ...cpuMetrics('fastify', '@fastify/rate-limit', fastify),
      ...cpuMetrics('express', 'express-rate-limit', express),
    ];
  },
  async teardown(a) {
    for (const agent of agents.splice(0)) agent.destroy();
    await Promise.all(Object.values(a).map((x) => x.close()));
  },
});
