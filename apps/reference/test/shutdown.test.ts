import { existsSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { timerLag, until } from '@oms/testkit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APP_MAIN, type AppInstance, killAll, startApp } from '../src/demo/processes.js';
import { mintDevToken } from '../src/dev-keys.js';
import { type PaymentsServer, startPaymentsServer } from '../src/payments/server.js';
import { freshDataDir } from './helpers.js';

// SIGTERM under load on the real process (`node dist/main.js`, embedded): this test plays the load balancer
// (it polls /readyz and stops routing once it is not 200) and its keep-alive clients, which send about
// 500 requests/s (reads, plus one write in ten) until the balancer stops routing. Every request sent must be
// answered completely, and the process must exit 0.

const DRAIN_MS = 2_000;
const RATE_PER_SEC = 500;
const CONCURRENCY = 16;
// answered before the signal: about half a second at the offered rate (a loaded machine answers fewer per second)
const WARM = 250;

let dataDir: string;
let payments: PaymentsServer;
let app: AppInstance;

beforeAll(async () => {
  if (!existsSync(APP_MAIN)) throw new Error(`${APP_MAIN} is missing: build the app before testing`);
  // a migrated copy, not an empty directory: an initdb starved by a loaded machine once took past the start limit
  dataDir = await freshDataDir('oms-ref-shutdown-');
  payments = await startPaymentsServer();
  const env: Record<string, string> = {
    DATA_DIR: dataDir,
    PAYMENTS_URL: payments.url,
    LOG_LEVEL: 'info',
    RATE_GLOBAL_PER_MIN: '10000000',
    RATE_IP_PER_MIN: '10000000',
    RATE_PRINCIPAL_PER_MIN: '10000000',
    RATE_ROUTE_PER_MIN: '10000000',
    SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
    SHUTDOWN_TIMEOUT_MS: '20000',
  };
  // embedded, whatever the caller's environment says
  const saved = { DATABASE_URL: process.env.DATABASE_URL, REDIS_URL: process.env.REDIS_URL };
  delete process.env.DATABASE_URL;
  delete process.env.REDIS_URL;
  try {
    app = await startApp('app', env);
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  }
});

afterAll(async () => {
  killAll();
  await payments?.close();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  body: string;
}
function send(
  port: number,
  method: string,
  path: string,
  agent: Agent,
  headers: Record<string, string> = {},
  body?: string,
) {
  return new Promise<Reply>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('SIGTERM under load', () => {
  it('answers every request it was sent, stops being ready, and exits 0', { timeout: 240_000 }, async () => {
    const port = app.port;
    const token = await mintDevToken({ dataDir, role: 'customer', subject: 'load-1' });
    const auth = { authorization: `Bearer ${token}` };
    const create = (agent: Agent, key: string) =>
      send(
        port,
        'POST',
        '/v1/orders',
        agent,
        { ...auth, 'content-type': 'application/json', 'idempotency-key': key },
        JSON.stringify({ items: [{ sku: 'sku-1', quantity: 1, unitPriceCents: 500 }], currency: 'EUR' }),
      );
    const setup = new Agent({ keepAlive: true, maxSockets: 1 });
    const first = await create(setup, 'shutdown-setup');
    expect(first.status, first.body).toBe(201);
    const orderId = (JSON.parse(first.body) as { order: { id: string } }).order.id;
    setup.destroy();

    const probeAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
    const deadline = Date.now() + 180_000;
    let routable = true;
    let flippedAt = 0;
    let sent = 0;
    let ok = 0;
    let writes = 0;
    const failures: string[] = [];
    const t0 = Date.now();
    // the load balancer: routes while /readyz is 200
    const lb = (async () => {
      while (routable && Date.now() < deadline) {
        const r = await send(port, 'GET', '/readyz', probeAgent).catch(() => ({ status: 0, body: '' }));
        if (r.status !== 200) {
          routable = false;
          flippedAt = Date.now();
        } else await new Promise((res) => setTimeout(res, 10));
      }
    })();
    // clients at about RATE_PER_SEC: request i leaves no earlier than t0 + i / rate
    const loop = async () => {
      while (routable && Date.now() < deadline) {
        const i = sent++;
        const due = t0 + (i * 1000) / RATE_PER_SEC;
        const wait = due - Date.now();
        if (wait > 0) await new Promise((res) => setTimeout(res, wait));
        if (!routable) {
          sent--;
          return;
        }
        const sentAt = Date.now();
        const isWrite = i % 10 === 9;
        const fail = (what: string) =>
          failures.push(
            `${isWrite ? 'POST /v1/orders' : 'GET /v1/orders/:id'}: ${what} (sent ${sentAt - t0} ms in, failed ${Date.now() - t0} ms in)`,
          );
        try {
          const r = isWrite
            ? await create(agent, `shutdown-${i}`)
            : await send(port, 'GET', `/v1/orders/${orderId}`, agent, auth);
          if (r.status === (isWrite ? 201 : 200)) {
            ok++;
            if (isWrite) writes++;
          } else fail(`status ${r.status} ${r.body.slice(0, 120)}`);
        } catch (e) {
          fail((e as NodeJS.ErrnoException).code ?? String(e));
        }
      }
    };
    const loops = Promise.all([lb, ...Array.from({ length: CONCURRENCY }, loop)]);
    // about a second of load before the signal
    await until(() => ok >= WARM || failures.length > 0, {
      timeoutMs: 120_000,
      what: `${WARM} answered requests`,
    });
    expect(failures, 'failures before the signal').toEqual([]);
    const lag = timerLag();
    const signalAt = Date.now();
    const okAtSignal = ok;
    app.proc.child.kill('SIGTERM');
    await loops;
    lag.stop();
    agent.destroy();
    probeAgent.destroy();
    const exit = await app.proc.exited;
    const seconds = (signalAt - t0) / 1000;
    const timeline = `load ran ${seconds.toFixed(1)} s before SIGTERM (${Math.round(okAtSignal / seconds)} req/s), SIGTERM ${signalAt - t0} ms in, /readyz failed ${flippedAt - signalAt} ms after it; ${sent} sent, ${ok} ok (${writes} writes)`;

    expect(exit, `exit; ${timeline}; last output:\n${app.proc.tail(20)}`).toMatchObject({
      code: 0,
      signal: null,
    });
    expect(failures, `failed requests; ${timeline}`).toEqual([]);
    expect(ok, timeline).toBe(sent);
    expect(okAtSignal).toBeGreaterThanOrEqual(WARM);
    // the balancer's side of the contract: it saw the app go unready within the drain delay, once this process's
    // own stalls (it is the balancer) are taken out: those delay its probe, not the app's readiness.
    expect(
      flippedAt - signalAt - lag.total(),
      `the balancer saw /readyz fail ${flippedAt - signalAt} ms into a ${DRAIN_MS} ms drain (this process stalled ${Math.round(lag.total())} ms)`,
    ).toBeLessThan(DRAIN_MS);
  });
});
