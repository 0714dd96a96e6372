import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

// Each script runs alone in a fresh `node` with nothing else alive, against the built package: a timer that
// bounds or delays what the script awaits must hold the process open (an unref'd one exits with code 13 in
// the middle of the await), and nothing may hold it once the await settled.
const dist = (p: string) => pathToFileURL(new URL(`../dist/${p}`, import.meta.url).pathname).href;
const dir = mkdtempSync(join(tmpdir(), 'oms-ratelimit-timers-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(name: string, body: string): { code: number | null; out: unknown; stderr: string } {
  const file = join(dir, `${name}.mjs`);
  writeFileSync(
    file,
    `import { limitAll, rateLimiter, tokenBucket } from '${dist('index.js')}';
import { redisStore } from '${dist('redis/index.js')}';
${body}`,
  );
  // far below the 60 s store bound of the answering-store case, far above what any case needs under load
  const r = spawnSync(process.execPath, [file], { encoding: 'utf8', timeout: 30_000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  return { code: r.status, out: last ? JSON.parse(last) : undefined, stderr: r.stderr };
}

// A client that accepts every command and never answers, as a frozen server looks from the caller. A real
// socket would keep the process alive by itself and hide the timer under test.
const FROZEN = `const frozen = { status: 'ready', evalsha: () => new Promise(() => {}), eval: () => new Promise(() => {}), script: () => new Promise(() => {}), del: () => new Promise(() => {}) };`;

describe('awaited timers hold a bare script open until they settle', () => {
  it('acquire on a drained memory token bucket waits for the refill and exits 0', () => {
    const r = run(
      'acquire',
      `const limiter = rateLimiter({ name: 'a', algorithm: tokenBucket({ capacity: 1, refillPerSec: 4 }) });
// t0 before the drain: the token is due 250 ms after the drain, so at least 250 ms after t0 at any load
const t0 = Date.now();
await limiter.consume('k');
const d = await limiter.acquire('k', { maxWaitMs: 2000 });
console.log(JSON.stringify({ allowed: d.allowed, waitedMs: Date.now() - t0 }));`,
    );
    expect(r.code, `exit code (13 = unsettled await); stderr: ${r.stderr}`).toBe(0);
    expect(r.out).toMatchObject({ allowed: true });
    expect((r.out as { waitedMs: number }).waitedMs).toBeGreaterThanOrEqual(250);
  });

  it('the store-call bound decides consume, limitAll and reset against a frozen store, and exits 0', () => {
    const r = run(
      'frozen',
      `${FROZEN}
const limiter = rateLimiter({ name: 'f', algorithm: tokenBucket({ capacity: 5, refillPerSec: 1 }),
  store: redisStore({ redis: frozen }), timeoutMs: 150 });
const d = await limiter.consume('k');
const all = await limitAll([{ limiter, key: 'k' }]);
const reset = await limiter.reset('k').then(() => 'ok', (e) => e.code);
console.log(JSON.stringify({ consume: d.degraded, allowed: d.allowed, limitAll: all.decisions[0].degraded, reset }));`,
    );
    expect(r.code, `exit code (13 = unsettled await); stderr: ${r.stderr}`).toBe(0);
    expect(r.out).toEqual({
      consume: 'closed',
      allowed: false,
      limitAll: 'closed',
      reset: 'ERR_OMS_RATELIMIT_STORE_TIMEOUT',
    });
  });

  it('once the store answered, the 60 s bound no longer holds the process: it exits at once', () => {
    const r = run(
      'answered',
      `const answering = { status: 'ready', eval: async () => [], script: async () => 'sha', del: async () => 1,
  evalsha: async () => [1, 4, 200, 0, Date.now() * 1000] };
const limiter = rateLimiter({ name: 'a', algorithm: tokenBucket({ capacity: 5, refillPerSec: 1 }),
  store: redisStore({ redis: answering }), timeoutMs: 60_000 });
const d = await limiter.consume('k');
console.log(JSON.stringify({ allowed: d.allowed, remaining: d.remaining }));`,
    );
    expect(r.code, `exit code (null = still running after 30 s); stderr: ${r.stderr}`).toBe(0);
    expect(r.out).toEqual({ allowed: true, remaining: 4 });
  });
});
