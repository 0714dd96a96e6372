#!/usr/bin/env node
// A release rehearsal that publishes nothing: in a throwaway copy of the repository it applies the pending
// changesets (`changeset version`), regenerates each package's VERSION, rebuilds, packs every published package
// and installs each tarball alone into an empty project. There it checks what a user would meet:
// - the tarball holds only dist/, src/, README, CHANGELOG, LICENSE and package.json;
// - no driver came along that the package does not require;
// - every subpath export imports on Node 20 and on Node 24 (from the registry's node@24), without its optional peer;
// - every README example and JSDoc @example compiles against the installed tarball (strict,
//   exactOptionalPropertyTypes, nodenext and bundler), with the package's peers installed as a user would.
// Usage: node scripts/release-dry.mjs [--all | <package dir> ...] [--node24 <path> | --no-node24]
//   (--no-node24 is for a quick local look; CI and the release workflow run both Node versions)
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { checkExamples } from './check-examples.mjs';
import { isMain, publishedPackages, readPackage, repoRoot } from './packages.mjs';
import { tryTarball } from './try-tarball.mjs';

const run = (cmd, args, cwd, env) =>
  execFileSync(cmd, args, {
    cwd,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });

/** The Node 24 binary from the registry's `node@24` package, fetched through npx once. */
export function node24Path() {
  return run('npx', ['-y', '-p', 'node@24', '--', 'node', '-p', 'process.execPath'], tmpdir()).trim();
}

/**
 * Copies the repository without git, node_modules or build output; each node_modules becomes a link to the
 * original, so the copy builds with the installed toolchain but edits nothing of the original.
 */
export function throwawayCopy(root = repoRoot) {
  const copy = mkdtempSync(join(tmpdir(), 'oms-release-dry-'));
  run(
    'rsync',
    [
      '-a',
      '--exclude=.git',
      '--exclude=node_modules',
      '--exclude=dist',
      '--exclude=.turbo',
      '--exclude=bench/results',
      '--exclude=.data',
      `${root}/`,
      `${copy}/`,
    ],
    root,
  );
  const workspaces = ['.', ...['packages', 'apps'].flatMap((d) => dirsUnder(join(root, d)))];
  for (const ws of workspaces) {
    const rel = relative(root, resolve(root, ws));
    const modules = join(root, rel, 'node_modules');
    if (existsSync(modules) && existsSync(join(copy, rel)))
      symlinkSync(modules, join(copy, rel, 'node_modules'));
  }
  return copy;
}

const dirsUnder = (dir) =>
  existsSync(dir)
    ? readdirSync(dir, { withFileTypes: true })
        .filter((d) => d.isDirectory())
        .map((d) => join(dir, d.name))
    : [];

/** Every peer a user of some part of the package would add, with the types TypeScript users add for them. */
export function peersForExamples(pkg) {
  const peers = Object.keys(pkg.peerDependencies ?? {});
  const typed = { pg: '@types/pg', express: '@types/express' };
  return [...peers, ...peers.filter((p) => typed[p]).map((p) => typed[p]), '@types/node@20'];
}

/** The checks of one package already versioned and built in the copy; problems as strings. */
export function checkPackage(inCopy, nodes, log = () => {}) {
  const pkg = readPackage(inCopy);
  const problems = [];
  const found = tryTarball(inCopy, {
    nodes,
    alsoInstall: peersForExamples(pkg),
    onPacked(packed) {
      const files = packed.files.map((f) => f.path);
      const kb = (packed.size / 1024).toFixed(1);
      log(`${pkg.name}: ${packed.filename}, ${kb} KiB packed, ${files.length} files:`);
      // one line per top-level folder or file, so a stray file stands out without pages of dist/ paths
      const groups = new Map();
      for (const f of files) {
        const top = f.includes('/') ? `${f.split('/')[0]}/` : f;
        groups.set(top, (groups.get(top) ?? 0) + 1);
      }
      for (const [top, n] of groups) log(`  ${top}${top.endsWith('/') ? ` (${n} files)` : ''}`);
    },
    onInstalled(app) {
      const installed = join(app, 'node_modules', ...pkg.name.split('/'));
      const { problems: bad, checked } = checkExamples(installed);
      for (const p of bad) problems.push(`installed tarball: ${p.where}: ${p.message}`);
      log(`${pkg.name}: ${checked} examples compile against the installed tarball`);
    },
  });
  return [...found, ...problems].map((p) => `${pkg.name}: ${p}`);
}

