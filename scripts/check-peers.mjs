#!/usr/bin/env node
// Peer-dependency rules for a published @oms package, in the spirit of OpenTelemetry's:
// - @opentelemetry/api is a peer with a caret range (one API instance per process), never a dependency;
// - drivers (ioredis, pg, kysely, @electric-sql/pglite) are optional peers, and only src/redis/, src/postgres/
//   or src/pglite/ may import them, so a user of the core never needs a driver installed;
// - the one exception is a query builder the whole core is written against: a package lists it in
//   `"oms": { "corePeers": ["kysely"] }`, and then it must be a REQUIRED peer (the core cannot run without it)
//   and may be imported anywhere. Only kysely qualifies: it carries no connection of its own.
// Usage: node scripts/check-peers.mjs <package dir> [...]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

const DRIVERS = {
  ioredis: 'redis',
  pg: 'postgres',
  kysely: 'postgres',
  '@electric-sql/pglite': 'pglite',
  // Framework adapters are subpaths too: installing a core package never pulls in a web framework.
  fastify: 'fastify',
  express: 'express',
};
/** Drivers a package may declare as a required peer of its core (`oms.corePeers`). */
const CORE_PEERS = new Set(['kysely']);

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (/\.[cm]?ts$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Module specifiers a file imports or re-exports, type-only ones included (they still need the types). */
function importsOf(text) {
  // JSDoc examples show user code (`import pg from 'pg'`); only real statements count.
  const source = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const specs = [];
  const re =
    /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm;
  for (const m of source.matchAll(re)) specs.push(m[1] ?? m[2] ?? m[3]);
  return specs;
}

export function checkPackage(dir) {
  const problems = [];
  const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
  if (pkg.private) return problems;
  const deps = pkg.dependencies ?? {};
  const peers = pkg.peerDependencies ?? {};
  const meta = pkg.peerDependenciesMeta ?? {};

  const otel = '@opentelemetry/api';
  if (deps[otel]) problems.push(`${otel} must be a peerDependency, not a dependency`);
  if (!peers[otel]) problems.push(`${otel} must be a peerDependency (with a caret range such as ^1.9.0)`);
  else if (!String(peers[otel]).startsWith('^'))
    problems.push(`${otel} peer range must be a caret range (got ${peers[otel]})`);

  const declared = pkg.oms?.corePeers ?? [];
  // Only an allowed name counts as a core peer; anything else keeps the driver rules.
  const corePeers = new Set(declared.filter((name) => CORE_PEERS.has(name)));
  for (const name of declared) {
    if (!CORE_PEERS.has(name)) {
      problems.push(`${name} cannot be a core peer (oms.corePeers); only ${[...CORE_PEERS].join(', ')} can`);
    } else if (!peers[name]) {
      problems.push(`${name} is a core peer (oms.corePeers) but not a peerDependency`);
    } else if (meta[name]?.optional === true) {
      problems.push(
        `${name} is a core peer (oms.corePeers), so it must be a required peer (drop its optional flag)`,
      );
    }
  }

  for (const driver of Object.keys(DRIVERS)) {
    if (deps[driver]) problems.push(`${driver} must be an optional peerDependency, not a dependency`);
    if (corePeers.has(driver)) continue;
    if (peers[driver] && meta[driver]?.optional !== true) {
      problems.push(
        `${driver} is a peerDependency but not optional (set peerDependenciesMeta.${driver}.optional)`,
      );
    }
  }

  const src = join(dir, 'src');
  let files = [];
  try {
    files = walk(src);
  } catch {
    problems.push('no src/ directory');
  }
  for (const file of files) {
    const rel = relative(src, file).split(sep);
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const name = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      const folder = DRIVERS[name];
      if (!folder) continue;
      if (rel[0] !== folder && !corePeers.has(name)) {
        problems.push(
          `src/${rel.join('/')} imports '${spec}'; drivers may be imported only under src/${folder}/`,
        );
      }
      if (!peers[name])
        problems.push(`src/${rel.join('/')} imports '${spec}' but ${name} is not a peerDependency`);
    }
  }
  return problems;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const dirs = process.argv.slice(2);
  if (dirs.length === 0) {
    console.error('usage: check-peers.mjs <package dir> [...]');
    process.exit(2);
  }
  let failed = false;
  for (const dir of dirs) {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    const problems = checkPackage(dir);
    for (const p of problems) console.error(`${pkg.name}: ${p}`);
    if (problems.length) failed = true;
    else console.log(`${pkg.name}: peer dependencies ok`);
  }
  process.exit(failed ? 1 : 0);
}
