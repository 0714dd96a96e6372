import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startPostgres, startRedis } from '@oms/testkit/servers';
import { measure } from 'mitata';
import { caseRows, table } from './format.js';
import { type BenchEnv, median, meetsGoal, type Suite } from './harness.js';
import { describeMachine, type Machine } from './machine.js';
import { measureRedisCost, type RedisCost } from './redis-cost.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const suitesDir = join(here, '..', 'suites');
const resultsDir = join(here, '..', 'results');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    runs: { type: 'string', default: process.env.OMS_BENCH_RUNS ?? '3' },
    time: { type: 'string', default: process.env.OMS_BENCH_TIME_MS ?? '400' },
  },
});
const runs = Number(values.runs);
const timeMs = Number(values.time);
if (!Number.isInteger(runs) || runs < 1)
  throw new Error(`--runs must be an integer >= 1 (got ${values.runs})`);
if (!(timeMs > 0)) throw new Error(`--time must be > 0 ms (got ${values.time})`);

interface CaseResult {
  name: string;
  ops: number;
  /** Median over runs of each run's p50, in ns per op. */
  medianNsPerOp: number;
  minNsPerOp: number;
  maxNsPerOp: number;
  opsPerSec: number;
  runsNsPerOp: number[];
  /** Server CPU µs and commands per op, for `redis: true` cases. */
  redisUsecPerOp?: number;
  redisCallsPerOp?: number;
  redisCalls?: Record<string, number>;
}

interface RatioResult {
  name: string;
  numerator: string;
  denominator: string;
  subtract?: string;
  value: number;
  runs: number[];
  goal?: string;
  met?: boolean;
  of?: 'time' | 'redisUsec';
}

async function environment(): Promise<{ env: BenchEnv; stop: () => Promise<void> }> {
  const redisUrl = process.env.OMS_BENCH_REDIS_URL;
  const postgresUrl = process.env.OMS_BENCH_DATABASE_URL;
  const [redis, pgServer] = await Promise.all([
    redisUrl ? undefined : startRedis(),
    postgresUrl ? undefined : startPostgres(),
  ]);
  return {
    env: {
      redisUrl: redisUrl ?? (redis?.url as string),
      postgresUrl: postgresUrl ?? (pgServer?.url as string),
    },
    stop: async () => {
      await Promise.all([redis?.stop(), pgServer?.stop()]);
    },
  };
}

