import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { undocumented } from './check-docs.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'oms-check-docs-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function fixture(files) {
  const dir = join(tmp, `p${n++}`);
  const pkg = {
    name: '@oms/fixture',
    type: 'module',
    exports: {
      '.': { types: './dist/index.d.ts', default: './dist/index.js' },
      './redis': { types: './dist/redis/index.d.ts', default: './dist/redis/index.js' },
      './package.json': './package.json',
      './internal/*': null,
    },
  };
  for (const [f, text] of Object.entries({ 'package.json': JSON.stringify(pkg), ...files })) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  return dir;
}

const documented = (name) =>
  `/**\n * Does ${name}.\n *\n * @example\n * \`\`\`ts\n * ${name}();\n * \`\`\`\n */\nexport function ${name}(): void {}\n`;

test('exports with a description and an @example pass, through re-exports and on every subpath', () => {
  const dir = fixture({
    'src/index.ts': "export { a } from './a.js';\nexport type { Opts } from './types.js';\n",
    'src/a.ts': documented('a'),
    'src/types.ts':
      '/**\n * Options.\n *\n * @example\n * ```ts\n * const o: Opts = {};\n * ```\n */\nexport interface Opts {}\n',
    'src/redis/index.ts': documented('b'),
  });
  assert.deepEqual(undocumented(dir), []);
});

test('an export without JSDoc, or with JSDoc but no @example, fails and is named with its place', () => {
  const dir = fixture({
    'src/index.ts': "export { a, bare, noExample } from './a.js';\n",
    'src/a.ts': `${documented('a')}export const bare = 1;\n/** Has words but no example. */\nexport function noExample(): void {}\n`,
    'src/redis/index.ts': '/** @example\n * ```ts\n * c();\n * ```\n */\nexport function c(): void {}\n',
  });
  assert.deepEqual(
    undocumented(dir).map((m) => `${m.name} ${m.subpath} ${m.where}`),
    ['bare . src/a.ts:10', 'noExample . src/a.ts:12', 'c ./redis src/redis/index.ts:6'],
  );
});
