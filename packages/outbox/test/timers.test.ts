import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const script = (name: string) => fileURLToPath(new URL(`./fixtures/scripts/${name}`, import.meta.url));

/** Runs a script of the built package in a Node process that has nothing else alive. */
function run(
  name: string,
  killAfterMs: number,
): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [script(name)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const killer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
    child.on('exit', (code) => {
      clearTimeout(killer);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

describe('timers in a bare script (the built package, nothing else alive)', () => {
  it('a running relay never holds the process open: its poll and heartbeat are background timers', async () => {
    // the relay polls every 10 min; a ref'd poll or heartbeat timer would keep the script alive until the kill
    // (PGlite alone takes ~20 s to start on a loaded machine, hence the generous kill)
    const r = await run('relay-left-running.mjs', 150_000);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/^published \d+\n$/);
    expect(r.code).toBe(0);
  }, 180_000);

  it('await stop({ drain: true, timeoutMs }) settles after the timeout with the batch handed back, exit 0 (not 13)', async () => {
    const r = await run('stop-drain-timeout.mjs', 150_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { state: string; waitedMs: number; rows: unknown[] };
    expect(out.state).toBe('stopped');
    expect(out.waitedMs).toBeGreaterThanOrEqual(14_900);
    expect(out.rows).toEqual([{ claimed_by: null }]);
  }, 180_000);
});