const spawnJson = (args, cwd) =>
  new Promise((resolvePromise) => {
    const child = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.on('close', (code) => {
      const lines = out.trim().split('\n');
      const last = lines.pop() ?? '';
      for (const l of lines) console.log(l);
      try {
        resolvePromise(JSON.parse(last));
      } catch {
        resolvePromise({ problems: [`worker ${args.join(' ')} exited ${code} without a result:\n${out}`] });
      }
    });
  });

/**
 * Runs the rehearsal; returns `{ problems: string[], versions: [name, from, to][] }`. Packages are checked
 * `concurrency` at a time, each in a worker process, since most of the time is npm installing into empty projects.
 */
export async function releaseDry({ dirs, nodes, root = repoRoot, concurrency = 3, log = () => {} }) {
  const copy = throwawayCopy(root);
  const problems = [];
  const versions = [];
  try {
    const before = new Map(dirs.map((d) => [basename(d), readPackage(d).version]));
    log(`throwaway copy at ${copy}`);
    run(join(root, 'node_modules', '.bin', 'changeset'), ['version'], copy);
    run(process.execPath, [join(copy, 'scripts', 'sync-internal.mjs')], copy);
    const inCopy = dirs.map((d) => join(copy, relative(root, resolve(d))));
    for (const dir of inCopy) {
      const pkg = readPackage(dir);
      versions.push([pkg.name, before.get(basename(dir)), pkg.version]);
    }
    log('building the versioned packages');
    run(
      join(root, 'node_modules', '.bin', 'tsc'),
      ['-b', ...inCopy.map((d) => join(d, 'tsconfig.build.json'))],
      copy,
    );
    const queue = [...inCopy];
    const worker = async () => {
      for (let dir = queue.shift(); dir; dir = queue.shift()) {
        const result = await spawnJson(
          [join(copy, 'scripts', 'release-dry.mjs'), '--worker', dir, '--nodes', nodes.join(',')],
          copy,
        );
        problems.push(...result.problems);
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, concurrency) }, worker));
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
  return { problems, versions };
}

if (isMain(import.meta.url)) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      all: { type: 'boolean' },
      node24: { type: 'string' },
      'no-node24': { type: 'boolean' },
      concurrency: { type: 'string', default: '3' },
      worker: { type: 'string' },
      nodes: { type: 'string' },
    },
  });
  if (values.worker) {
    // One package, in a copy the parent prepared; the last stdout line is the result.
    const problems = checkPackage(values.worker, (values.nodes ?? process.execPath).split(','), (m) =>
      console.log(m),
    );
    console.log(JSON.stringify({ problems }));
    process.exit(0);
  }
  const dirs =
    values.all || positionals.length === 0 ? publishedPackages() : positionals.map((p) => resolve(p));
  const nodes = [process.execPath];
  if (!values['no-node24']) nodes.push(values.node24 ?? node24Path());
  const versions = nodes.map((n) => run(n, ['-v'], tmpdir()).trim()).join(' and ');
  console.log(`release rehearsal of ${dirs.length} packages, imports on Node ${versions}`);
  const { problems, versions: bumped } = await releaseDry({
    dirs,
    nodes,
    concurrency: Number(values.concurrency),
    log: (m) => console.log(m),
  });
  for (const [name, from, to] of bumped) console.log(`  ${name} ${from}${from === to ? '' : ` -> ${to}`}`);
  for (const p of problems) console.error(p);
  console.log(problems.length ? `${problems.length} problems` : 'every package would publish cleanly');
  process.exit(problems.length ? 1 : 0);
}
