import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, get } from 'node:http';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildApp, type ReferenceApp } from '@oms/reference/app';
import { loadConfig } from '@oms/reference/config';
import { mintDevToken } from '@oms/reference/dev-keys';
import { type PaymentsServer, startPaymentsServer } from '@oms/reference/payments';
import Fastify from 'fastify';
import pg from 'pg';
import { defineSuite, median } from '../src/harness.js';

// The reference app's read path, GET /v1/orders/:id, through the whole stack: the request span and ids, a
// cached JWT verify, the route policy, RBAC with the ownership check, a limitAll of 4 scopes, the order read
// from the database and the audit records of both decisions. Against a bare Fastify route that returns the
// same JSON, in the same process and run, with IN_FLIGHT keep-alive GETs at once (as the http suite does).
// Embedded (PGlite + memory stores) and on PostgreSQL + Redis. Apps log at warn: the request logs of pino
// would measure stdout. Then autocannon (req/s, p99) on the same three servers, and the time from `node`
// start to /readyz = 200 in embedded mode, both printed after setup (the harness keeps per-op medians only).
const IN_FLIGHT = 16;
const HUGE = '1000000000';
const STARTS = Number(process.env.OMS_BENCH_APP_STARTS ?? 5);
const CANNON_SEC = Number(process.env.OMS_BENCH_APP_CANNON_SEC ?? 3);

/** The part of autocannon this suite uses (bench has autocannon but not its types). */
interface CannonResult {
  requests: { average: number };
  latency: { p99: number };
  errors: number;
  non2xx: number;
}
const autocannon = createRequire(import.meta.url)('autocannon') as (o: {
  url: string;
  connections: number;
  duration: number;
  headers?: Record<string, string>;
}) => Promise<CannonResult>;

type Fetch = () => Promise<void>;
const agents: Agent[] = [];

