// `pnpm demo`: a guided tour of the reference app. It starts the payments service and the app as real
// processes (`node dist/main.js`), walks through every feature over HTTP and prints one table row per step.
// Exits 0 only when every step behaved as expected. `--instances 3` runs three app instances on PostgreSQL and
// Redis (DATABASE_URL/REDIS_URL, or throwaway servers) and shows what they share.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureDevKeys, mintDevToken } from '../dev-keys.js';
import { call, type Json, sleep } from './http.js';
import {
  type AppInstance,
  killAll,
  type Payments,
  spawnedPids,
  startApp,
  startPayments,
  terminate,
} from './processes.js';
import * as s from './steps.js';
import { expectThat, StepFailed, TourTable } from './table.js';

const { values } = parseArgs({
  options: {
    instances: { type: 'string', default: '1' },
    'data-dir': { type: 'string' },
    fresh: { type: 'boolean', default: false },
    report: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help) {
  process.stdout.write(`usage: pnpm demo [--instances 3] [--data-dir ./.data | --fresh] [--report tour.json]

  Embedded by default (PGlite, memory stores), keeping its state in ./.data (--fresh: a temporary DATA_DIR,
  removed after); with DATABASE_URL and REDIS_URL set, the same tour runs on them. --instances 3 runs three app instances on PostgreSQL + Redis (throwaway
  servers unless DATABASE_URL and REDIS_URL are set) and shows the shared limit, breaker and backup schedule.
`);
  process.exit(0);
}
const instances = Number(values.instances);
if (!Number.isInteger(instances) || instances < 1 || instances > 5) {
  process.stderr.write(`demo: --instances must be an integer in 1..5 (got ${values.instances})\n`);
  process.exit(2);
}
const scale = instances > 1;
const T0 = performance.now();
const run = randomBytes(3).toString('hex');
const table = new TourTable();
const cleanups: (() => Promise<void> | void)[] = [];
const watchdogMs = Number(process.env.OMS_DEMO_TIMEOUT_MS ?? (scale ? 240_000 : 170_000));
const out = (t: string) => process.stdout.write(t);

async function cleanup(): Promise<void> {
  killAll();
  for (const c of cleanups.splice(0).reverse()) {
    try {
      await c();
    } catch {
      // best effort: the tour's verdict is already printed
    }
  }
}
async function finish(code: number): Promise<never> {
  out(table.summary(performance.now() - T0));
  if (values.report) {
    writeFileSync(
      resolve(values.report),
      `${JSON.stringify({ ok: code === 0, instances, ms: Math.round(performance.now() - T0), pids: spawnedPids(), rows: table.rows }, null, 2)}\n`,
    );
  }
  await cleanup();
  process.exit(code);
}
const watchdog = setTimeout(() => {
  out(`\ndemo: gave up after ${watchdogMs} ms (OMS_DEMO_TIMEOUT_MS)\n`);
  void finish(1);
}, watchdogMs);
watchdog.unref();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    out(`\ndemo: ${sig}, stopping every process it started\n`);
    void cleanup().then(() => process.exit(130));
  });
}

// ---- shared setup -----------------------------------------------------------------------------------------

// scale-out always gets a fresh one: its instances share it (dev keys, backups) and it must hold only this run
const fresh = values.fresh || (scale && !values['data-dir']);
const dataDir = fresh ? mkdtempSync(join(tmpdir(), 'oms-tour-')) : resolve(values['data-dir'] ?? './.data');
if (fresh) cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
const mint: s.Mint = (role, subject) => mintDevToken({ dataDir, role, subject, ttlSec: 900 });

function backendsOf(a: AppInstance): string {
  const l = a.startLine as Json;
  const b = l?.backends ?? l;
  if (!b || typeof b !== 'object') return 'backends: (no start line found)';
  return Object.entries(b)
    .filter(([k]) => !['level', 'time', 'pid', 'hostname', 'msg', 'v', 'instance'].includes(k))
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
}

