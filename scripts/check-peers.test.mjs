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

const withCore = {
  name: '@oms/core-peer',
  oms: { corePeers: ['kysely'] },
  peerDependencies: { '@opentelemetry/api': '^1.9.0', kysely: '>=0.27', '@electric-sql/pglite': '>=0.5' },
  peerDependenciesMeta: { '@electric-sql/pglite': { optional: true } },
};

test('a declared core peer (kysely) is a required peer and may be imported by the core', () => {
  const dir = fixture('core-peer', withCore, {
    'src/enqueue.ts': "import { sql } from 'kysely';\nexport const q = sql;\n",
    'src/pglite/listen.ts': "import type { PGlite } from '@electric-sql/pglite';\nexport type P = PGlite;\n",
  });
  assert.deepEqual(checkPackage(dir), []);
});

test('a core peer marked optional, missing from the peers, or not allowed as core is reported', () => {
  const optional = fixture(
    'core-optional',
    { ...withCore, peerDependenciesMeta: { kysely: { optional: true } } },
    { 'src/i.ts': '' },
  );
  assert.match(checkPackage(optional).join('\n'), /kysely is a core peer .* must be a required peer/);
  const missing = fixture(
    'core-missing',
    { ...withCore, peerDependencies: { '@opentelemetry/api': '^1.9.0' } },
    { 'src/i.ts': '' },
  );
  assert.match(
    checkPackage(missing).join('\n'),
    /kysely is a core peer \(oms.corePeers\) but not a peerDependency/,
  );
  const notAllowed = fixture(
    'core-pg',
    { ...good, oms: { corePeers: ['pg'] }, peerDependencies: { ...good.peerDependencies, pg: '>=8' } },
    { 'src/core.ts': "import pg from 'pg';\n" },
  );
  const problems = checkPackage(notAllowed).join('\n');
  assert.match(problems, /pg cannot be a core peer/);
  assert.match(problems, /pg is a peerDependency but not optional/);
  assert.match(problems, /src\/core\.ts imports 'pg'; drivers may be imported only under src\/postgres\//);
});

test('without the core-peer declaration kysely stays an optional driver of src/postgres/', () => {
  const dir = fixture(
    'kysely-driver',
    { ...good, peerDependencies: { ...good.peerDependencies, kysely: '>=0.27' } },
    { 'src/core.ts': "import { sql } from 'kysely';\n" },
  );
  const problems = checkPackage(dir).join('\n');
  assert.match(problems, /kysely is a peerDependency but not optional/);
  assert.match(
    problems,
    /src\/core\.ts imports 'kysely'; drivers may be imported only under src\/postgres\//,
  );
});

test('PGlite is a driver allowed only under src/pglite/', () => {
  const dir = fixture(
    'pglite-leak',
    {
      ...good,
      peerDependencies: { ...good.peerDependencies, '@electric-sql/pglite': '>=0.5' },
      peerDependenciesMeta: { ...good.peerDependenciesMeta, '@electric-sql/pglite': { optional: true } },
    },
    { 'src/relay.ts': "import type { PGlite } from '@electric-sql/pglite';\n" },
  );
  assert.match(
    checkPackage(dir).join('\n'),
    /src\/relay\.ts imports '@electric-sql\/pglite'; drivers may be imported only under src\/pglite\//,
  );
});

test('a web framework is an optional peer imported only by its adapter subpath', () => {
  const pkg = {
    ...good,
    peerDependencies: { ...good.peerDependencies, fastify: '>=5' },
    peerDependenciesMeta: { ...good.peerDependenciesMeta, fastify: { optional: true } },
  };
  const ok = fixture('fw-ok', pkg, {
    'src/fastify/plugin.ts': "import type { FastifyInstance } from 'fastify';\n",
  });
  assert.deepEqual(checkPackage(ok), []);
  const bad = fixture('fw-bad', pkg, {
    'src/limiter.ts': "import type { FastifyRequest } from 'fastify';\n",
  });
  assert.match(checkPackage(bad).join('\n'), /drivers may be imported only under src\/fastify\//);
});
