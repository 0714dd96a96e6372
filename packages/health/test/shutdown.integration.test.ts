import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnWorkers, until } from '@oms/testkit';
import { describe, expect, it } from 'vitest';
import type { LoadInput, LoadResult } from './fixtures/load.js';
import type { ServerInput } from './fixtures/shutdown-server.js';

const serverModule = new URL('./fixtures/shutdown-server.ts', import.meta.url).pathname;
const loadModule = new URL('./fixtures/load.ts', import.meta.url).pathname;

type Msg = { type: string; [k: string]: unknown };

const get = (port: number, path: string, agent?: Agent) =>
  new Promise<number>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, ...(agent ? { agent } : {}) }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end();
  });

function startServer(input: ServerInput) {
  const group = spawnWorkers<ServerInput, never>(1, serverModule, input, { timeoutMs: 60_000 });
  const messages: Msg[] = [];
  const waiters: { pred: (m: Msg) => boolean; resolve: (m: Msg) => void }[] = [];
  group.on('message', (_i, data) => {
    const m = data as Msg;
    messages.push(m);
    for (const w of [...waiters]) {
      if (w.pred(m)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(m);
      }
    }
  });
  const waitFor = (pred: (m: Msg) => boolean) => {
    const seen = messages.find(pred);
    return seen ? Promise.resolve(seen) : new Promise<Msg>((resolve) => waiters.push({ pred, resolve }));
  };
  return { group, messages, waitFor };
}

describe('graceful shutdown of a real server under load', () => {
  it('drains with zero failed requests, runs hooks in order and exits 0 in time', async () => {
    const REQUEST_MS = 300;
    const DRAIN_MS = 200;
    const { group, messages, waitFor } = startServer({
      requestMs: REQUEST_MS,
      drainDelayMs: DRAIN_MS,
      timeoutMs: 10_000,
    });
    const ports = (await waitFor((m) => m.type === 'listening')) as Msg & {
      appPort: number;
      probePort: number;
    };
    const probeAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    expect(await get(ports.probePort, '/readyz', probeAgent)).toBe(200);

    const load = spawnWorkers<LoadInput, LoadResult>(
      1,
      loadModule,
      { appPort: ports.appPort, probePort: ports.probePort, concurrency: 16, maxMs: 20_000 },
      { timeoutMs: 60_000 },
    );
    await new Promise<void>((resolve) => load.on('message', () => resolve()));
    // requests are now in flight on every load connection
    await new Promise((r) => setTimeout(r, 50));

    const exited = group.outcomes.then((o) => ({ outcome: o[0], at: Date.now() }));
    // The server's stall total as last reported before the signal; what it adds by 'draining' is allowed for.
    const lagBefore = Math.max(0, ...messages.map((m) => (m as Msg & { lag?: number }).lag ?? 0));
    const t0 = Date.now();
    group.kill(0, 'SIGTERM');
    const probes: { sentAt: number; status: number }[] = [];
    let readyz = 200;
    while (readyz === 200) {
      const sentAt = Date.now();
      readyz = await get(ports.probePort, '/readyz', probeAgent);
      probes.push({ sentAt, status: readyz });
    }
    const flipMs = Date.now() - t0;
    expect(readyz).toBe(503);
    // The child stamps the moment readiness failed (same machine, same wall clock). Asserting on it, rather
    // than on when our own probe's answer arrived, keeps two HTTP round trips on a loaded machine out of
    // the 50 ms the design promises; the probe side then proves /readyz served that state at once.
    const draining = (await waitFor((m) => m.phase === 'draining')) as Msg & { at: number; lag: number };
    const failedAfter = draining.at - t0;
    // The 50 ms bound, plus the server process's own measured stalls in that window (a loaded 2-core machine
    // can deschedule it; no code runs while it is descheduled).
    const stalls = Math.max(0, draining.lag - lagBefore);
    expect(
      failedAfter,
      `readiness failed ${failedAfter} ms after SIGTERM (server stalled ${stalls.toFixed(1)} ms); /readyz answered 503 after ${flipMs} ms`,
    ).toBeLessThanOrEqual(50 + stalls);
    expect(probes.filter((p) => p.sentAt > draining.at && p.status !== 503)).toEqual([]);
    // liveness keeps passing while draining
    expect(await get(ports.probePort, '/livez', probeAgent)).toBe(200);
    probeAgent.destroy();

    const { outcome, at } = await exited;
    const exitMs = at - t0;
    const [loadOutcome] = await load.outcomes;
    expect(loadOutcome?.ok, loadOutcome && !loadOutcome.ok ? loadOutcome.error.message : '').toBe(true);
    const result = (loadOutcome as { value: LoadResult }).value;

    expect(result.failures, 'failed or reset requests').toEqual([]);
    expect(result.ok).toBeGreaterThan(16);
    expect(outcome && !outcome.ok && outcome.exitCode).toBe(0);
    expect(messages.find((m) => m.type === 'exit')?.code).toBe(0);
    expect(exitMs, `exited ${exitMs} ms after SIGTERM`).toBeLessThanOrEqual(DRAIN_MS + REQUEST_MS + 500);

    const phases = messages.filter((m) => m.type === 'phase').map((m) => m.phase);
    expect(phases).toEqual(['draining', 'closing', 'waiting', 'hooks']);
    const waiting = messages.find((m) => m.phase === 'waiting') as Msg & { at: number };
    const hooks = messages.filter((m) => m.type === 'hook') as (Msg & { at: number })[];
    expect(hooks.map((h) => h.name)).toEqual(['outbox relay', 'pg pool']);
    // every request the server received was answered before the hooks ran
    const received = messages.filter((m) => m.type === 'request').length;
    expect(result.ok).toBe(received);
    expect(hooks[0]!.at).toBeGreaterThanOrEqual(waiting.at);
    expect(messages.some((m) => m.type === 'log')).toBe(false);
  });

  it('a second SIGTERM during the drain forces a non-zero exit and reports what was in flight', async () => {
    const { group, messages, waitFor } = startServer({
      requestMs: 10_000,
      drainDelayMs: 5_000,
      timeoutMs: 30_000,
    });
    const ports = (await waitFor((m) => m.type === 'listening')) as Msg & { appPort: number };
    const pending = get(ports.appPort, '/work?token=secret').catch((e: NodeJS.ErrnoException) => e.code);
    await waitFor((m) => m.type === 'request');
    const exited = group.outcomes.then((o) => ({ outcome: o[0], at: Date.now() }));
    group.kill(0, 'SIGTERM');
    await waitFor((m) => m.phase === 'draining');
    const t0 = Date.now();
    group.kill(0, 'SIGTERM');
    const { outcome, at } = await exited;
    expect(at - t0).toBeLessThan(2_000);
    expect(outcome && !outcome.ok && outcome.exitCode).toBe(143);
    const log = messages.find((m) => m.type === 'log')?.entry as {
      msg: string;
      inFlight: { path: string }[];
    };
    expect(log.msg).toContain('second SIGTERM');
    expect(log.inFlight.map((r) => r.path)).toEqual(['/work']); // no query string: it may hold tokens
    expect(messages.some((m) => m.type === 'hook')).toBe(false);
    await pending;
  });
});