async function startStep(
  name: string,
  env: Record<string, string>,
  pollMs = 20,
): Promise<AppInstance | undefined> {
  return table.step(`start ${name} (node dist/main.js)`, async () => {
    const initdb = !(env.DATABASE_URL ?? process.env.DATABASE_URL) && !existsSync(join(dataDir, 'pg'));
    const a = await startApp(name, env, { pollMs, timeoutMs: 120_000 });
    cleanups.push(() => void a.proc.child.kill('SIGKILL'));
    return {
      result: `spawn -> /readyz 200 in ${Math.round(a.readyMs)} ms (goal < 3000${initdb ? '; first run: PGlite initdb' : ''}) at ${a.url}`,
      details: [backendsOf(a)],
      value: a,
    };
  });
}

const paymentsStep = () =>
  table.step('start the payments service', async () => {
    const p = await startPayments();
    cleanups.push(() => void p.proc.child.kill('SIGKILL'));
    return { result: `listening at ${p.url} (fault switches: PUT /faults)`, value: p };
  });

async function stopPayments(p: Payments | undefined) {
  if (p) await terminate(p.proc, 5_000);
}

// ---- embedded (or single instance on DATABASE_URL/REDIS_URL) ----------------------------------------------

async function embedded(): Promise<number> {
  const external = Boolean(process.env.DATABASE_URL && process.env.REDIS_URL);
  out(
    `\n@oms reference tour: ${external ? 'one instance on PostgreSQL + Redis (DATABASE_URL, REDIS_URL)' : 'embedded (PGlite + memory stores, nothing to install)'}\nDATA_DIR ${dataDir}\n\n`,
  );
  const payments = await paymentsStep();
  if (!payments) return 1;
  const app = await startStep('the app', {
    DATA_DIR: dataDir,
    PAYMENTS_URL: payments.url,
    INSTANCE_ID: `tour-${run}`,
    RATE_GLOBAL_PER_MIN: '100000',
    RATE_IP_PER_MIN: '100000',
    RATE_PRINCIPAL_PER_MIN: '1000',
    RATE_ROUTE_PER_MIN: '30',
    BREAKER_OPEN_MS: '3000',
    SHUTDOWN_DRAIN_MS: '500',
    SHUTDOWN_TIMEOUT_MS: '15000',
    BACKUP_EVERY_MS: '0',
  });
  if (!app) return 1;
  const ctx: s.TourContext = { run, mint, payments };
  const first = await table.step('create an order (Idempotency-Key)', () => s.stepCreate(ctx, app));
  await table.step('replay the same Idempotency-Key', () => s.stepReplay(app, first));
  await table.step('pay the order', () => s.stepPay(ctx, app, first));
  await table.step('RBAC: token, ownership, roles', () => s.stepRbac(ctx, app, first));
  await table.step('X-Request-Id and traceparent', () => s.stepTracing(app, first));
  const tripped = await table.step('payments down: the breaker trips', () => s.stepTrip(ctx, [app], 'trip'));
  await table.step('payments up: the breaker recovers', () => s.stepRecover(ctx, [app], tripped));
  await table.step('rate limit: a 429 and its headers', () => s.stepRateLimit(ctx, app));
  await table.step('maintenance freeze: 423', () => s.stepFreeze(ctx, app, first));
  await table.step('outbox -> inbox: exactly once', () => s.stepOutbox(ctx, app, first));
  await table.step('backup: create and verify', () => s.stepBackup(ctx, app, first));
  await table.step('audit chain verifies', () => s.stepAudit(ctx, app));
  await table.step('/health excerpt', () => s.stepHealth(app));
  await table.step('/metrics excerpt', () => s.stepMetrics(app));
  await table.step('graceful shutdown (SIGTERM)', () =>
    s.stepShutdownInFlight(ctx, app, () => terminate(app.proc)),
  );
  await stopPayments(payments);
  return table.ok ? 0 : 1;
}

// ---- scale-out ------------------------------------------------------------------------------------------

const GLOBAL_PER_MIN = 300;
const BACKUP_EVERY_MS = 2_500;

