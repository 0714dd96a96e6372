// Writes BENCHMARKS.md at the repository root from bench/results/*.json, so the published table is exactly
// what the harness measured. Usage: pnpm --filter @oms/bench report
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fmtNs, fmtOps, table } from './format.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const resultsDir = join(here, '..', 'results');
const target = join(here, '..', '..', 'BENCHMARKS.md');

interface Result {
  suite: string;
  runs: number;
  timeMsPerCase: number;
  machine: {
    cores: number;
    cpu: string;
    loadAverage1m: number;
    node: string;
    redis: string;
    postgres: string;
    date: string;
  };
  cases: { name: string; medianNsPerOp: number; minNsPerOp: number; maxNsPerOp: number; opsPerSec: number }[];
  ratios: { name: string; value: number; runs: number[]; goal?: string; met?: boolean }[];
}

const files = existsSync(resultsDir) ? readdirSync(resultsDir).filter((f) => f.endsWith('.json')) : [];
const results = files
  .map((f) => JSON.parse(readFileSync(join(resultsDir, f), 'utf8')) as Result)
  .sort((a, b) => (a.suite === 'floors' ? -1 : b.suite === 'floors' ? 1 : a.suite.localeCompare(b.suite)));

const out: string[] = [
  '# Benchmarks',
  '',
  'Written by `pnpm --filter @oms/bench report` from `bench/results/*.json` after `pnpm bench`. Each figure is the',
  "median over runs of each run's median time per operation; ratios are computed within each run (both sides on the",
  'same machine state) and the median ratio is shown. The machines are shared and noisy: compare ratios, not',
  'absolute numbers, and note the load average.',
  '',
];
for (const r of results) {
  const m = r.machine;
  out.push(
    `## ${r.suite}`,
    '',
    `${m.date.slice(0, 10)}: ${m.cores} cores (${m.cpu}), load ${m.loadAverage1m}, Node ${m.node}, Redis ${m.redis}, PostgreSQL ${m.postgres.split(' ')[0]}; ${r.runs} runs × ${r.timeMsPerCase} ms per case.`,
    '',
    table([
      ['case', 'median/op', 'ops/s', 'min–max/op'],
      ...r.cases.map((c) => [
        c.name,
        fmtNs(c.medianNsPerOp),
        fmtOps(c.opsPerSec),
        `${fmtNs(c.minNsPerOp)} – ${fmtNs(c.maxNsPerOp)}`,
      ]),
    ]),
    '',
  );
  if (r.ratios.length) {
    out.push(
      table([
        ['ratio', 'median', 'per run', 'goal', 'met'],
        ...r.ratios.map((q) => [
          q.name,
          q.value.toFixed(3),
          q.runs.map((x) => x.toFixed(3)).join(', '),
          q.goal ?? '',
          q.met === undefined ? '' : q.met ? 'yes' : '**no**',
        ]),
      ]),
      '',
    );
  }
}
writeFileSync(target, `${out.join('\n').trimEnd()}\n`);
process.stdout.write(`wrote ${target} from ${results.length} suite(s)\n`);
