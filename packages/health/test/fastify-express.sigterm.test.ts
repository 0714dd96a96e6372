import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { timerLag, until } from '@oms/testkit';
import { afterEach, describe, expect, it } from 'vitest';

// SIGTERM under load, on the real frameworks: the app runs in its own `node` process importing the BUILT
// package as a user's app does, with the probes mounted on the app's own port by the adapter; this test plays
// the load balancer (polling /readyz) and its keep-alive clients.

const require = createRequire(import.meta.url);
const url = (p: string) => JSON.stringify(pathToFileURL(p).href);
const dist = (sub: string) => new URL(`../dist/${sub}/index.js`, import.meta.url).pathname;

const DRAIN_MS = 1000;
const WORK_MS = 20;
// outlives the drain, so the listener closes with these still running
const SLOW_MS = DRAIN_MS + 500;

const common = `
const registry = health.healthRegistry({ service: 'fixture', version: '1.0.0', processChecks: false });
const print = (v) => process.stdout.write(JSON.stringify({ ...v, at: Date.now() }) + '\\n');
let received = 0;
let answered = 0;
const work = (res, send, ms = ${WORK_MS}) => {
  received++;
  res.once('finish', () => answered++);
  setTimeout(send, ms);
};
const slow = (res, send) => {
  print({ type: 'slow' });
  work(res, send, ${SLOW_MS});
};
const shutdownOptions = {
  registry, drainDelayMs: ${DRAIN_MS}, timeoutMs: 15_000, signals: ['SIGTERM'],
  hooks: [
    { name: 'outbox relay', fn: () => print({ type: 'hook', name: 'outbox relay', received, answered }) },
    async function closePool() { print({ type: 'hook', name: 'closePool', received, answered }); },
  ],
};
const watch = (shutdown) => {
  shutdown.on('phase', (e) => print({ type: 'phase', phase: e.phase, inFlight: e.inFlight }));
  // synchronous on a pipe, so it is written before process.exit
  shutdown.on('exit', (e) => print({ type: 'exit', code: e.code, received, answered }));
};
`;

const apps = {
  fastify: `
import Fastify from ${url(require.resolve('fastify'))};
import * as health from ${url(new URL('../dist/index.js', import.meta.url).pathname)};
import { gracefulShutdown, healthPlugin } from ${url(dist('fastify'))};
${common}
const app = Fastify();
await app.register(healthPlugin, { registry });
app.get('/work', (req, reply) => work(reply.raw, () => reply.send('done')));
app.get('/slow', (req, reply) => slow(reply.raw, () => reply.send('done')));
app.addHook('onClose', async () => print({ type: 'fastify onClose', received, answered }));
await app.listen({ port: 0, host: '127.0.0.1' });
watch(gracefulShutdown({ ...shutdownOptions, server: app }));
print({ type: 'listening', port: app.server.address().port });
`,
  express: `
import express from ${url(require.resolve('express'))};
import * as health from ${url(new URL('../dist/index.js', import.meta.url).pathname)};
import { gracefulShutdown, healthMiddleware } from ${url(dist('express'))};
${common}
const app = express();
app.use(healthMiddleware({ registry }));
app.get('/work', (req, res) => work(res, () => res.send('done')));
app.get('/slow', (req, res) => slow(res, () => res.send('done')));
const server = await new Promise((r) => { const s = app.listen(0, '127.0.0.1', () => r(s)); });
watch(gracefulShutdown({ ...shutdownOptions, server }));
print({ type: 'listening', port: server.address().port });
`,
};

type Line = { type: string; at: number; [k: string]: unknown };

function startApp(source: string) {
  for (const sub of ['.', 'fastify', 'express']) {
    const file = new URL(`../dist/${sub === '.' ? '' : `${sub}/`}index.js`, import.meta.url);
    if (!existsSync(file)) throw new Error(`${file.pathname} is missing: build the package before testing`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'oms-health-app-'));
  const file = join(dir, 'app.mjs');
  writeFileSync(file, source);
  const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Line[] = [];
  let stderr = '';
  let buf = '';
  const waiters = new Set<() => void>();
  child.stdout.on('data', (d: Buffer) => {
    buf += d;
    const parts = buf.split('\n');
    buf = parts.pop() ?? '';
    for (const p of parts) if (p) lines.push(JSON.parse(p) as Line);
    for (const w of waiters) w();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => {
      rmSync(dir, { recursive: true, force: true });
      resolve({ code, signal, at: Date.now() });
    }),
  );
  const waitFor = (type: string) =>
    new Promise<Line>((resolve, reject) => {
      const check = () => {
        const seen = lines.find((l) => l.type === type);
        if (seen) {
          waiters.delete(check);
          resolve(seen);
        }
      };
      waiters.add(check);
      check();
      void exited.then(() => {
        check();
        reject(new Error(`the app exited before printing ${type}; stderr: ${stderr}`));
      });
    });
  return { child, lines, exited, waitFor, stderr: () => stderr };
}

let running: ChildProcess | undefined;
afterEach(() => {
  if (running && running.exitCode === null && running.signalCode === null) running.kill('SIGKILL');
});

interface Reply {
  status: number;
  body: string;
  connection?: string | undefined;
}
const get = (port: number, path: string, agent: Agent) =>
  new Promise<Reply>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, connection: res.headers.connection }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });

