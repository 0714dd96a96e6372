#!/usr/bin/env node
// What a published README may not carry, because a user reads it from the tarball or the registry page:
// - a relative link that leaves the package (../../BENCHMARKS.md) or names a file the tarball does not ship;
// - a speed or ratio figure outside a generated <!-- bench:<suite> --> block (figures come from BENCHMARKS.md);
// - a citation of DESIGN.md, which users never see. The same holds for the JSDoc in src/.
// Usage: node scripts/check-readmes.mjs <package dir> [...] | --all
import { existsSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { isMain, ownSources, packageArgs } from './packages.mjs';

const FIGURE =
  /\d+(?:\.\d+)?×|\d+(?:\.\d+)?\s?(?:ns|µs)\b|\d+(?:\.\d+)?k?\s?(?:ops|calls|rows|jobs|verifications)\/s\b/;
const BLOCK = /<!-- bench:([\w-]+) -->[\s\S]*?<!-- \/bench:\1 -->/g;

/** Whether `rel` (relative to the package) ships in the tarball, judged by package.json `files`. */
function ships(pkg, rel) {
  const always = ['package.json', 'README.md', 'LICENSE', 'CHANGELOG.md'];
  if (always.includes(rel)) return true;
  return (pkg.files ?? []).some(
    (f) => !f.startsWith('!') && (rel === f || rel.startsWith(`${f.replace(/\/$/, '')}/`)),
  );
}

export function checkReadme(pkgDir) {
  pkgDir = resolve(pkgDir);
  const problems = [];
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  const readme = join(pkgDir, 'README.md');
  if (!existsSync(readme)) return ['README.md is missing'];
  const text = readFileSync(readme, 'utf8');
  const lines = text.replace(BLOCK, (b) => b.replace(/[^\n]/g, '')).split('\n');
  let fenced = false;
  lines.forEach((line, i) => {
    const at = `README.md:${i + 1}`;
    if (/^\s*```/.test(line)) fenced = !fenced;
    if (/DESIGN\.md/.test(line)) problems.push(`${at}: cites DESIGN.md, which users never see`);
    if (!fenced && FIGURE.test(line)) {
      problems.push(`${at}: a speed or ratio figure outside a <!-- bench:<suite> --> block: ${line.trim()}`);
    }
    for (const m of line.matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1];
      if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('#')) continue;
      const path = relative(pkgDir, resolve(pkgDir, target.split('#')[0]));
      if (path.startsWith('..')) {
        problems.push(`${at}: links ${target}, outside the package; use its repository URL`);
      } else if (!ships(pkg, path)) {
        problems.push(`${at}: links ${target}, which the tarball does not ship; use its repository URL`);
      }
    }
  });
  const src = join(pkgDir, 'src');
  if (existsSync(src)) {
    for (const file of ownSources(src)) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          if (/DESIGN\.md/.test(line)) {
            problems.push(`${relative(pkgDir, file)}:${i + 1}: cites DESIGN.md, which users never see`);
          }
        });
    }
  }
  return problems;
}

if (isMain(import.meta.url)) {
  const dirs = packageArgs('check-readmes.mjs <package dir> [...] | --all');
  let failed = false;
  for (const dir of dirs) {
    const { name } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const problems = checkReadme(dir);
    for (const p of problems) console.error(`${name}: ${p}`);
    if (problems.length) failed = true;
    else console.log(`${name}: README ok`);
  }
  process.exit(failed ? 1 : 0);
}
