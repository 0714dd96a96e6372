import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, test } from 'node:test';
import { checkPackage } from './check-peers.mjs';

const root = mkdtempSync(join(tmpdir(), 'oms-check-peers-'));
after(() => rmSync(root, { recursive: true, force: true }));

function fixture(name, pkg, files) {
  const dir = join(root, name);
  for (const [file, text] of Object.entries({ 'package.json': JSON.stringify(pkg), ...files })) {
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    writeFileSync(join(dir, file), text);
  }
  return dir;
}

const good = {
  name: '@oms/good',
  peerDependencies: { '@opentelemetry/api': '^1.9.0', ioredis: '>=5' },
  peerDependenciesMeta: { ioredis: { optional: true } },
};

test('a package that follows the rules passes', () => {
  const dir = fixture('good', good, {
    'src/index.ts': 'export const x = 1;\n',
    'src/redis/store.ts': "import type { Redis } from 'ioredis';\nexport type R = Redis;\n",
  });
  assert.deepEqual(checkPackage(dir), []);
});

test('imports shown in comments (JSDoc examples) are not imports', () => {
  const dir = fixture('doc', good, {
    'src/registry.ts':
      "/**\n * @example\n * import pg from 'pg';\n */\n// import Redis from 'ioredis';\nexport const x = 1;\n",
  });
  assert.deepEqual(checkPackage(dir), []);
});

test('a driver imported outside its subpath folder is reported', () => {
  const dir = fixture('leak', good, { 'src/core.ts': "import type { Redis } from 'ioredis';\n" });
  assert.match(
    checkPackage(dir).join('\n'),
    /src\/core\.ts imports 'ioredis'; drivers may be imported only under src\/redis\//,
  );
});

test('a required driver peer and an OpenTelemetry dependency are reported', () => {
  const dir = fixture(
    'required',
    { name: '@oms/bad', dependencies: { '@opentelemetry/api': '1.9.0' }, peerDependencies: { pg: '>=8' } },
    { 'src/postgres/x.ts': "import pg from 'pg';\n" },
  );
  const problems = checkPackage(dir).join('\n');
  assert.match(problems, /@opentelemetry\/api must be a peerDependency, not a dependency/);
  assert.match(problems, /pg is a peerDependency but not optional/);
});

test('a non-caret OpenTelemetry peer range is reported', () => {
  const dir = fixture(
    'exact',
    { ...good, peerDependencies: { '@opentelemetry/api': '1.9.0' } },
    { 'src/i.ts': '' },
  );
  assert.match(checkPackage(dir).join('\n'), /caret range/);
});
