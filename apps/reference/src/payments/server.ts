import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';

/** The fault switches of the fake payments service. */
export interface Faults {
  /** Delay added before every /charges answer, in ms. */
  latencyMs: number;
  /** Fraction (0..1) of /charges requests answered 500. 1 fails every one. */
  errorRate: number;
  /** When true, /charges answers 503 at once (the service is "down"). */
  down: boolean;
}

/** One charge the service accepted. */
export interface Charge {
  chargeId: string;
  orderId: string;
  amountCents: number;
  currency: string;
  idempotencyKey: string;
  createdAt: string;
}

/** Counters of what the service saw, for the demo and tests. */
export interface PaymentsStats {
  /** Every POST /charges request, answered or not. */
  requests: number;
  /** Charges created (a replay of an Idempotency-Key does not count). */
  charges: number;
  /** Answers that were a replay of an earlier Idempotency-Key. */
  replays: number;
  /** /charges answered 500 or 503 because of a fault switch. */
  faulted: number;
}

/** A running payments service. */
export interface PaymentsServer {
  /** `http://host:port` */
  readonly url: string;
  /** The current fault switches (a copy). */
  faults(): Faults;
  /** Changes some switches; returns the new ones. Throws on an invalid value. */
  setFaults(f: Partial<Faults>): Faults;
  /** Counters since start. */
  stats(): PaymentsStats;
  /** The charges, oldest first. */
  charges(): Charge[];
  /** Stops listening and closes every connection. */
  close(): Promise<void>;
}

export interface PaymentsServerOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** Default 0 (a free port). */
  port?: number;
  /** Initial fault switches. */
  faults?: Partial<Faults>;
  /** Random source for errorRate, default Math.random (tests pass a fixed one). */
  random?: () => number;
}

const MAX_BODY = 64 * 1024;
const MAX_LATENCY_MS = 120_000;

/** Thrown for an invalid fault switch value; the HTTP side turns it into a 400. */
export class PaymentsFaultError extends Error {
  readonly code = 'ERR_OMS_REFERENCE_PAYMENTS_FAULT';
  constructor(message: string) {
    super(message);
    this.name = 'PaymentsFaultError';
  }
}

