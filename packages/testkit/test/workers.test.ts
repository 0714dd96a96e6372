import { describe, expect, it } from 'vitest';
import { forkWorkers, spawnWorkers } from '../src/workers.js';

const fixture = (name: string) => new URL(`./fixtures/${name}`, import.meta.url).pathname;

describe('forkWorkers', () => {
  it('runs n distinct real processes and returns their results in index order', async () => {
    const results = await forkWorkers<object, { pid: number; index: number; n: number; big: bigint }>(
      3,
      fixture('worker-echo.ts'),
      {},
    );
    expect(results.map((r) => r.index)).toEqual([0, 1, 2]);
    expect(results.every((r) => r.n === 3)).toBe(true);
    const pids = new Set(results.map((r) => r.pid));
    expect(pids.size).toBe(3);
    expect(pids.has(process.pid)).toBe(false);
    // bigint survives the trip (fencing tokens are bigints)
    expect(results[0]?.big).toBe(10n ** 20n);
  });

  it('holds every worker at ready() until the last one arrives', async () => {
    const results = await forkWorkers<unknown, { readyAt: number; startedAt: number }>(
      3,
      fixture('worker-ready-time.ts'),
      null,
    );
    const lastReady = Math.max(...results.map((r) => r.readyAt));
    for (const r of results) expect(r.startedAt).toBeGreaterThanOrEqual(lastReady);
  });

  it("rejects with the failing worker's message and code", async () => {
    await expect(forkWorkers(2, fixture('worker-echo.ts'), { fail: 1 })).rejects.toMatchObject({
      message: expect.stringContaining('worker 1: deliberate failure'),
      code: 'E_FIXTURE',
    });
  });

  it('kills hung workers after timeoutMs instead of hanging the test', async () => {
    const started = Date.now();
    await expect(
      forkWorkers(2, fixture('worker-echo.ts'), { hang: true }, { timeoutMs: 1_500 }),
    ).rejects.toThrow(/timed out after 1500 ms/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('lets a test kill one worker and hear from the others', async () => {
    const group = spawnWorkers<object, unknown>(2, fixture('worker-echo.ts'), { hang: true });
    const heard: number[] = [];
    group.on('message', (i) => heard.push(i));
    while (heard.length < 2) await new Promise((r) => setTimeout(r, 20));
    group.kill(0, 'SIGKILL');
    group.kill(1, 'SIGTERM');
    const outcomes = await group.outcomes;
    expect(outcomes[0]).toMatchObject({ ok: false, signal: 'SIGKILL' });
    expect(outcomes[1]).toMatchObject({ ok: false, signal: 'SIGTERM' });
    expect(heard.sort()).toEqual([0, 1]);
  });

  it('keeps a message the parent sent before the worker subscribed', async () => {
    const group = spawnWorkers<unknown, unknown>(1, fixture('worker-late-listener.ts'), null);
    group.on('message', (i) => group.send(i, { phase: 2 }));
    const [outcome] = await group.outcomes;
    expect(outcome).toEqual({ ok: true, value: { phase: 2 } });
  });
});
