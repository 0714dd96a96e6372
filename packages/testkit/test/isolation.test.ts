import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, inject, it } from 'vitest';

const vitestBin = join(dirname(createRequire(import.meta.url).resolve('vitest/package.json')), 'vitest.mjs');
const config = new URL('./isolation/vitest.config.ts', import.meta.url).pathname;

function runNested(env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [vitestBin, 'run', '--config', config], {
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('test files in parallel', () => {
  it("two files running at the same time don't see each other's data", async () => {
    const shared = inject('omsTestkit');
    const { code, out } = await runNested({
      ISO_RUN_ID: randomUUID(),
      OMS_TEST_DATABASE_URL: process.env.OMS_TEST_DATABASE_URL ?? shared.postgresUrl,
      OMS_TEST_REDIS_URL: process.env.OMS_TEST_REDIS_URL ?? shared.redisUrl,
    });
    expect(out).toMatch(/Tests\s+2 passed/);
    expect(code).toBe(0);
  });
});
