import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const run = (fixture: string, timeoutMs: number) =>
  new Promise<{ code: number | null; stdout: string; stderr: string; ms: number }>((resolve) => {
    const started = Date.now();
    const path = fileURLToPath(new URL(`./fixtures/${fixture}`, import.meta.url));
    execFile(
      process.execPath,
      [path],
      { timeout: timeoutMs, cwd: fileURLToPath(new URL('..', import.meta.url)) },
      (err, stdout, stderr) => {
        const code =
          err && typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : err
              ? null
              : 0;
        resolve({ code, stdout, stderr, ms: Date.now() - started });
      },
    );
  });

// Each runs the built package in a child process with nothing else alive (build first: `pnpm build`).
describe('timers in a bare script', () => {
  it("a verification waiting on a hung JWKS fetch settles with 503 and exit 0 (the timeout timer is ref'd)", async () => {
    const r = await run('awaited-fetch-timeout.mjs', 30_000);
    expect(r.stderr).toBe('');
    expect(r.code, `exit code (13 means an unref'd timer let Node quit mid-await); stdout ${r.stdout}`).toBe(
      0,
    );
    const out = JSON.parse(r.stdout) as { outcome: string; status: number; ms: number };
    expect(out).toMatchObject({ outcome: 'ERR_OMS_AUTH_KEYS_UNAVAILABLE', status: 503 });
    expect(out.ms).toBeGreaterThanOrEqual(290);
  });

  it("the background JWKS refresh never keeps a finished script alive (it is unref'd)", async () => {
    // cacheMaxAgeMs is 10 minutes: a ref'd refresh timer would hold the child until this 60 s timeout kills it.
    const r = await run('background-refresh-exits.mjs', 60_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ outcome: 'ok', subject: 'u' });
  });

  it("a verification waiting on a hung revocation store settles with 503 and exit 0; the poll timer is unref'd", async () => {
    // pollMs is 10 minutes: a ref'd poll timer would hold the child until this 60 s timeout kills it.
    const r = await run('revocations-timers.mjs', 60_000);
    expect(r.stderr).toBe('');
    expect(r.code, `exit code (13 means an unref'd timer let Node quit mid-await); stdout ${r.stdout}`).toBe(
      0,
    );
    const out = JSON.parse(r.stdout) as { outcome: string; status: number; ms: number };
    expect(out).toMatchObject({ outcome: 'ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE', status: 503 });
    expect(out.ms).toBeGreaterThanOrEqual(290);
  });
});