async function scaleOut(): Promise<number> {
  out(
    `\n@oms reference tour: ${instances} instances on PostgreSQL + Redis\nDATA_DIR ${dataDir} (shared: dev keys, backups)\n\n`,
  );
  const servers = await table.step('PostgreSQL + Redis', async () => {
    if (process.env.DATABASE_URL && process.env.REDIS_URL) {
      return {
        result: 'from DATABASE_URL and REDIS_URL',
        value: { databaseUrl: process.env.DATABASE_URL, redisUrl: process.env.REDIS_URL },
      };
    }
    const { startPostgres, startRedis } = await import('@oms/testkit/servers');
    const [pg, redis] = await Promise.all([startPostgres(), startRedis()]);
    cleanups.push(
      () => pg.stop(),
      () => redis.stop(),
    );
    return {
      result: `throwaway servers: ${pg.url} and ${redis.url}`,
      value: { databaseUrl: pg.url, redisUrl: redis.url },
    };
  });
  if (!servers) return 1;
  const payments = await paymentsStep();
  if (!payments) return 1;
  await ensureDevKeys(dataDir);
  const env = (i: number): Record<string, string> => ({
    DATA_DIR: dataDir,
    DATABASE_URL: servers.databaseUrl,
    REDIS_URL: servers.redisUrl,
    PAYMENTS_URL: payments.url,
    INSTANCE_ID: `app-${i}`,
    RATE_GLOBAL_PER_MIN: String(GLOBAL_PER_MIN),
    RATE_IP_PER_MIN: '1000000',
    RATE_PRINCIPAL_PER_MIN: '1000000',
    RATE_ROUTE_PER_MIN: '1000000',
    // long enough that the pay-while-open check on the last instance lands before half-open, on a slow machine
    BREAKER_OPEN_MS: '5000',
    BACKUP_EVERY_MS: String(BACKUP_EVERY_MS),
    SHUTDOWN_DRAIN_MS: '300',
    SHUTDOWN_TIMEOUT_MS: '15000',
  });
  // the first instance migrates alone; the others start together
  const firstApp = await startStep('app-1', env(1), 50);
  if (!firstApp) return 1;
  const rest = await Promise.all(
    Array.from({ length: instances - 1 }, (_, i) =>
      startApp(`app-${i + 2}`, env(i + 2), { pollMs: 50 }).then(
        (a) => {
          cleanups.push(() => void a.proc.child.kill('SIGKILL'));
          return a;
        },
        (e: Error) => e,
      ),
    ),
  );
  for (const [i, r] of rest.entries()) {
    await table.step(`start app-${i + 2} (node dist/main.js)`, async () => {
      if (r instanceof Error) throw r;
      return {
        result: `spawn -> /readyz 200 in ${Math.round(r.readyMs)} ms at ${r.url}`,
        details: [backendsOf(r)],
      };
    });
  }
  const apps = [firstApp, ...rest.filter((r): r is AppInstance => !(r instanceof Error))];
  if (apps.length !== instances) return 1;
  const ctx: s.TourContext = { run, mint, payments };
  const tripped = await table.step('one breaker: tripped on app-1, open everywhere', () =>
    s.stepTrip(ctx, apps, 'scale'),
  );
  await table.step('one breaker: recovery seen everywhere', () => s.stepRecover(ctx, apps, tripped));
  await table.step(`one backup per period (BACKUP_EVERY_MS=${BACKUP_EVERY_MS})`, () =>
    backupsPerPeriod(apps),
  );
  await table.step(`one global limit (${GLOBAL_PER_MIN}/min) across ${instances} instances`, () =>
    globalLimit(apps),
  );
  await table.step(`graceful shutdown of ${instances} instances`, async () => {
    const exits = await Promise.all(apps.map((a) => terminate(a.proc)));
    const bad = exits.map((e, i) => ({ ...e, name: apps[i]!.name })).filter((e) => e.code !== 0 || e.killed);
    expectThat(
      bad.length === 0,
      `not a clean exit: ${bad.map((b) => `${b.name} code ${b.code} signal ${b.signal}`).join(', ')}`,
    );
    return { result: `every instance exited 0 (${exits.map((e) => `${Math.round(e.at)} ms`).join(', ')})` };
  });
  await stopPayments(payments);
  return table.ok ? 0 : 1;
}

