import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { DEV_AUDIENCE, DEV_ISSUER, ensureDevKeys } from '../src/dev-keys.js';

const DIST = fileURLToPath(new URL('../dist/', import.meta.url));

function run(script: string, args: string[], env: Record<string, string>) {
  if (!existsSync(join(DIST, script)))
    throw new Error(`dist/${script} is missing: build the app before testing`);
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [join(DIST, script), ...args], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => (stdout += c));
    child.stderr.on('data', (c) => (stderr += c));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      port: 3000,
      host: '127.0.0.1',
      dataDir: './.data',
      databaseUrl: undefined,
      redisUrl: undefined,
      paymentsUrl: 'http://127.0.0.1:3100',
      logLevel: 'info',
      backupEveryMs: 0,
      rpoMs: 86_400_000,
    });
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['DATABASE_URL', 'mysql://localhost/db'],
    ['DATABASE_URL', 'not a url'],
    ['REDIS_URL', 'http://localhost'],
    ['JWKS_URL', 'ftp://idp/jwks'],
    ['PAYMENTS_URL', '::'],
    ['LOG_LEVEL', 'loud'],
    ['RATE_GLOBAL_PER_MIN', '0'],
    ['RATE_IP_PER_MIN', '-5'],
    ['BACKUP_EVERY_MS', '1.5'],
    ['RPO_MS', '0'],
    ['SHUTDOWN_DRAIN_MS', 'soon'],
    ['REDIS_PREFIX', 'has space'],
  ])('%s=%s fails, naming the variable', (name, value) => {
    let err: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variable).toBe(name);
    expect((err as ConfigError).message).toMatch(new RegExp(`^${name}: `));
  });

  it('never echoes a URL that may hold a password', () => {
    expect(() => loadConfig({ DATABASE_URL: 'postgres//u:s3cret@host' })).toThrow(
      /^DATABASE_URL: (?!.*s3cret)/,
    );
  });

  it('the process exits 78 at start with one JSON line naming the variable', async () => {
    const r = await run('main.js', [], { PORT: 'eighty', DATA_DIR: join(tmpdir(), 'oms-ref-never-created') });
    expect(r.code).toBe(78);
    const line = JSON.parse(r.stderr.trim().split('\n').pop() ?? '{}');
    expect(line).toMatchObject({ level: 'fatal', variable: 'PORT' });
  });
});

describe('dev keys and pnpm dev-token', () => {
  it('prints a token for the role that the app’s local JWKS verifies', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'oms-ref-keys-'));
    try {
      const r = await run('cli/dev-token.js', ['--role', 'admin', '--sub', 'ada', '--data-dir', dataDir], {});
      expect(r.code, r.stderr).toBe(0);
      const token = r.stdout.trim();
      const { jwks } = await ensureDevKeys(dataDir);
      expect(JSON.stringify(jwks)).not.toContain('"d"'); // the JWKS holds public keys only
      const { payload } = await jwtVerify(token, createLocalJWKSet(jwks as never), {
        issuer: DEV_ISSUER,
        audience: DEV_AUDIENCE,
      });
      expect(payload).toMatchObject({ sub: 'ada', roles: ['admin'] });
      const bad = await run('cli/dev-token.js', ['--role', 'root', '--data-dir', dataDir], {});
      expect(bad.code).toBe(2);
      expect(bad.stderr).toContain('--role');
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
