// Compares fresh bench/results/*.json with the committed ones (or those at --base <git ref>) and flags every
// case that got more than 10% slower and every goal-bearing ratio that moved more than 10% the wrong way.
// Figures are medians over runs, so one noisy run does not flag; rerun a flagged suite before believing it.
// Usage: pnpm bench:compare [--base <ref>] [--threshold 0.1]
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { table } from './format.js';

interface Results {
  suite: string;
  cases: { name: string; medianNsPerOp: number }[];
  ratios: { name: string; value: number; goal?: string }[];
}

export interface Change {
  suite: string;
  what: string;
  base: number;
  current: number;
  /** Relative change in the bad direction: +0.25 is 25% worse. */
  worse: number;
  regression: boolean;
}

/** Higher is better for a `>=` goal, lower for a `<=` goal; a ratio with no goal has no direction. */
const direction = (goal: string | undefined): 1 | -1 | 0 =>
  !goal ? 0 : /^\s*>/.test(goal) ? 1 : /^\s*</.test(goal) ? -1 : 0;

export function compareResults(base: Results, current: Results, threshold = 0.1): Change[] {
  const out: Change[] = [];
  const baseCases = new Map(base.cases.map((c) => [c.name, c.medianNsPerOp]));
  for (const c of current.cases) {
    const b = baseCases.get(c.name);
    if (b === undefined || !(b > 0)) continue;
    const worse = c.medianNsPerOp / b - 1;
    out.push({
      suite: current.suite,
      what: c.name,
      base: b,
      current: c.medianNsPerOp,
      worse,
      regression: worse > threshold,
    });
  }
  const baseRatios = new Map(base.ratios.map((r) => [r.name, r.value]));
  for (const r of current.ratios) {
    const b = baseRatios.get(r.name);
    const dir = direction(r.goal);
    if (b === undefined || !(b > 0) || dir === 0) continue;
    const worse = dir === 1 ? b / r.value - 1 : r.value / b - 1;
    out.push({
      suite: current.suite,
      what: `ratio: ${r.name}`,
      base: b,
      current: r.value,
      worse,
      regression: worse > threshold,
    });
  }
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const { values } = parseArgs({
    options: { base: { type: 'string', default: 'HEAD' }, threshold: { type: 'string', default: '0.1' } },
  });
  const threshold = Number(values.threshold);
  const resultsDir = fileURLToPath(new URL('../results/', import.meta.url));
  const repo = fileURLToPath(new URL('../../', import.meta.url));
  const changes: Change[] = [];
  const files = existsSync(resultsDir) ? readdirSync(resultsDir).filter((f) => f.endsWith('.json')) : [];
  for (const f of files) {
    let committed: string;
    try {
      committed = execFileSync('git', ['show', `${values.base}:bench/results/${f}`], {
        cwd: repo,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'ignore'],
      });
    } catch {
      console.log(`${f}: nothing committed at ${values.base} to compare with`);
      continue;
    }
    changes.push(
      ...compareResults(
        JSON.parse(committed),
        JSON.parse(readFileSync(join(resultsDir, f), 'utf8')),
        threshold,
      ),
    );
  }
  const pct = (x: number) => `${x > 0 ? '+' : ''}${(x * 100).toFixed(1)}%`;
  console.log(
    table([
      ['suite', 'case', 'committed', 'now', 'worse by', ''],
      ...changes.map((c) => [
        c.suite,
        c.what,
        c.base.toPrecision(4),
        c.current.toPrecision(4),
        pct(c.worse),
        c.regression ? 'REGRESSION' : '',
      ]),
    ]),
  );
  const bad = changes.filter((c) => c.regression);
  console.log(
    JSON.stringify({ base: values.base, threshold, compared: changes.length, regressions: bad }, null, 2),
  );
  process.exit(bad.length ? 1 : 0);
}
