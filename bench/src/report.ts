// Writes BENCHMARKS.md at the repository root from bench/results/*.json, so the published table is exactly
// what the harness measured, then copies each suite's machine line and ratio table into the marked blocks
// (<!-- bench:<suite> --> … <!-- /bench:<suite> -->) of the package READMEs, so no README carries a figure by hand.
// A suite with no fresh result keeps its section as published. With --check it writes nothing and fails when
// a README block differs from BENCHMARKS.md.
// Usage: pnpm --filter @oms/bench report [--check]
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type CaseRow, caseRows, table } from './format.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const resultsDir = join(here, '..', 'results');
const repo = join(here, '..', '..');
const target = join(repo, 'BENCHMARKS.md');
const check = process.argv.includes('--check');

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
  cases: CaseRow[];
  ratios: { name: string; value: number; runs: number[]; goal?: string; met?: boolean }[];
  metrics?: { name: string; value: number; unit: string; goal?: string; met?: boolean }[];
}

const files = existsSync(resultsDir) ? readdirSync(resultsDir).filter((f) => f.endsWith('.json')) : [];
const results = files.map((f) => JSON.parse(readFileSync(join(resultsDir, f), 'utf8')) as Result);

const intro = [
  '# Benchmarks',
  '',
  'Written by `pnpm --filter @oms/bench report` from `bench/results/*.json` after `pnpm bench`. Each figure is the',
  "median over runs of each run's median time per operation; ratios are computed within each run (both sides on the",
  'same machine state) and the median ratio is shown. The machines are shared and noisy: compare ratios, not',
  'absolute numbers, and note the load average.',
].join('\n');

/** The published sections of BENCHMARKS.md, by suite. */
function publishedSections(md: string): Map<string, string> {
  const sections = new Map<string, string>();
  const parts = md.split(/^## /m).slice(1);
  for (const part of parts) {
    const nl = part.indexOf('\n');
    sections.set(part.slice(0, nl).trim(), part.slice(nl + 1).trim());
  }
  return sections;
}

function render(r: Result): string {
  const m = r.machine;
  const out = [
    `${m.date.slice(0, 10)}: ${m.cores} cores (${m.cpu}), load ${m.loadAverage1m}, Node ${m.node}, Redis ${m.redis}, PostgreSQL ${m.postgres.split(' ')[0]}; ${r.runs} runs × ${r.timeMsPerCase} ms per case.`,
    '',
    table(caseRows(r.cases)),
  ];
  if (r.ratios.length) {
    out.push(
      '',
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
    );
  }
  if (r.metrics?.length) {
    out.push(
      '',
      table([
        ['metric', 'value', 'goal', 'met'],
        ...r.metrics.map((q) => [
          q.name,
          `${Number(q.value.toPrecision(4))} ${q.unit}`,
          q.goal ?? '',
          q.met === undefined ? '' : q.met ? 'yes' : '**no**',
        ]),
      ]),
    );
  }
  return out.join('\n');
}

/** What a README's block for `suite` holds: the machine line and the ratio table, and where the rest is. */
export function readmeBlock(suite: string, section: string | undefined): string {
  const link = `https://github.com/oms-dev/oms/blob/main/BENCHMARKS.md#${suite}`;
  if (section === undefined) {
    return `No published run of the \`${suite}\` suite yet: \`pnpm bench ${suite}\`, then \`pnpm --filter @oms/bench report\`.`;
  }
  const paragraphs = section.split(/\n\n+/);
  const machine = paragraphs[0] ?? '';
  const ratios = paragraphs.find((p) => p.startsWith('| ratio'));
  const metrics = paragraphs.find((p) => p.startsWith('| metric'));
  return [
    `Measured by \`pnpm bench ${suite}\`. ${machine}`,
    ...(ratios ? ['', ratios] : []),
    ...(metrics ? ['', metrics] : []),
    '',
    `Every case, with the anchors' own figures: [BENCHMARKS.md](${link}).`,
  ].join('\n');
}

const sections = publishedSections(existsSync(target) ? readFileSync(target, 'utf8') : '');
for (const r of results) sections.set(r.suite, render(r));
const order = [...sections.keys()].sort((a, b) =>
  a === 'floors' ? -1 : b === 'floors' ? 1 : a.localeCompare(b),
);
const md = `${[intro, ...order.map((k) => `## ${k}\n\n${sections.get(k)}`)].join('\n\n')}\n`;

const BLOCK = /<!-- bench:([\w-]+) -->[\s\S]*?<!-- \/bench:\1 -->/g;
const stale: string[] = [];
const packagesDir = join(repo, 'packages');
for (const name of readdirSync(packagesDir)) {
  const readme = join(packagesDir, name, 'README.md');
  if (!existsSync(readme)) continue;
  const text = readFileSync(readme, 'utf8');
  const next = text.replace(
    BLOCK,
    (_all, suite: string) =>
      `<!-- bench:${suite} -->\n${readmeBlock(suite, sections.get(suite))}\n<!-- /bench:${suite} -->`,
  );
  if (next === text) continue;
  if (check) stale.push(`packages/${name}/README.md`);
  else writeFileSync(readme, next);
}

if (check) {
  // With results on disk, BENCHMARKS.md must be exactly what they render to: never edited by hand.
  if (results.length > 0 && (!existsSync(target) || readFileSync(target, 'utf8') !== md)) {
    process.stderr.write('BENCHMARKS.md differs from what bench/results/*.json render to\n');
    stale.push('');
  }
  for (const f of stale.filter(Boolean))
    process.stderr.write(`${f}: a bench block differs from BENCHMARKS.md\n`);
  if (stale.length) {
    process.stderr.write('run `pnpm --filter @oms/bench report` to rewrite them\n');
    process.exit(1);
  }
  process.stdout.write('BENCHMARKS.md matches bench/results and the README bench blocks match it\n');
} else {
  if (results.length > 0) writeFileSync(target, md);
  process.stdout.write(
    `${results.length ? `wrote ${target} from ${results.length} suite(s); ` : ''}README bench blocks rewritten\n`,
  );
}
