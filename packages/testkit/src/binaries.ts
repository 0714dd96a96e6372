import { accessSync, constants, readdirSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { TestkitError } from './errors.js';

/** Which Debian package ships each binary the testkit starts, so a missing one can be named exactly. */
const PROVIDERS: Record<string, string> = {
  postgres: 'postgresql',
  initdb: 'postgresql',
  'redis-server': 'redis-server',
  'redis-cli': 'redis-tools',
};

const ENV_HINT: Record<string, string> = {
  postgres: 'OMS_TEST_DATABASE_URL',
  initdb: 'OMS_TEST_DATABASE_URL',
  'redis-server': 'OMS_TEST_REDIS_URL',
  'redis-cli': 'OMS_TEST_REDIS_URL',
};

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * PostgreSQL's server binaries live under /usr/lib/postgresql/<major>/bin on Debian and are not on PATH.
 * The newest major wins. `OMS_TESTKIT_PG_ROOT` overrides the root (the missing-binary test uses it).
 */
function postgresDirs(): string[] {
  const root = process.env.OMS_TESTKIT_PG_ROOT ?? '/usr/lib/postgresql';
  try {
    return readdirSync(root)
      .filter((v) => /^\d+(\.\d+)?$/.test(v))
      .sort((a, b) => Number(b) - Number(a))
      .map((v) => join(root, v, 'bin'));
  } catch {
    return [];
  }
}

/** Resolves a server binary, or throws one message naming the binary and the package that provides it. */
export function findBinary(name: keyof typeof PROVIDERS): string {
  const extra = name === 'postgres' || name === 'initdb' ? postgresDirs() : [];
  const dirs = [...extra, ...(process.env.PATH ?? '').split(delimiter).filter(Boolean)];
  for (const dir of dirs) {
    const file = join(dir, name);
    if (isExecutable(file)) return file;
  }
  throw new TestkitError(
    'ERR_OMS_TESTKIT_MISSING_BINARY',
    `@oms/testkit: '${name}' was not found on PATH${extra.length || name === 'postgres' || name === 'initdb' ? ' or under /usr/lib/postgresql/*/bin' : ''}. ` +
      `Install the '${PROVIDERS[name]}' package (apt-get install ${PROVIDERS[name]}) or set ${ENV_HINT[name]} to an existing server.`,
  );
}