async function backupsPerPeriod(apps: AppInstance[]) {
  const admin = await mint('admin', `ops-backups-${run}`);
  const reader = apps[apps.length - 1]!;
  let last: Json;
  const list = await s
    .waitFor(
      async () => {
        const r = await call('GET', `${reader.url}/admin/backups`, { token: admin });
        expectThat(r.status === 200, `GET /admin/backups: ${r.status} ${r.text.slice(0, 160)}`);
        last = r.body;
        const bs = (r.body.backups as { id: string; time: string }[]) ?? [];
        return bs.length >= 3 ? bs : undefined;
      },
      'three scheduled backups',
      { timeoutMs: 40_000, everyMs: 250 },
    )
    .catch((e: Error) => {
      throw new StepFailed(e.message, [
        `last GET /admin/backups: ${JSON.stringify(last ?? {}).slice(0, 300)}`,
      ]);
    });
  const times = list.map((b) => Date.parse(b.time)).sort((a, b) => a - b);
  const periods = new Map<number, number>();
  for (const t of times)
    periods.set(Math.floor(t / BACKUP_EVERY_MS), (periods.get(Math.floor(t / BACKUP_EVERY_MS)) ?? 0) + 1);
  const doubled = [...periods.entries()].filter(([, n]) => n > 1);
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  const details = [
    `backups: ${list.map((b) => b.id).join(', ')}`,
    `gaps between snapshots: ${gaps.map((g) => `${g} ms`).join(', ')}`,
  ];
  expectThat(
    doubled.length === 0,
    `${doubled.length} period(s) got more than one backup (${instances} schedulers did not share the lock)`,
    details,
  );
  return {
    result: `${list.length} backups in ${periods.size} periods, one each, from ${apps.length} scheduling instances (lock + period check)`,
    details,
  };
}

async function globalLimit(apps: AppInstance[]) {
  const tokens = await Promise.all(
    Array.from({ length: 30 }, (_, i) => mint('customer', `load-${i}-${run}`)),
  );
  const perInstance = GLOBAL_PER_MIN; // each instance alone gets N requests: a per-instance limit admits them all
  const total = perInstance * apps.length;
  const admitted = apps.map(() => 0);
  const denied = apps.map(() => 0);
  const odd: string[] = [];
  let next = 0;
  const errorsBefore = await Promise.all(apps.map(s.rateLimitStoreErrors));
  const t0 = performance.now();
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= total) return;
      const a = i % apps.length;
      const r = await call('GET', `${apps[a]!.url}/v1/orders?limit=1`, { token: tokens[i % tokens.length] });
      if (r.status === 200) admitted[a]!++;
      else if (r.status === 429) denied[a]!++;
      else odd.push(`${r.status} ${r.text.slice(0, 80)}`);
    }
  };
  await Promise.all(Array.from({ length: 24 }, worker));
  const elapsed = performance.now() - t0;
  const sum = admitted.reduce((x, y) => x + y, 0);
  // the limiter refills while the burst runs: allow exactly that much above N
  const bound = GLOBAL_PER_MIN + Math.ceil((GLOBAL_PER_MIN * elapsed) / 60_000);
  const errorsAfter = await Promise.all(apps.map(s.rateLimitStoreErrors));
  const storeErrors = errorsAfter.reduce((x, e, i) => x + e - errorsBefore[i]!, 0);
  const details = apps.map(
    (a, i) => `${a.name}: sent ${perInstance}, admitted ${admitted[i]}, 429 ${denied[i]}`,
  );
  details.push(
    `burst took ${Math.round(elapsed)} ms; bound N + refill during it = ${bound}${storeErrors ? `; ${storeErrors} store timeouts, denied by the global limit ('closed')` : '; no store errors'}`,
  );
  expectThat(odd.length === 0, `unexpected answers: ${odd.slice(0, 3).join('; ')}`, details);
  expectThat(sum <= bound, `admitted ${sum} > ${bound}: the limit is not shared`, details);
  expectThat(
    denied.every((d) => d > 0),
    'an instance denied nothing: each alone was under N',
    details,
  );
  return {
    result: `${total} requests round-robin, ${sum} admitted <= N=${GLOBAL_PER_MIN} (+${bound - GLOBAL_PER_MIN} refill); every instance answered 429`,
    details,
  };
}

// ---- main -----------------------------------------------------------------------------------------------

try {
  const code = scale ? await scaleOut() : await embedded();
  await sleep(0);
  await finish(code);
} catch (e) {
  out(`\ndemo: ${(e as Error).stack ?? String(e)}\n`);
  await finish(1);
}
