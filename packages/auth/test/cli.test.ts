import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createVerifier, hmacSecret } from '../src/index.js';

const bin = fileURLToPath(new URL('../dist/cli/oms-auth.js', import.meta.url));
const SECRET = 'dev-secret-that-is-at-least-32-bytes';

const run = (args: string[], env: Record<string, string | undefined>) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const { NODE_ENV: _drop, ...base } = process.env;
    execFile(
      process.execPath,
      [bin, ...args],
      { env: { ...base, ...env }, timeout: 30_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

// The built bin (build first). Test tokens come from this CLI, never from a route of the service.
describe('oms-auth dev-token', () => {
  it('prints a token that a verifier on the same secret accepts, with the roles asked for', async () => {
    const r = await run(
      ['dev-token', '--role', 'admin', '--role', 'clerk', '--tenant', 'acme', '--ttl', '60'],
      {
        OMS_AUTH_DEV_SECRET: SECRET,
      },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const verifier = createVerifier({
      issuer: 'oms-dev',
      audience: 'oms-dev',
      algorithms: ['HS256'],
      keys: hmacSecret(SECRET),
    });
    const p = await verifier.verify(r.stdout.trim());
    expect(p).toMatchObject({ subject: 'dev-user', roles: ['admin', 'clerk'], tenant: 'acme' });
    expect((p.claims.exp as number) - (p.claims.iat as number)).toBe(60);
  });

  it('refuses to run with NODE_ENV=production', async () => {
    const r = await run(['dev-token', '--role', 'admin'], {
      OMS_AUTH_DEV_SECRET: SECRET,
      NODE_ENV: 'production',
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/NODE_ENV=production/);
  });

  it('refuses a missing or short secret', async () => {
    for (const secret of [undefined, 'short']) {
      const r = await run(['dev-token', '--role', 'admin'], { OMS_AUTH_DEV_SECRET: secret });
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
    }
  });
});