function fetcher(base: string, path: string, token?: string): Fetch {
  const { port } = new URL(base);
  const agent = new Agent({ keepAlive: true, maxSockets: IN_FLIGHT });
  agents.push(agent);
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  return () =>
    new Promise<void>((resolve, reject) => {
      get({ host: '127.0.0.1', port: Number(port), path, agent, headers }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`GET ${path}: status ${res.statusCode}`));
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
}
const burst = (f: Fetch) => () => Promise.all(Array.from({ length: IN_FLIGHT }, f));

const baseEnv = (dataDir: string, paymentsUrl: string): Record<string, string> => ({
  PORT: '0',
  HOST: '127.0.0.1',
  DATA_DIR: dataDir,
  PAYMENTS_URL: paymentsUrl,
  LOG_LEVEL: 'warn',
  RATE_GLOBAL_PER_MIN: HUGE,
  RATE_PRINCIPAL_PER_MIN: HUGE,
  RATE_IP_PER_MIN: HUGE,
  RATE_ROUTE_PER_MIN: HUGE,
  SHUTDOWN_DRAIN_MS: '0',
});

interface Stack {
  app: ReferenceApp;
  url: string;
  path: string;
  token: string;
  body: string;
}

async function stack(env: Record<string, string>, dataDir: string): Promise<Stack> {
  const app = await buildApp(loadConfig(env));
  const url = await app.listen();
  const token = await mintDevToken({
    dataDir,
    role: 'customer',
    subject: 'bench-customer',
    ttlSec: 24 * 3600,
  });
  const created = await fetch(`${url}/v1/orders`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      'idempotency-key': 'bench',
    },
    body: JSON.stringify({
      items: [
        { sku: 'book-ddia', quantity: 2, unitPriceCents: 1250 },
        { sku: 'pen-blue', quantity: 1, unitPriceCents: 300 },
      ],
      currency: 'EUR',
    }),
  });
  if (created.status !== 201 && created.status !== 200) throw new Error(`create order: ${created.status}`);
  const { order } = (await created.json()) as { order: { id: string } };
  const path = `/v1/orders/${order.id}`;
  const r = await fetch(`${url}${path}`, { headers: { authorization: `Bearer ${token}` } });
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status}`);
  return { app, url, path, token, body: await r.text() };
}

/** Spawns `node dist/main.js` on an initialised DATA_DIR and times spawn -> first /readyz 200, then stops it. */
async function timeToReady(env: Record<string, string>): Promise<number> {
  const main = fileURLToPath(new URL('./main.js', import.meta.resolve('@oms/reference/app')));
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, ...env, PORT: String(port), LOG_LEVEL: 'warn' },
    stdio: 'ignore',
  });
  try {
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`the app exited with ${child.exitCode} before /readyz = 200`);
      const ok = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.status === 200,
        () => false,
      );
      if (ok) return performance.now() - t0;
      if (performance.now() - t0 > 120_000) throw new Error('/readyz not 200 within 120 s');
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await once(child, 'exit');
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

interface Cannon {
  reqPerSec: number;
  p99Ms: number;
  errors: number;
}
async function cannon(url: string, token?: string): Promise<Cannon> {
  const r = await autocannon({
    url,
    connections: IN_FLIGHT,
    duration: CANNON_SEC,
    ...(token ? { headers: { authorization: `Bearer ${token}` } } : {}),
  });
  return { reqPerSec: r.requests.average, p99Ms: r.latency.p99, errors: r.errors + r.non2xx };
}

export default defineSuite({
  name: 'app',
  async setup(env) {
    const payments: PaymentsServer = await startPaymentsServer();
    const dirs: string[] = [];
    const tmp = (p: string) => {
      const d = mkdtempSync(join(tmpdir(), p));
      dirs.push(d);
      return d;
    };

    // time to ready: a DATA_DIR initialised once (the first start of a fresh one also runs PGlite's initdb)
    const startDir = tmp('oms-bench-app-start-');
    const startEnv = baseEnv(startDir, payments.url);
    const firstStartMs = await timeToReady(startEnv);
    const starts: number[] = [];
    for (let i = 0; i < STARTS; i++) starts.push(await timeToReady(startEnv));

    // the in-process embedded stack reuses that DATA_DIR (the child processes are gone): no second initdb
    const memDir = startDir;
    const embedded = await stack(baseEnv(memDir, payments.url), memDir);

    const admin = new pg.Client({ connectionString: env.postgresUrl });
    await admin.connect();
    const dbName = `oms_bench_app_${process.pid}`;
    await admin.query(`drop database if exists ${dbName}`);
    await admin.query(`create database ${dbName}`);
    await admin.end();
    const dbUrl = new URL(env.postgresUrl);
    dbUrl.pathname = `/${dbName}`;
    const pgDir = tmp('oms-bench-app-pg-');
    const onServers = await stack(
      {
        ...baseEnv(pgDir, payments.url),
        DATABASE_URL: dbUrl.toString(),
        REDIS_URL: env.redisUrl,
        REDIS_PREFIX: `bench-app-${process.pid}:`,
      },
      pgDir,
    );

    // the bare route returns the very bytes the stack returns
    const bare = Fastify();
    const body = embedded.body;
    bare.get('/v1/orders/:id', async (_req, reply) =>
      reply.type('application/json; charset=utf-8').send(body),
    );
    const bareUrl = await bare.listen({ port: 0, host: '127.0.0.1' });

    // attribution: the same stack on a route with the same auth, RBAC, limitAll and audit record but no
    // database read (GET /admin/breakers answers from memory), and the app's bare framework path (/livez:
    // public, no limits, but the request span and ids)
    const support = async (dir: string) =>
      mintDevToken({ dataDir: dir, role: 'support', subject: 'bench-support', ttlSec: 24 * 3600 });
    const targets = {
      bare: fetcher(bareUrl, embedded.path),
      embedded: fetcher(embedded.url, embedded.path, embedded.token),
      onServers: fetcher(onServers.url, onServers.path, onServers.token),
      embeddedNoDb: fetcher(embedded.url, '/admin/breakers', await support(memDir)),
      onServersNoDb: fetcher(onServers.url, '/admin/breakers', await support(pgDir)),
      embeddedLivez: fetcher(embedded.url, '/livez'),
    };
    for (const f of Object.values(targets)) for (let i = 0; i < 20; i++) await burst(f)();

    // autocannon, interleaved so neighbours' load lands on all three
    const rounds: Record<'bare' | 'embedded' | 'onServers', Cannon[]> = {
      bare: [],
      embedded: [],
      onServers: [],
    };
    for (let i = 0; i < 3; i++) {
      rounds.bare.push(await cannon(`${bareUrl}${embedded.path}`));
      rounds.embedded.push(await cannon(`${embedded.url}${embedded.path}`, embedded.token));
      rounds.onServers.push(await cannon(`${onServers.url}${onServers.path}`, onServers.token));
    }
    const med = (xs: Cannon[], k: keyof Cannon) => median(xs.map((x) => x[k]));
    const bareRps = med(rounds.bare, 'reqPerSec');
    const lines = [
      `\n## app: autocannon, ${IN_FLIGHT} connections, ${CANNON_SEC} s x 3 rounds (medians)\n`,
      '| target | req/s | p99 ms | req/s / bare | errors |',
      '| --- | ---: | ---: | ---: | ---: |',
      ...(['bare', 'embedded', 'onServers'] as const).map((k) => {
        const rps = med(rounds[k], 'reqPerSec');
        const label = {
          bare: 'bare Fastify route',
          embedded: 'stack, embedded (PGlite + memory)',
          onServers: 'stack, PostgreSQL + Redis',
        }[k];
        return `| ${label} | ${Math.round(rps)} | ${med(rounds[k], 'p99Ms')} | ${(rps / bareRps).toFixed(3)} | ${rounds[k].reduce((a, x) => a + x.errors, 0)} |`;
      }),
      `\nnode start -> /readyz 200 (embedded, initialised DATA_DIR): median ${Math.round(median(starts))} ms over ${STARTS} starts (${starts.map((s) => Math.round(s)).join(', ')}); first start of a fresh DATA_DIR (PGlite initdb) ${Math.round(firstStartMs)} ms; goal < 3000 ms\n`,
    ];
    process.stdout.write(`${lines.join('\n')}\n`);

    return {
      targets,
      close: async () => {
        await bare.close();
        await embedded.app.close();
        await onServers.app.close();
        await payments.close();
        for (const d of dirs) rmSync(d, { recursive: true, force: true });
        const c = new pg.Client({ connectionString: env.postgresUrl });
        await c.connect();
        await c.query(`drop database if exists ${dbName} with (force)`).finally(() => c.end());
      },
    };
  },
  cases: ({ targets }) => [
    { name: 'bare Fastify route', ops: IN_FLIGHT, fn: burst(targets.bare) },
    { name: 'stack, embedded (PGlite + memory)', ops: IN_FLIGHT, fn: burst(targets.embedded) },
    { name: 'stack, PostgreSQL + Redis', ops: IN_FLIGHT, fn: burst(targets.onServers) },
    {
      name: 'stack without the read (GET /admin/breakers), embedded',
      ops: IN_FLIGHT,
      fn: burst(targets.embeddedNoDb),
    },
    {
      name: 'stack without the read (GET /admin/breakers), PostgreSQL + Redis',
      ops: IN_FLIGHT,
      fn: burst(targets.onServersNoDb),
    },
    { name: 'app framework path (GET /livez), embedded', ops: IN_FLIGHT, fn: burst(targets.embeddedLivez) },
  ],
  ratios: [
    {
      name: 'embedded stack throughput / bare route throughput',
      numerator: 'bare Fastify route',
      denominator: 'stack, embedded (PGlite + memory)',
      goal: '>= 0.75',
    },
    {
      name: 'PostgreSQL + Redis stack throughput / bare route throughput',
      numerator: 'bare Fastify route',
      denominator: 'stack, PostgreSQL + Redis',
      goal: '>= 0.75',
    },
    {
      name: 'embedded stack without the read / bare route (throughput)',
      numerator: 'bare Fastify route',
      denominator: 'stack without the read (GET /admin/breakers), embedded',
    },
    {
      name: 'PostgreSQL + Redis stack without the read / bare route (throughput)',
      numerator: 'bare Fastify route',
      denominator: 'stack without the read (GET /admin/breakers), PostgreSQL + Redis',
    },
    {
      name: 'app framework path (/livez) / bare route (throughput)',
      numerator: 'bare Fastify route',
      denominator: 'app framework path (GET /livez), embedded',
    },
  ],
  async teardown(ctx) {
    for (const a of agents.splice(0)) a.destroy();
    await ctx.close();
  },
});
