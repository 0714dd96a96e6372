// What the repository scripts share: which packages are published, and which ones a command was asked about.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');

export const readPackage = (dir) => JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));

/** Directories of the published packages: packages/* with a package.json that is not private. */
export function publishedPackages(root = repoRoot) {
  const dir = join(root, 'packages');
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .map((name) => join(dir, name))
    .filter((p) => existsSync(join(p, 'package.json')) && !readPackage(p).private);
}

/** True when the module at `metaUrl` is the script node was started with. */
export const isMain = (metaUrl) =>
  Boolean(process.argv[1]) && resolve(process.argv[1]) === fileURLToPath(metaUrl);

/** The package directories named on the command line; `--all` names every published one. Exits 2 on none. */
export function packageArgs(usage, args = process.argv.slice(2)) {
  const dirs = args.includes('--all') ? publishedPackages() : args.filter((a) => !a.startsWith('--'));
  if (dirs.length === 0) {
    console.error(`usage: ${usage}`);
    process.exit(2);
  }
  return dirs;
}

/** A package's own TypeScript sources under `dir`: declaration files and the generated `internal/` copies left out. */
export function ownSources(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) {
      if (name !== 'internal') out.push(...ownSources(p));
    } else if (/\.[cm]?ts$/.test(name) && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}
