import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';

const pkgDir = fileURLToPath(new URL('..', import.meta.url));
const read = (rel: string) => readFileSync(new URL(`../${rel}`, import.meta.url), 'utf8');

describe('what a new user installs', () => {
  it('exports instrument as the one telemetry entry point, and the checks only as checks.*', () => {
    const names = Object.keys(api);
    expect(names).toContain('instrument');
    expect(Object.keys(api.checks).sort()).toEqual([
      'disk',
      'eventLoopDelay',
      'http',
      'memory',
      'postgres',
      'redis',
    ]);
    // bare `http`, `redis`, … duplicated checks.* and clashed with node:http in a user's imports
    for (const gone of [
      'instrumentHealth',
      'http',
      'redis',
      'postgres',
      'memory',
      'disk',
      'eventLoopDelay',
    ]) {
      expect(names, `@oms/health still exports ${gone}`).not.toContain(gone);
    }
  });

  it('has keywords a search for health checks, probes or graceful shutdown finds', () => {
    const { keywords } = JSON.parse(read('package.json')) as { keywords: string[] };
    expect(keywords).toEqual(
      expect.arrayContaining(['health', 'readiness', 'liveness', 'kubernetes', 'graceful-shutdown']),
    );
  });

  it('README and sources never cite DESIGN.md, and link repository files by full URL', () => {
    const readme = read('README.md');
    const sources = readdirSync(new URL('../src', import.meta.url)).filter((f) => f.endsWith('.ts'));
    for (const [name, text] of [
      ['README.md', readme],
      ...sources.map((f) => [f, read(`src/${f}`)]),
    ] as const) {
      expect(text, `${name} cites DESIGN.md, which users never see`).not.toMatch(/DESIGN\.md/);
    }
    // a relative link points outside the tarball once published
    expect(readme.match(/\]\((?!https:\/\/|#)[^)]*\)/g) ?? []).toEqual([]);
    expect(readme).toContain('https://github.com/oms-dev/oms/blob/main/BENCHMARKS.md');
  });

  it('README blocks and every @example compile as a user writes them (strict, exactOptionalPropertyTypes, nodenext)', async () => {
    // the repository's checker, against the built package (so build first, as the test task does)
    const script = new URL('../../../scripts/check-examples.mjs', import.meta.url);
    const { checkExamples } = (await import(script.href)) as {
      checkExamples(dir: string): { problems: { where: string; message: string }[]; checked: number };
    };
    const { problems, checked } = checkExamples(pkgDir);
    expect(problems.map((p) => `${p.where}: ${p.message}`)).toEqual([]);
    expect(checked).toBeGreaterThan(50);
  }, 120_000);
});
