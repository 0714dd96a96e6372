import { describe, expect, it } from 'vitest';
import { explainRun, runAlone } from '../src/run-alone.js';

describe('runAlone', () => {
  it("a ref'd awaited timer keeps the script alive until it settles: exit 0 and the printed result", async () => {
    const r = await runAlone({
      body: 'await new Promise((r) => setTimeout(r, 100)); print({ done: true });',
    });
    expect(r.code, explainRun(r)).toBe(0);
    expect(r.out).toEqual({ done: true });
  });

  it("an awaited promise behind an unref'd timer exits 13 mid-wait, which explainRun names", async () => {
    const r = await runAlone({
      body: 'await new Promise((r) => setTimeout(r, 5_000).unref()); print("never");',
    });
    expect(r.code).toBe(13);
    expect(r.out).toBeUndefined();
    expect(explainRun(r)).toMatch(/13: Node quit with a top-level await unsettled/);
  });

  it("a script kept alive by a ref'd background timer is killed after killAfterMs", async () => {
    const r = await runAlone({ body: 'setInterval(() => {}, 1_000);', killAfterMs: 1_500 });
    expect(r.signal).toBe('SIGKILL');
    expect(explainRun(r)).toMatch(/never exited/);
  });

  it('imports are in scope by name', async () => {
    const r = await runAlone({ imports: { path: 'node:path' }, body: "print(path.join('a', 'b'));" });
    expect(r.out).toBe('a/b');
  });
});
