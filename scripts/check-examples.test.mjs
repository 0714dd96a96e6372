import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { checkExamples, jsdocExamples, readmeBlocks } from './check-examples.mjs';

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
const tmp = mkdtempSync(join(tmpdir(), 'oms-check-examples-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
/** A built package `@oms/fixture` (dist/index.js + .d.ts) with the given README and src. */
function fixture(readme, src = 'export {};\n') {
  const dir = join(tmp, `p${n++}`);
  const files = {
    'package.json': JSON.stringify({
      name: '@oms/fixture',
      type: 'module',
      exports: { '.': { types: './dist/index.d.ts', default: './dist/index.js' } },
    }),
    'README.md': readme,
    'src/index.ts': src,
    'dist/index.js': 'export function limiter(o) { return o; }\n',
    'dist/index.d.ts':
      'export interface Options { name: string; releaseId?: string }\nexport declare function limiter(o: Options): Options;\n',
  };
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  // @types/node resolves from the repository, as it does for a real package.
  mkdirSync(join(dir, 'node_modules', '@types'), { recursive: true });
  symlinkSync(join(repoRoot, 'node_modules', '@types', 'node'), join(dir, 'node_modules', '@types', 'node'));
  return dir;
}

test('README blocks and @example bodies are extracted with their lines', () => {
  const blocks = readmeBlocks('# x\n\n```ts\nconst a = 1;\n```\n\n```ts no-check\nnope\n```\n');
  assert.deepEqual(blocks, [
    { code: 'const a = 1;', line: 4, skip: false },
    { code: 'nope', line: 8, skip: true },
  ]);
  const ex = jsdocExamples('/**\n * Does it.\n *\n * @example\n * const a = 1;\n * @param x y\n */\n');
  assert.deepEqual(ex, [{ code: 'const a = 1;', line: 5 }]);
});

test('examples that compile as a user writes them pass, through the package name', () => {
  const dir = fixture(
    "```ts\nimport { limiter } from '@oms/fixture';\nlimiter({ name: 'api' });\n```\n",
    "/**\n * @example\n * limiter({ name: 'api', releaseId: 'r1' });\n */\nexport const x = 1;\n",
  );
  const r = checkExamples(dir);
  assert.deepEqual(r.problems, []);
  assert.equal(r.checked, 2);
});

test('an undeclared name and an exactOptionalPropertyTypes mismatch fail, naming the README line', () => {
  const dir = fixture(
    [
      '# fixture',
      '```ts',
      "import { limiter } from '@oms/fixture';",
      'limiter({ name: "api", releaseId: process.env.RELEASE });',
      '```',
      '',
      '```ts',
      'limiter({ name: missing });',
      '```',
      '',
    ].join('\n'),
  );
  const { problems } = checkExamples(dir);
  assert.equal(problems.length, 2, JSON.stringify(problems));
  assert.match(problems[0].where, /^README\.md:3 \(block 1\) line 2 \(nodenext, bundler\)$/);
  assert.match(problems[0].message, /TS2379.*exactOptionalPropertyTypes/s);
  assert.match(problems[1].where, /^README\.md:8 \(block 2\) line 1/);
  assert.match(problems[1].message, /TS2304: Cannot find name 'missing'/);
});

test('a block marked no-check is skipped and counted', () => {
  const dir = fixture('```ts no-check\nthis is not code\n```\n');
  const r = checkExamples(dir);
  assert.deepEqual(r.problems, []);
  assert.equal(r.skipped, 1);
});
