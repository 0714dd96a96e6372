import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { peersForExamples } from './release-dry.mjs';
import { tryTarball } from './try-tarball.mjs';

// Fixture packages have no dependencies, so installing their tarballs needs no registry.
const tmp = mkdtempSync(join(tmpdir(), 'oms-try-tarball-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function fixture({ files = ['dist', 'README.md'], index = 'export const x = 1;\n', extra = {} } = {}) {
  const name = `oms-fixture-${n++}`;
  const dir = join(tmp, name);
  const all = {
    'package.json': JSON.stringify({
      name,
      version: '1.0.0',
      type: 'module',
      files,
      exports: { '.': './dist/index.js', './package.json': './package.json', './internal/*': null },
    }),
    'README.md': '# fixture\n\nNo code here.\n',
    'dist/index.js': index,
    ...extra,
  };
  for (const [f, text] of Object.entries(all)) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  return dir;
}

test('a package whose tarball holds only dist and docs and imports what it declares passes', () => {
  assert.deepEqual(tryTarball(fixture()), []);
});

test('a package importing a dependency it does not declare fails', () => {
  const problems = tryTarball(
    fixture({ index: "import 'oms-undeclared-dependency';\nexport const x = 1;\n" }),
  );
  assert.equal(problems.length, 1);
  assert.match(problems[0], /import\('oms-fixture-\d+'\) fails: .*oms-undeclared-dependency/);
});

test('a stray file in the tarball fails', () => {
  const dir = fixture({ files: ['dist', 'README.md', 'notes.txt'], extra: { 'notes.txt': 'scratch' } });
  assert.deepEqual(tryTarball(dir), ['tarball ships notes.txt']);
});

test('a tsbuildinfo in dist is named as carrying monorepo paths', () => {
  const dir = fixture({ extra: { 'dist/.tsbuildinfo': '{}' } });
  assert.deepEqual(tryTarball(dir), ['tarball ships dist/.tsbuildinfo (monorepo paths)']);
});

test('examples are compiled with every peer installed, and the types TypeScript users add for them', () => {
  const peers = peersForExamples({
    peerDependencies: { '@opentelemetry/api': '^1.9.0', pg: '>=8', express: '>=5' },
  });
  assert.deepEqual(peers, [
    '@opentelemetry/api',
    'pg',
    'express',
    '@types/pg',
    '@types/express',
    '@types/node@20',
  ]);
});