describe.each(Object.keys(apps) as (keyof typeof apps)[])('SIGTERM under load on %s', (framework) => {
  it('answers every request completely, drains in order and exits 0', async () => {
    const app = startApp(apps[framework]);
    running = app.child;
    const { port } = (await app.waitFor('listening')) as Line & { port: number };
    const probeAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    expect((await get(port, '/readyz', probeAgent)).status).toBe(200);

    const CONCURRENCY = 16;
    const WARM = 25 * CONCURRENCY; // answered before the signal
    const MAX_REQUESTS = 20_000; // bounds the loops in count; `deadline` bounds them in time
    const deadline = Date.now() + 20_000;
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    let routable = true;
    let flippedAt = 0;
    let sent = 0;
    let ok = 0;
    const failures: string[] = [];
    const lb = (async () => {
      while (routable && Date.now() < deadline) {
        const r = await get(port, '/readyz', probeAgent).catch(() => ({ status: 0, body: '' }));
        if (r.status !== 200) {
          routable = false;
          flippedAt = Date.now();
        } else await new Promise((res) => setTimeout(res, 10));
      }
    })();
    let warm: () => void = () => {};
    const warmed = new Promise<void>((r) => {
      warm = r;
    });
    const loop = async () => {
      while (routable && sent < MAX_REQUESTS && Date.now() < deadline) {
        sent++;
        const sentAt = Date.now();
        const fail = (what: string) => failures.push(`${what} (sent at ${sentAt}, failed at ${Date.now()})`);
        try {
          const r = await get(port, '/work', agent);
          if (r.status === 200 && r.body === 'done') ok++;
          else fail(`status ${r.status} body ${JSON.stringify(r.body.slice(0, 80))}`);
        } catch (e) {
          fail((e as NodeJS.ErrnoException).code ?? String(e));
        }
        if (ok >= WARM) warm();
      }
    };
    const loops = Promise.all([lb, ...Array.from({ length: CONCURRENCY }, loop)]);
    await Promise.race([warmed, loops]);
    // two long requests are certainly in flight at the signal, and still running when the listener closes
    const slowAgent = new Agent({ keepAlive: true, maxSockets: 2 });
    const slow = [get(port, '/slow', slowAgent), get(port, '/slow', slowAgent)];
    await until(() => app.lines.filter((l) => l.type === 'slow').length === 2, {
      timeoutMs: 10_000,
      what: 'both slow requests to reach the app',
    });
    const lag = timerLag();
    const t0 = Date.now();
    const okAtSignal = ok;
    app.child.kill('SIGTERM');
    await loops;
    lag.stop();
    const slowReplies = await Promise.all(slow);
    agent.destroy();
    probeAgent.destroy();
    slowAgent.destroy();
    const exit = await app.exited;

    expect(exit, `the app did not exit cleanly; stderr: ${app.stderr()}`).toMatchObject({
      code: 0,
      signal: null,
    });
    const phases = app.lines.filter((l) => l.type === 'phase');
    const [draining, closing] = phases;
    expect(phases.map((l) => l.phase)).toEqual(['draining', 'closing', 'waiting', 'hooks']);
    // The load balancer's side of the contract: it stops routing within the drain delay. Only a stall of
    // this process can make it late here, and then the run proves nothing about the shutdown: say so.
    const reactionMs = flippedAt - draining!.at;
    expect(
      reactionMs,
      `the load balancer saw /readyz fail ${reactionMs} ms into a ${DRAIN_MS} ms drain (this process stalled ${Math.round(lag.total())} ms)`,
    ).toBeLessThan(DRAIN_MS);
    const timeline = `SIGTERM at ${t0}, /readyz seen failing at ${flippedAt}, phases ${JSON.stringify(phases)}`;
    expect(failures, `failed, reset or refused requests; ${timeline}`).toEqual([]);
    expect(okAtSignal).toBeGreaterThanOrEqual(WARM);
    expect(ok, `${ok} of ${sent} requests answered`).toBe(sent);
    // the long requests were running at the signal and when the listener closed, and still finished whole,
    // telling their keep-alive client to go away
    expect(slowReplies).toEqual([
      { status: 200, body: 'done', connection: 'close' },
      { status: 200, body: 'done', connection: 'close' },
    ]);
    expect(draining!.inFlight).toBeGreaterThanOrEqual(2);
    expect(closing!.inFlight).toBeGreaterThanOrEqual(2);
    expect(closing!.at - draining!.at).toBeGreaterThanOrEqual(DRAIN_MS - 5);
    expect(draining!.at).toBeGreaterThanOrEqual(t0 - 5);
    // every request the server received was answered before the first hook ran, and all were ours
    const all = sent + 2;
    const hooks = app.lines.filter((l) => l.type === 'hook');
    expect(hooks.map((h) => h.name)).toEqual(['outbox relay', 'closePool']);
    expect(hooks[0]).toMatchObject({ received: all, answered: all });
    expect(app.lines.find((l) => l.type === 'exit')).toMatchObject({ code: 0, received: all, answered: all });
    if (framework === 'fastify') {
      // drained through app.close(): Fastify's own onClose hooks ran, after the requests and before ours
      const onClose = app.lines.find((l) => l.type === 'fastify onClose');
      expect(onClose).toMatchObject({ received: all, answered: all });
      expect(onClose!.at).toBeLessThanOrEqual(hooks[0]!.at);
    }
  });
});
