import { Agent, createServer, type IncomingHttpHeaders, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fakeClock, until } from '@oms/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type GracefulShutdown,
  gracefulShutdown,
  healthRegistry,
  type ShutdownLogEntry,
} from '../src/index.js';

let server: Server;
let shutdown: GracefulShutdown | undefined;
afterEach(async () => {
  shutdown?.dispose();
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
});

const listen = async (handler: (done: () => void) => void) => {
  server = createServer((_req, res) => handler(() => res.end('ok')));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
};

describe('gracefulShutdown (in process, injected exit)', () => {
  it('runs the phases in order, each hook with its own timeout, and exits 1 when a hook fails', async () => {
    await listen((done) => done());
    const registry = healthRegistry({ service: 's', version: '1', processChecks: false });
    const order: string[] = [];
    const logs: ShutdownLogEntry[] = [];
    const codes: number[] = [];
    shutdown = gracefulShutdown({
      server,
      registry,
      drainDelayMs: 20,
      timeoutMs: 5_000,
      signals: [],
      log: (e) => logs.push(e),
      exit: (c) => codes.push(c),
      hooks: [
        { name: 'first', fn: () => void order.push('first') },
        {
          name: 'hangs',
          timeoutMs: 50,
          fn: (signal) =>
            new Promise((_, reject) => {
              order.push('hangs');
              signal.addEventListener('abort', () => reject(signal.reason));
            }),
        },
        { name: 'last', fn: async () => void order.push('last') },
      ],
    });
    shutdown.on('phase', (e) => order.push(`phase:${e.phase}`));
    expect(registry.shuttingDown).toBe(false);
    const code = shutdown.shutdown('test');
    expect(registry.shuttingDown).toBe(true); // readiness fails synchronously
    expect(await code).toBe(1);
    expect(codes).toEqual([1]);
    expect(order).toEqual([
      'phase:draining',
      'phase:closing',
      'phase:waiting',
      'phase:hooks',
      'first',
      'hangs',
      'last',
    ]);
    expect(logs.map((l) => l.msg)).toEqual(['shutdown hook hangs failed: hook hangs timed out after 50 ms']);
  });

  it('forces exit 1 when timeoutMs runs out, logging the requests still in flight', async () => {
    const port = await listen(() => {}); // never answers
    const registry = healthRegistry({ service: 's', version: '1', processChecks: false });
    const logs: ShutdownLogEntry[] = [];
    shutdown = gracefulShutdown({
      server,
      registry,
      drainDelayMs: 10,
      timeoutMs: 200,
      signals: [],
      log: (e) => logs.push(e),
      exit: () => {},
    });
    const req = fetch(`http://127.0.0.1:${port}/orders/42?token=x`).catch(() => 'reset');
    const running = shutdown;
    await until(() => running.inFlight().length > 0, {
      timeoutMs: 2_000,
      what: 'the request to be in flight',
    });
    expect(shutdown.inFlight().map((r) => r.path)).toEqual(['/orders/42']);
    const t0 = Date.now();
    expect(await shutdown.shutdown()).toBe(1);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect(logs[0]).toMatchObject({
      level: 'error',
      phase: 'waiting',
      inFlight: [{ method: 'GET', path: '/orders/42' }],
    });
    expect(logs[0]?.msg).toContain('timed out after 200 ms');
    server.closeAllConnections();
    await req;
  });

  it('exits 0 with every hook passing and keeps liveness passing', async () => {
    await listen((done) => setTimeout(done, 50));
    const registry = healthRegistry({ service: 's', version: '1', processChecks: false });
    registry.register({
      name: 'loop:x',
      check: () => ({}),
      kinds: ['liveness'],
      critical: true,
      timeoutMs: 100,
    });
    shutdown = gracefulShutdown({
      server,
      registry,
      drainDelayMs: 10,
      timeoutMs: 2_000,
      signals: [],
      exit: () => {},
      log: false,
    });
    const port = (server.address() as AddressInfo).port;
    const inflight = fetch(`http://127.0.0.1:${port}/`).then((r) => r.status);
    await new Promise((r) => setTimeout(r, 20));
    const live = registry.report('liveness');
    expect((await live).status).toBe('pass');
    expect(await shutdown.shutdown()).toBe(0);
    expect(await inflight).toBe(200);
  });

  it('a forced exit during the drain clears its timers', async () => {
    await listen((done) => done());
    const clock = fakeClock();
    const registry = healthRegistry({ service: 's', version: '1', processChecks: false });
    const codes: number[] = [];
    shutdown = gracefulShutdown({
      server,
      registry,
      drainDelayMs: 1000,
      timeoutMs: 5000,
      signals: [],
      exit: (c) => codes.push(c),
      log: false,
      clock,
    });
    const code = shutdown.shutdown();
    expect(clock.pending()).toBe(2); // the drain delay and the overall timeout
    void shutdown.shutdown(); // a second request forces the exit
    expect(await code).toBe(1);
    expect(codes).toEqual([1]);
    expect(clock.pending()).toBe(0);
    await clock.advanceAsync(10_000);
    expect(codes).toEqual([1]);
  });

  it('a forced exit during a hook that ignores its signal clears the hook timer too', async () => {
    await listen((done) => done());
    const clock = fakeClock();
    const registry = healthRegistry({ service: 's', version: '1', processChecks: false });
    let entered!: () => void;
    const inHook = new Promise<void>((r) => {
      entered = r;
    });
    shutdown = gracefulShutdown({
      server,
      registry,
      drainDelayMs: 0,
      timeoutMs: 5000,
      signals: [],
      exit: () => {},
      log: false,
      clock,
      hooks: [
        {
          name: 'stuck',
          timeoutMs: 3000,
          fn: () => {
            entered();
            return new Promise(() => {});
          },
        },
      ],
    });
    const code = shutdown.shutdown();
    await clock.advanceAsync(0);
    await inHook;
    expect(shutdown.phase).toBe('hooks');
    void shutdown.shutdown();
    expect(await code).toBe(1);
    expect(clock.pending()).toBe(0);
  });

  it('accepts bare async functions as hooks, named by the function or hook[i] in events and logs', async () => {
    await listen((done) => done());
    const registry = healthRegistry({ service: 's', version: '1', processChecks: false });
    const order: string[] = [];
    const logs: ShutdownLogEntry[] = [];
    const hooks: { name: string; ok: boolean }[] = [];
    shutdown = gracefulShutdown({
      server,
      registry,
      drainDelayMs: 0,
      timeoutMs: 5_000,
      signals: [],
      log: (e) => logs.push(e),
      exit: () => {},
      hooks: [
        async function closePool() {
          order.push('closePool');
        },
        async () => {
          order.push('anonymous');
          throw new Error('quit failed');
        },
        { name: 'relay', fn: () => void order.push('relay') },
      ],
    });
    shutdown.on('hook', (e) => hooks.push({ name: e.name, ok: e.ok }));
    expect(await shutdown.shutdown()).toBe(1);
    expect(order).toEqual(['closePool', 'anonymous', 'relay']);
    expect(hooks).toEqual([
      { name: 'closePool', ok: true },
      { name: 'hook[1]', ok: false },
      { name: 'relay', ok: true },
    ]);
    expect(logs).toEqual([
      { level: 'error', msg: 'shutdown hook hook[1] failed: quit failed', hook: 'hook[1]' },
    ]);
  });

  it('during the drain, a response from a synchronous handler carries Connection: close', async () => {
    // The README's own handler: `res.end('hello')` sends its headers before any listener added after it runs.
    server = createServer((_req, res) => res.end('hello'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const get = () =>
      new Promise<{ headers: IncomingHttpHeaders; body: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('end', () => resolve({ headers: res.headers, body }));
        });
        req.on('error', reject);
        req.end();
      });
    const registry = healthRegistry({ service: 's', version: '1', processChecks: false });
    shutdown = gracefulShutdown({
      server,
      registry,
      drainDelayMs: 2_000,
      timeoutMs: 10_000,
      signals: [],
      log: false,
      exit: () => {},
    });
    const before = await get();
    expect(before).toMatchObject({ body: 'hello', headers: { connection: 'keep-alive' } });
    const code = shutdown.shutdown();
    expect(shutdown.phase).toBe('draining');
    const during = await get();
    expect(during.body).toBe('hello');
    expect(
      during.headers.connection,
      'a keep-alive client would race its next request into a closing socket',
    ).toBe('close');
    agent.destroy();
    void shutdown.shutdown(); // no need to wait out the drain
    expect(await code).toBe(1);
  });

  it('validates its options', () => {
    server = createServer();
    const registry = healthRegistry({ service: 's', version: '1', processChecks: false });
    const base = { server, registry, drainDelayMs: 100, timeoutMs: 1000, signals: [] as NodeJS.Signals[] };
    expect(() => gracefulShutdown({ ...base, drainDelayMs: -1 })).toThrow(
      expect.objectContaining({ code: 'ERR_OMS_HEALTH_INVALID_OPTION' }),
    );
    expect(() => gracefulShutdown({ ...base, timeoutMs: 100 })).toThrow(/greater than drainDelayMs/);
    expect(() => gracefulShutdown({ ...base, hooks: [{ name: 'x' } as never] })).toThrow(/hooks\[0\]/);
    expect(() => gracefulShutdown({ ...base, hooks: [42 as never] })).toThrow(
      /hooks\[0\] must be a function or/,
    );
    server.listen(0);
  });
});