function validFaults(current: Faults, f: Partial<Faults>): Faults {
  if (typeof f !== 'object' || f === null || Array.isArray(f))
    throw new PaymentsFaultError('faults must be an object { latencyMs?, errorRate?, down? }');
  for (const k of Object.keys(f))
    if (k !== 'latencyMs' && k !== 'errorRate' && k !== 'down')
      throw new PaymentsFaultError(`unknown fault switch '${k}' (have latencyMs, errorRate, down)`);
  const next = { ...current };
  if (f.latencyMs !== undefined) {
    if (!Number.isFinite(f.latencyMs) || f.latencyMs < 0 || f.latencyMs > MAX_LATENCY_MS)
      throw new PaymentsFaultError(`latencyMs must be a number in 0..${MAX_LATENCY_MS} (got ${f.latencyMs})`);
    next.latencyMs = f.latencyMs;
  }
  if (f.errorRate !== undefined) {
    if (!Number.isFinite(f.errorRate) || f.errorRate < 0 || f.errorRate > 1)
      throw new PaymentsFaultError(`errorRate must be a number in 0..1 (got ${f.errorRate})`);
    next.errorRate = f.errorRate;
  }
  if (f.down !== undefined) {
    if (typeof f.down !== 'boolean') throw new PaymentsFaultError(`down must be a boolean (got ${f.down})`);
    next.down = f.down;
  }
  return next;
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  if (res.destroyed || res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new PaymentsFaultError(`body larger than ${MAX_BODY} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      if (raw.trim() === '') return resolve({});
      try {
        resolve(JSON.parse(raw));
      } catch {
        reject(new PaymentsFaultError('body is not valid JSON'));
      }
    });
    req.on('error', reject);
  });
}

/**
 * Starts the fake payments service the reference app calls on `POST /v1/orders/:id/pay`: in memory,
 * idempotent by `Idempotency-Key`, with fault switches (latency, error rate, down) to trip the app's breaker.
 *
 * @example
 * const payments = await startPaymentsServer({ port: 0 });
 * payments.setFaults({ down: true }); // /charges now answers 503
 * payments.setFaults({ down: false });
 * await payments.close();
 */
export async function startPaymentsServer(opts: PaymentsServerOptions = {}): Promise<PaymentsServer> {
  const host = opts.host ?? '127.0.0.1';
  const port = opts.port ?? 0;
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new PaymentsFaultError(`port must be an integer in 0..65535 (got ${port})`);
  const random = opts.random ?? Math.random;
  let faults = validFaults({ latencyMs: 0, errorRate: 0, down: false }, opts.faults ?? {});
  const byKey = new Map<string, Charge>();
  const all: Charge[] = [];
  const stats: PaymentsStats = { requests: 0, charges: 0, replays: 0, faulted: 0 };
  const pending = new Set<NodeJS.Timeout>();

  const delay = (ms: number, res: ServerResponse) =>
    new Promise<boolean>((resolve) => {
      if (ms <= 0) return resolve(true);
      const t = setTimeout(() => {
        pending.delete(t);
        resolve(!res.destroyed);
      }, ms);
      pending.add(t);
      res.on('close', () => {
        if (pending.delete(t)) {
          clearTimeout(t);
          resolve(false);
        }
      });
    });

  async function charge(req: IncomingMessage, res: ServerResponse) {
    stats.requests++;
    const f = faults;
    let body: unknown;
    try {
      body = await readJson(req);
    } catch (e) {
      return send(res, 400, { error: 'bad_request', detail: (e as Error).message });
    }
    if (!(await delay(f.latencyMs, res))) return;
    if (f.down) {
      stats.faulted++;
      return send(
        res,
        503,
        { error: 'down', detail: 'payments is down (fault switch)' },
        { 'retry-after': '1' },
      );
    }
    if (f.errorRate > 0 && random() < f.errorRate) {
      stats.faulted++;
      return send(res, 500, { error: 'injected', detail: 'injected failure (errorRate)' });
    }
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || key.length === 0 || key.length > 200)
      return send(res, 400, {
        error: 'bad_request',
        detail: 'Idempotency-Key header (1-200 chars) is required',
      });
    const b = body as { orderId?: unknown; amountCents?: unknown; currency?: unknown };
    if (
      typeof b.orderId !== 'string' ||
      b.orderId === '' ||
      !Number.isInteger(b.amountCents) ||
      (b.amountCents as number) < 0 ||
      typeof b.currency !== 'string' ||
      !/^[A-Z]{3}$/.test(b.currency)
    )
      return send(res, 400, {
        error: 'bad_request',
        detail: 'body must be { orderId: string, amountCents: integer >= 0, currency: "XXX" }',
      });
    const seen = byKey.get(key);
    if (seen) {
      if (seen.orderId !== b.orderId || seen.amountCents !== b.amountCents || seen.currency !== b.currency)
        return send(res, 422, {
          error: 'idempotency_key_reused',
          detail: 'this Idempotency-Key was used for a different charge',
        });
      stats.replays++;
      return send(
        res,
        200,
        { chargeId: seen.chargeId, orderId: seen.orderId },
        { 'idempotent-replayed': 'true' },
      );
    }
    const c: Charge = {
      chargeId: `ch_${randomUUID()}`,
      orderId: b.orderId,
      amountCents: b.amountCents as number,
      currency: b.currency,
      idempotencyKey: key,
      createdAt: new Date().toISOString(),
    };
    byKey.set(key, c);
    all.push(c);
    stats.charges++;
    return send(res, 200, { chargeId: c.chargeId, orderId: c.orderId });
  }

  async function handle(req: IncomingMessage, res: ServerResponse) {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/charges' && req.method === 'POST') return charge(req, res);
    if (path === '/charges' && req.method === 'GET') return send(res, 200, { charges: all, stats });
    if (path === '/faults' && req.method === 'GET') return send(res, 200, faults);
    if (path === '/faults' && req.method === 'PUT') {
      try {
        const body = await readJson(req);
        faults = validFaults(faults, body as Partial<Faults>);
        return send(res, 200, faults);
      } catch (e) {
        return send(res, 400, { error: 'bad_request', detail: (e as Error).message });
      }
    }
    if (path === '/healthz' && req.method === 'GET') return send(res, 200, { status: 'pass' });
    return send(res, 404, { error: 'not_found', detail: `${req.method} ${path}` });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e) => send(res, 500, { error: 'internal', detail: (e as Error).message }));
  });
  server.keepAliveTimeout = 5_000;
  server.listen(port, host);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([e]) => {
      throw e;
    }),
  ]);
  const addr = server.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${actualPort}`;

  return {
    url,
    faults: () => ({ ...faults }),
    setFaults(f) {
      faults = validFaults(faults, f);
      return { ...faults };
    },
    stats: () => ({ ...stats }),
    charges: () => all.map((c) => ({ ...c })),
    close: () =>
      new Promise<void>((resolve) => {
        for (const t of pending) clearTimeout(t);
        pending.clear();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
