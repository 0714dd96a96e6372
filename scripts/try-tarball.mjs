#!/usr/bin/env node
// Installs a package's packed tarball alone into an empty project, as a new user would, and checks what they
// would trip on: files outside dist/, src/ and the docs; a driver installed where none was asked for; a subpath
// that does not import without its optional peer; and a README example that does not type-check there
// (strict, exactOptionalPropertyTypes, nodenext) with only the peers the README's install line names.
// Usage: node scripts/try-tarball.mjs <package dir> [...] | --all   (build first; needs the npm registry)
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { readmeBlocks } from './check-examples.mjs';
import { isMain, packageArgs } from './packages.mjs';

const DRIVERS = [
  'ioredis',
  'pg',
  'kysely',
  '@electric-sql/pglite',
  '@electric-sql/pglite-tools',
  'fastify',
  'express',
];
const ALLOWED = /^(package\.json|README\.md|CHANGELOG\.md|LICENSE(\.md)?|dist\/.+|src\/.+)$/;
/** `@scope/name/sub` and `name/sub` to the package name; `name@1` to `name`. */
const bareName = (spec) => {
  const parts = spec.split('/');
  const name = spec.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
  return name.replace(/(.)@.*$/, '$1');
};
const run = (cmd, args, cwd) =>
  execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/**
 * Problems found installing the package at `pkgDir` alone. `nodes` are the Node binaries every subpath is
 * imported with (this one by default); `alsoInstall` are packages added after the alone checks, in the same
 * install as the README example's peers; `onPacked(npmPackJson)` sees the tarball before it is installed, and
 * `onInstalled(app, pkg, problems)` runs before the temp project goes.
 */
export function tryTarball(
  pkgDir,
  { nodes = [process.execPath], alsoInstall = [], onPacked, onInstalled } = {},
) {
  pkgDir = resolve(pkgDir);
  const problems = [];
  const pkg = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  const work = mkdtempSync(join(tmpdir(), `oms-try-${basename(pkgDir)}-`));
  try {
    const packed = JSON.parse(run('npm', ['pack', '--json', '--pack-destination', work], pkgDir))[0];
    onPacked?.(packed);
    for (const f of packed.files.map((x) => x.path)) {
      if (!ALLOWED.test(f)) problems.push(`tarball ships ${f}`);
      if (f.endsWith('.tsbuildinfo')) problems.push(`tarball ships ${f} (monorepo paths)`);
    }
    const app = join(work, 'app');
    mkdirSync(app);
    writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'try', private: true, type: 'module' }));
    run('npm', ['install', '--no-audit', '--no-fund', '--silent', join(work, packed.filename)], app);
    // A declared core peer (the outbox core runs on Kysely) is meant to come with the package.
    const corePeers = new Set(pkg.oms?.corePeers ?? []);
    for (const d of DRIVERS.filter((x) => !corePeers.has(x))) {
      if (existsSync(join(app, 'node_modules', d)))
        problems.push(`installing ${pkg.name} alone pulled in ${d}`);
    }
    // Every subpath loads without its optional peer (it may fail only when first used).
    for (const sub of Object.keys(pkg.exports ?? {})) {
      if (sub === './package.json' || sub.includes('*') || pkg.exports[sub] === null) continue;
      const spec = sub === '.' ? pkg.name : `${pkg.name}/${sub.slice(2)}`;
      for (const node of nodes) {
        try {
          run(node, ['--input-type=module', '-e', `await import('${spec}')`], app);
        } catch (e) {
          const out = String(e.stderr ?? e.message);
          const missing = DRIVERS.find((d) => out.includes(`'${d}'`));
          const version = nodes.length > 1 ? ` on ${run(node, ['-v'], app).trim()}` : '';
          if (!missing)
            problems.push(
              `import('${spec}')${version} fails: ${out.split('\n').find((l) => /Error/.test(l)) ?? out}`,
            );
        }
      }
    }
    try {
      run(
        process.execPath,
        ['--input-type=module', '-e', `await import('${pkg.name}/internal/clock.js')`],
        app,
      );
      problems.push(`${pkg.name}/internal/* is importable`);
    } catch {
      // refused, as it must be
    }
    // The README's first example, with the peers its install line names and TypeScript as a user has it.
    const readme = readFileSync(join(pkgDir, 'README.md'), 'utf8');
    const example = readmeBlocks(readme).find((b) => !b.skip && /^\s*import\s/m.test(b.code));
    if (example) {
      // Every `npm i` line of the README, comments stripped; pg ships no types, so a TypeScript user adds them.
      const named = [...readme.matchAll(/^npm i(?:nstall)? ([^\n#`]+)/gm)].flatMap((m) =>
        m[1].trim().split(/\s+/),
      );
      const peers = named.filter(
        (w) => w && !w.startsWith('-') && w !== pkg.name && !w.startsWith(`${pkg.name}@`),
      );
      if (peers.includes('pg')) peers.push('@types/pg');
      if (alsoInstall.length) {
        // One install for both checks: the example may then see more peers than its install line names, so
        // check statically that each package it imports is named there (or comes with the package).
        const own = new Set([pkg.name, ...Object.keys(pkg.dependencies ?? {}), ...peers.map(bareName)]);
        for (const m of example.code.matchAll(/^\s*import\s[^'"]*['"]([^'"]+)['"]/gm)) {
          const dep = bareName(m[1]);
          if (!dep.startsWith('node:') && !own.has(dep))
            problems.push(`README example imports ${dep}, which its install line does not name`);
        }
      }
      run(
        'npm',
        [
          'install',
          '--no-audit',
          '--no-fund',
          '--silent',
          ...new Set([...peers, ...alsoInstall, 'typescript@5.9.3', '@types/node@20']),
        ],
        app,
      );
      writeFileSync(join(app, 'example.ts'), `${example.code}\nexport {};\n`);
      writeFileSync(
        join(app, 'tsconfig.json'),
        JSON.stringify({
          compilerOptions: {
            target: 'ES2022',
            module: 'nodenext',
            moduleResolution: 'nodenext',
            strict: true,
            exactOptionalPropertyTypes: true,
            noEmit: true,
            // as `tsc --init` writes it, and as most users have it
            skipLibCheck: true,
          },
          files: ['example.ts'],
        }),
      );
      try {
        run(join(app, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], app);
      } catch (e) {
        problems.push(`README example does not type-check in an empty project:\n${e.stdout}`);
      }
    } else if (alsoInstall.length) {
      run('npm', ['install', '--no-audit', '--no-fund', '--silent', ...alsoInstall], app);
    }
    onInstalled?.(app, pkg, problems);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  return problems;
}

if (isMain(import.meta.url)) {
  const dirs = packageArgs('try-tarball.mjs <package dir> [...] | --all');
  let failed = false;
  for (const dir of dirs) {
    const { name } = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const problems = tryTarball(dir);
    for (const p of problems) console.error(`${name}: ${p}`);
    if (problems.length) failed = true;
    else console.log(`${name}: installs alone, imports every subpath, README example type-checks`);
  }
  process.exit(failed ? 1 : 0);
}
