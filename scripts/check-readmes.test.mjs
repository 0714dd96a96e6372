import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { checkReadme } from './check-readmes.mjs';

const tmp = mkdtempSync(join(tmpdir(), 'oms-check-readmes-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function fixture(readme, src = {}) {
  const dir = join(tmp, `p${n++}`);
  const files = {
    'package.json': JSON.stringify({ name: '@oms/fixture', files: ['dist', 'src', 'README.md'] }),
    'README.md': readme,
    ...src,
  };
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, f)), { recursive: true });
    writeFileSync(join(dir, f), text);
  }
  return dir;
}

test('a README with repository links and figures only in a bench block passes', () => {
  const dir = fixture(
    [
      'Fast. See [the numbers](https://github.com/oms-dev/oms/blob/main/BENCHMARKS.md#x) and [src](src/index.ts).',
      '<!-- bench:x -->',
      '| ratio | 1.20× | 402 ns |',
      '<!-- /bench:x -->',
      '```ts',
      'const ms = 2; // code may say 2 µs',
      '```',
    ].join('\n'),
  );
  assert.deepEqual(checkReadme(dir), []);
});

test('a figure outside a block, a link out of the package and a DESIGN.md citation fail', () => {
  const dir = fixture(
    [
      'About 0.22 µs a call, 2.9× rate-limiter-flexible.',
      'See [bench](../../BENCHMARKS.md) and [a test](test/a.test.ts).',
      'As DESIGN.md §2 says.',
    ].join('\n'),
    { 'src/a.ts': '/** The Clock of DESIGN.md §2. */\nexport {};\n' },
  );
  const problems = checkReadme(dir);
  assert.equal(problems.length, 5, problems.join('\n'));
  assert.match(problems[0], /README\.md:1: a speed or ratio figure/);
  assert.match(problems[1], /README\.md:2: links \.\.\/\.\.\/BENCHMARKS\.md, outside the package/);
  assert.match(problems[2], /README\.md:2: links test\/a\.test\.ts, which the tarball does not ship/);
  assert.match(problems[3], /README\.md:3: cites DESIGN\.md/);
  assert.match(problems[4], /src\/a\.ts:1: cites DESIGN\.md/);
});