describe('graceful shutdown of a process that stalls through its drain', () => {
  it('serves a request that arrived during the stall, instead of resetting its idle connection', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'oms-health-stall-'));
    const blockFile = join(dir, 'block');
    const DRAIN_MS = 300;
    try {
      const { group, waitFor } = startServer({
        requestMs: 10,
        drainDelayMs: DRAIN_MS,
        timeoutMs: 30_000,
        blockFile,
      });
      const ports = (await waitFor((m) => m.type === 'listening')) as Msg & { appPort: number };
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      // one answered request leaves an idle keep-alive connection, which the late request below reuses
      expect(await get(ports.appPort, '/warm', agent)).toBe(200);

      group.kill(0, 'SIGTERM');
      await waitFor((m) => m.type === 'phase' && m.phase === 'draining');
      const drainingAt = Date.now();
      const blocked = get(ports.appPort, '/block');
      await until(() => existsSync(blockFile), { timeoutMs: 20_000, what: 'the server to start its stall' });
      // sent while the server cannot read it; it waits in the socket buffer of the idle connection
      const late = get(ports.appPort, '/late', agent).then(
        (status) => status,
        (e: NodeJS.ErrnoException) => `failed: ${e.code ?? e.message}`,
      );
      // end the stall only once the drain timer is overdue, so it runs before the poll phase reads /late
      await new Promise((r) => setTimeout(r, Math.max(0, drainingAt + 3 * DRAIN_MS - Date.now())));
      writeFileSync(`${blockFile}.release`, '');

      expect(await blocked).toBe(200);
      expect(await late).toBe(200);
      expect(await waitFor((m) => m.type === 'exit')).toMatchObject({ code: 0 });
      agent.destroy();
      await group.outcomes;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
