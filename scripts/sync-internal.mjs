#!/usr/bin/env node
// One canonical copy of the shared internals (internal/*.ts) and a VERSION that always matches package.json.
// - write mode copies internal/*.ts byte for byte into every published package's src/internal/ and writes
//   src/version.ts from its package.json;
// - --check writes nothing and fails on any drift, so a hand edit of a copy or a version bump without a sync
//   never reaches a build that ships.
// Usage: node scripts/sync-internal.mjs [--check] [--root DIR] [package dir ...]
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { publishedPackages } from './packages.mjs';

export const versionSource = (name, version) =>
  [
    '// Generated from package.json by scripts/sync-internal.mjs; do not edit.',
    '/**',
    ` * The version of ${name}, as published; its tracer and meter carry it.`,
    ' *',
    ' * @example',
    ` * import { VERSION } from '${name}';`,
    " * const resource = { 'service.version': VERSION };",
    ' */',
    `export const VERSION = '${version}';`,
    '',
  ].join('\n');

export { publishedPackages };

/** What each file of a package should hold: path -> text. */
export function expected(root, pkgDir) {
  const files = new Map();
  const src = join(root, 'internal');
  for (const name of readdirSync(src).filter((n) => n.endsWith('.ts'))) {
    files.set(join(pkgDir, 'src', 'internal', name), readFileSync(join(src, name), 'utf8'));
  }
  const { name, version } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  files.set(join(pkgDir, 'src', 'version.ts'), versionSource(name, version));
  return files;
}

/** Files that differ from what they should hold, as `{ file, problem }`; writes nothing. */
export function drift(root, pkgDirs) {
  const problems = [];
  for (const pkgDir of pkgDirs) {
    for (const [file, text] of expected(root, pkgDir)) {
      const rel = relative(root, file);
      if (!existsSync(file)) problems.push({ file: rel, problem: 'missing' });
      else if (readFileSync(file, 'utf8') !== text) {
        problems.push({
          file: rel,
          problem:
            basename(file) === 'version.ts'
              ? 'VERSION differs from package.json'
              : `differs from internal/${basename(file)}`,
        });
      }
    }
    const copies = join(pkgDir, 'src', 'internal');
    if (existsSync(copies)) {
      for (const name of readdirSync(copies)) {
        if (!existsSync(join(root, 'internal', name))) {
          problems.push({
            file: relative(root, join(copies, name)),
            problem: 'has no canonical copy in internal/',
          });
        }
      }
    }
  }
  return problems;
}

export function sync(root, pkgDirs) {
  const written = [];
  for (const pkgDir of pkgDirs) {
    for (const [file, text] of expected(root, pkgDir)) {
      if (existsSync(file) && readFileSync(file, 'utf8') === text) continue;
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, text);
      written.push(relative(root, file));
    }
  }
  return written;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const check = args.includes('--check');
  const rootAt = args.indexOf('--root');
  const root = resolve(rootAt >= 0 ? args[rootAt + 1] : join(dirname(fileURLToPath(import.meta.url)), '..'));
  const named = args.filter((a, i) => !a.startsWith('--') && !(rootAt >= 0 && i === rootAt + 1));
  const pkgDirs = named.length > 0 ? named.map((p) => resolve(p)) : publishedPackages(root);
  if (check) {
    const problems = drift(root, pkgDirs);
    for (const p of problems) console.error(`${p.file}: ${p.problem}`);
    if (problems.length > 0) {
      console.error('run `pnpm sync` to rewrite the copies from internal/ and package.json');
      process.exit(1);
    }
  } else {
    for (const f of sync(root, pkgDirs)) console.log(`wrote ${f}`);
  }
}