async function runSuite(suite: Suite<unknown>, env: BenchEnv, machine: Machine): Promise<void> {
  const ctx = await suite.setup(env);
  try {
    const cases = suite.cases(ctx);
    const perRun = new Map<string, number[]>(cases.map((c) => [c.name, []]));
    // Runs interleave the cases so a burst of load from a neighbour lands on all of them, not on one.
    for (let r = 0; r < runs; r++) {
      // rotated each run too, so no case always follows the same neighbour (its GC debt, its warm caches)
      for (let k = 0; k < cases.length; k++) {
        const c = cases[(k + r) % cases.length] as (typeof cases)[number];
        const stats = await measure(c.fn, { min_cpu_time: timeMs * 1e6 });
        perRun.get(c.name)?.push(stats.p50 / (c.ops ?? 1));
      }
    }
    const cost = new Map<string, RedisCost>();
    for (const c of cases)
      if (c.redis) cost.set(c.name, await measureRedisCost(env.redisUrl, c.fn, c.ops ?? 1, timeMs));
    const results: CaseResult[] = cases.map((c) => {
      const xs = perRun.get(c.name) ?? [];
      const rc = cost.get(c.name);
      const med = median(xs);
      return {
        name: c.name,
        ops: c.ops ?? 1,
        medianNsPerOp: med,
        minNsPerOp: Math.min(...xs),
        maxNsPerOp: Math.max(...xs),
        opsPerSec: 1e9 / med,
        runsNsPerOp: xs,
        ...(rc ? { redisUsecPerOp: rc.usecPerOp, redisCallsPerOp: rc.callsPerOp, redisCalls: rc.calls } : {}),
      };
    });
    const byName = new Map(results.map((r) => [r.name, r]));
    const ratios: RatioResult[] = (suite.ratios ?? []).map((q) => {
      for (const n of [q.numerator, q.denominator, q.subtract]) {
        if (n !== undefined && !byName.has(n))
          throw new Error(`suite ${suite.name}: ratio '${q.name}' names unknown case '${n}'`);
      }
      if (q.of === 'redisUsec') {
        const side = (n: string) => {
          const v = byName.get(n)?.redisUsecPerOp;
          if (v === undefined)
            throw new Error(`suite ${suite.name}: ratio '${q.name}' needs case '${n}' to set redis: true`);
          return v;
        };
        const base = q.subtract ? side(q.subtract) : 0;
        const value = (side(q.numerator) - base) / (side(q.denominator) - base);
        return { ...q, value, runs: [value], met: meetsGoal(value, q.goal) };
      }
      const per = Array.from({ length: runs }, (_, i) => {
        const base = q.subtract ? (byName.get(q.subtract)?.runsNsPerOp[i] ?? 0) : 0;
        const num = (byName.get(q.numerator)?.runsNsPerOp[i] ?? 0) - base;
        const den = (byName.get(q.denominator)?.runsNsPerOp[i] ?? 0) - base;
        return num / den;
      });
      const value = median(per);
      return { ...q, value, runs: per, met: meetsGoal(value, q.goal) };
    });
    const metrics = ((await suite.metrics?.(ctx)) ?? []).map((m) => ({
      ...m,
      met: meetsGoal(m.value, m.goal),
    }));
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, `${suite.name}.json`);
    writeFileSync(
      file,
      `${JSON.stringify({ suite: suite.name, runs, timeMsPerCase: timeMs, machine, cases: results, ratios, ...(metrics.length ? { metrics } : {}) }, null, 2)}\n`,
    );
    printTable(suite.name, results, ratios);
    for (const m of metrics)
      process.stdout.write(
        `  ${m.name}: ${m.value} ${m.unit}${m.goal ? ` (goal ${m.goal}: ${m.met ? 'met' : 'NOT met'})` : ''}\n`,
      );
    process.stdout.write(`→ ${file}\n\n`);
  } finally {
    await suite.teardown?.(ctx);
  }
}

function printTable(name: string, cases: CaseResult[], ratios: RatioResult[]): void {
  const rows = caseRows(cases);
  const out = [`\n## ${name} (median of ${runs} runs)\n`, table(rows)];
  if (ratios.length) {
    out.push(
      table([
        ['ratio', 'value', 'goal', 'met'],
        ...ratios.map((r) => [
          r.name,
          r.value.toFixed(3),
          r.goal ?? '',
          r.met === undefined ? '' : r.met ? 'yes' : 'NO',
        ]),
      ]),
    );
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

const available = readdirSync(suitesDir)
  .filter((f) => f.endsWith('.ts'))
  .map((f) => basename(f, '.ts'))
  .sort((a, b) => (a === 'floors' ? -1 : b === 'floors' ? 1 : a.localeCompare(b)));
const wanted = positionals.length ? positionals : available;
for (const w of wanted)
  if (!available.includes(w)) throw new Error(`no suite '${w}' (have: ${available.join(', ')})`);

const { env, stop } = await environment();
try {
  const machine = await describeMachine(env.redisUrl, env.postgresUrl);
  process.stdout.write(
    `machine: ${machine.cores} cores (${machine.cpu}), load ${machine.loadAverage1m}, node ${machine.node}, redis ${machine.redis}, postgres ${machine.postgres}\n`,
  );
  for (const name of wanted) {
    const mod = await import(pathToFileURL(join(suitesDir, `${name}.ts`)).href);
    await runSuite(mod.default as Suite<unknown>, env, machine);
  }
} finally {
  await stop();
}
