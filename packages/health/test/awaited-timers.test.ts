import { existsSync } from 'node:fs';
import { type AloneRun, explainRun, runAlone as runScript } from '@oms/testkit';
import { describe, expect, it } from 'vitest';

// Each script runs alone in a fresh `node` with nothing else alive, importing the built package the way a
// user's script does. A timer that bounds an awaited promise must hold the process open until it settles;
// if it were unref'd, Node would exit with code 13 ("unsettled top-level await") in the middle of the await.
const dist = new URL('../dist/index.js', import.meta.url);
const runAlone = (body: string): Promise<AloneRun> => {
  if (!existsSync(dist)) throw new Error('dist/index.js is missing: build the package before testing');
  // a ref'd background timer would keep the script alive: that is a failure too, not a hang
  return runScript({ imports: { health: dist }, body, killAfterMs: 20_000 });
};

const expectClean = (r: AloneRun) => {
  expect(r.signal, explainRun(r)).toBeNull();
  expect(r.code, explainRun(r)).toBe(0);
};

describe('awaited timers hold a bare script open until they settle', () => {
  it("report('readiness') with a check that never settles settles as fail after timeoutMs and exits 0", async () => {
    const r = await runAlone(`
      const registry = health.healthRegistry({ service: 'job', version: '1' });
      registry.register({
        name: 'db:responseTime', check: () => new Promise(() => {}),
        kinds: ['readiness'], critical: true, timeoutMs: 150,
      });
      const report = await registry.report('readiness');
      print({ status: report.status, output: report.body.checks['db:responseTime'][0].output });
    `);
    expectClean(r);
    expect(r.out).toEqual({ status: 'fail', output: 'timed out after 150 ms' });
  });

  it('a report that joins a run the background poller started holds the process until that run times out', async () => {
    // The poller's own run is background work (unref'd); once a report awaits it, its timer must be ref'd.
    // The poll timer itself stays unref'd: the script still exits at once after the report.
    const r = await runAlone(`
      const registry = health.healthRegistry({ service: 'job', version: '1' });
      let runs = 0;
      registry.register({
        name: 'db:responseTime', check: () => { runs++; return new Promise(() => {}); },
        kinds: ['readiness'], critical: true, timeoutMs: 150, intervalMs: 60_000,
      });
      await new Promise((r) => setTimeout(r, 20)); // the poller has started its run by now
      const report = await registry.report('readiness');
      print({ runs, status: report.status, output: report.body.checks['db:responseTime'][0].output });
    `);
    expectClean(r);
    expect(r.out).toEqual({ runs: 1, status: 'fail', output: 'timed out after 150 ms' });
  });

  it('background polling alone never keeps a script alive', async () => {
    const r = await runAlone(`
      const registry = health.healthRegistry({ service: 'job', version: '1' });
      registry.register({
        name: 'db:responseTime', check: () => ({ status: 'pass' }),
        kinds: ['readiness'], critical: true, timeoutMs: 1_000, intervalMs: 50,
      });
      await registry.report('readiness');
      print({ polling: true });
    `);
    expectClean(r);
    expect(r.out).toEqual({ polling: true });
  });

  const shutdownScript = (options: string) => `
    import { createServer } from 'node:http';
    const server = createServer((_req, res) => res.end('ok'));
    await new Promise((r) => server.listen(0, '127.0.0.1', r));
    server.unref(); // only the shutdown's own timers may keep this script alive
    const registry = health.healthRegistry({ service: 'job', version: '1' });
    const exits = [];
    const shutdown = health.gracefulShutdown({
      server, registry, timeoutMs: 10_000, signals: [], log: false, exit: (c) => exits.push(c), ${options}
    });
    const phases = [];
    const hooks = [];
    const forced = [];
    shutdown.on('phase', (e) => phases.push(e.phase));
    shutdown.on('hook', (e) => hooks.push({ name: e.name, ok: e.ok, ...(e.error ? { error: e.error } : {}) }));
    shutdown.on('forced', (e) => forced.push(e.reason));
    const code = await shutdown.shutdown('job done');
    print({ code, exits, phases, hooks, forced });
  `;

  it('the shutdown drain holds the process for drainDelayMs, then the shutdown resolves 0 and the script exits 0', async () => {
    const r = await runAlone(shutdownScript('drainDelayMs: 150'));
    expectClean(r);
    expect(r.out).toEqual({
      code: 0,
      exits: [0],
      phases: ['draining', 'closing', 'waiting', 'hooks'],
      hooks: [],
      forced: [],
    });
  });

  it('a hook that never settles fails at its own timeoutMs, the next hook runs, and the script exits 0', async () => {
    const r = await runAlone(
      shutdownScript(`drainDelayMs: 0, hooks: [
        { name: 'hangs', fn: () => new Promise(() => {}), timeoutMs: 150 },
        async function closePool() {},
      ]`),
    );
    expectClean(r);
    expect(r.out).toEqual({
      code: 1,
      exits: [1],
      phases: ['draining', 'closing', 'waiting', 'hooks'],
      hooks: [
        { name: 'hangs', ok: false, error: 'hook hangs timed out after 150 ms' },
        { name: 'closePool', ok: true },
      ],
      forced: [],
    });
  });
});
