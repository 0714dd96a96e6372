import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const child = new URL('./fixtures/start-and-wait.ts', import.meta.url).pathname;
const tsx = import.meta.resolve('tsx');

/** Alive and not a zombie: a reaped-later zombie holds no port and runs no code. */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function startOwner(mode: 'crash' | 'exit'): Promise<{ pids: number[]; proc: ReturnType<typeof spawn> }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', tsx, child, mode], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout?.on('data', (d) => {
      out += d;
      const m = /PIDS (.*)\n/.exec(out);
      if (m) resolve({ pids: JSON.parse(m[1] ?? '[]'), proc });
    });
    proc.on('exit', (code) => {
      if (!/PIDS/.test(out)) reject(new Error(`owner exited with ${code} before starting servers: ${out}`));
    });
  });
}

async function eventually(cond: () => boolean, ms = 5_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

describe('cleanup', () => {
  it('servers die with the process that started them, even when it is SIGKILLed', async () => {
    const { pids, proc } = await startOwner('crash');
    expect(pids).toHaveLength(2);
    expect(pids.every(running)).toBe(true);
    proc.kill('SIGKILL');
    expect(await eventually(() => !pids.some(running))).toBe(true);
  });

  it('servers are killed when the owner exits without stopping them', async () => {
    const { pids } = await startOwner('exit');
    expect(await eventually(() => !pids.some(running))).toBe(true);
  });
});
