/** Human units for a time per operation. */
export function fmtNs(ns: number): string {
  if (ns >= 1e6) return `${(ns / 1e6).toFixed(2)} ms`;
  if (ns >= 1e3) return `${(ns / 1e3).toFixed(2)} µs`;
  return `${ns.toFixed(1)} ns`;
}

export function fmtOps(ops: number): string {
  return ops >= 1e6
    ? `${(ops / 1e6).toFixed(2)}M/s`
    : ops >= 1e3
      ? `${(ops / 1e3).toFixed(1)}k/s`
      : `${ops.toFixed(0)}/s`;
}

/** A Markdown table, padded so it also reads well in a terminal. */
export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  const line = (r: string[]) => `| ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  return [
    line(rows[0] ?? []),
    // the delimiter row as Biome formats Markdown, so the README blocks copied from it stay lint-clean
    `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`,
    ...rows.slice(1).map(line),
  ].join('\n');
}

/** The columns of a case table; the Redis server columns appear when any case measured them. */
export interface CaseRow {
  name: string;
  medianNsPerOp: number;
  minNsPerOp: number;
  maxNsPerOp: number;
  opsPerSec: number;
  redisUsecPerOp?: number;
  redisCallsPerOp?: number;
}

/** Header plus one row per case, shared by the console table and BENCHMARKS.md. */
export function caseRows(cases: CaseRow[]): string[][] {
  const server = cases.some((c) => c.redisUsecPerOp !== undefined);
  const head = ['case', 'median/op', 'ops/s', 'min–max/op'];
  return [
    server ? [...head, 'Redis CPU/op', 'Redis calls/op'] : head,
    ...cases.map((c) => {
      const row = [
        c.name,
        fmtNs(c.medianNsPerOp),
        fmtOps(c.opsPerSec),
        `${fmtNs(c.minNsPerOp)} – ${fmtNs(c.maxNsPerOp)}`,
      ];
      if (!server) return row;
      return c.redisUsecPerOp === undefined
        ? [...row, '', '']
        : [...row, `${c.redisUsecPerOp.toFixed(2)} µs`, (c.redisCallsPerOp ?? 0).toFixed(2)];
    }),
  ];
}
