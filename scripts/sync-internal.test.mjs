import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const script = fileURLToPath(new URL('./sync-internal.mjs', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'oms-sync-internal-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

let n = 0;
function repo() {
  const root = join(tmp, `r${n++}`);
  mkdirSync(join(root, 'internal'), { recursive: true });
  writeFileSync(join(root, 'internal', 'emitter.ts'), 'export class Emitter {}\n');
  writeFileSync(join(root, 'internal', 'clock.ts'), 'export const systemClock = {};\n');
  for (const [name, pkg] of [
    ['a', { name: '@oms/a', version: '0.3.1' }],
    ['kit', { name: '@oms/kit', version: '0.0.0', private: true }],
  ]) {
    mkdirSync(join(root, 'packages', name, 'src'), { recursive: true });
    writeFileSync(join(root, 'packages', name, 'package.json'), JSON.stringify(pkg));
  }
  return root;
}
const run = (root, ...args) =>
  spawnSync(process.execPath, [script, '--root', root, ...args], { encoding: 'utf8' });

test('sync copies internal/ byte for byte and writes VERSION from package.json, published packages only', () => {
  const root = repo();
  execFileSync(process.execPath, [script, '--root', root]);
  const pkg = join(root, 'packages', 'a', 'src');
  assert.equal(readFileSync(join(pkg, 'internal', 'emitter.ts'), 'utf8'), 'export class Emitter {}\n');
  assert.match(readFileSync(join(pkg, 'version.ts'), 'utf8'), /export const VERSION = '0\.3\.1';/);
  assert.throws(() => readFileSync(join(root, 'packages', 'kit', 'src', 'version.ts')));
  assert.equal(run(root, '--check').status, 0);
});

test('--check fails on a hand-edited copy and names it', () => {
  const root = repo();
  execFileSync(process.execPath, [script, '--root', root]);
  writeFileSync(
    join(root, 'packages', 'a', 'src', 'internal', 'emitter.ts'),
    'export class Emitter { x = 1 }\n',
  );
  const r = run(root, '--check');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /packages\/a\/src\/internal\/emitter\.ts: differs from internal\/emitter\.ts/);
});

test('--check fails when VERSION differs from package.json (a version bump without a sync)', () => {
  const root = repo();
  execFileSync(process.execPath, [script, '--root', root]);
  writeFileSync(
    join(root, 'packages', 'a', 'package.json'),
    JSON.stringify({ name: '@oms/a', version: '0.4.0' }),
  );
  const r = run(root, '--check');
  assert.equal(r.status, 1);
  assert.match(r.stderr, /packages\/a\/src\/version\.ts: VERSION differs from package\.json/);
  execFileSync(process.execPath, [script, '--root', root]);
  assert.equal(run(root, '--check').status, 0);
});

test('--check fails on a missing copy and on a stray file with no canonical source', () => {
  const root = repo();
  const r1 = run(root, '--check');
  assert.equal(r1.status, 1);
  assert.match(r1.stderr, /packages\/a\/src\/internal\/clock\.ts: missing/);
  execFileSync(process.execPath, [script, '--root', root]);
  writeFileSync(join(root, 'packages', 'a', 'src', 'internal', 'extra.ts'), 'export {};\n');
  const r2 = run(root, '--check');
  assert.equal(r2.status, 1);
  assert.match(r2.stderr, /extra\.ts: has no canonical copy/);
});
