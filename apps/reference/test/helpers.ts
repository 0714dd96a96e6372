import { cp, mkdir, mkdtemp, open, rename, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from '@oms/testkit';
import { buildApp, type ReferenceApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { mintDevToken, type Role } from '../src/dev-keys.js';

export interface Harness {
  app: ReferenceApp;
  url: string;
  dataDir: string;
  token(role: Role, subject?: string): Promise<string>;
  call(method: string, path: string, o?: CallOptions): Promise<Reply>;
  close(): Promise<void>;
}

export interface CallOptions {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Reply {
  status: number;
  headers: Headers;
  // biome-ignore lint/suspicious/noExplicitAny: test bodies are read field by field
  body: any;
  text: string;
}

/** Quiet, generous limits; a test that wants a limit sets it. */
const BASE_ENV = {
  PORT: '0',
  LOG_LEVEL: 'silent',
  RATE_GLOBAL_PER_MIN: '1000000',
  RATE_PRINCIPAL_PER_MIN: '1000000',
  RATE_IP_PER_MIN: '1000000',
  RATE_ROUTE_PER_MIN: '1000000',
  PAYMENTS_URL: 'http://127.0.0.1:9', // nothing listens: pay fails fast unless a test starts payments
  SHUTDOWN_DRAIN_MS: '0',
};

// A fresh PGlite data directory costs an initdb (tens of seconds on a loaded machine); a migrated one is
// copied instead. The first test file to need it builds it under a lock file; the others wait for it.
const TEMPLATE = join(tmpdir(), 'oms-reference-template-v1');

async function exists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}

async function template(): Promise<string> {
  if (await exists(join(TEMPLATE, 'ready'))) return TEMPLATE;
  await mkdir(tmpdir(), { recursive: true });
  const lock = `${TEMPLATE}.lock`;
  let mine = false;
  try {
    await (await open(lock, 'wx')).close();
    mine = true;
  } catch {}
  if (!mine) {
    await until(() => exists(join(TEMPLATE, 'ready')), { timeoutMs: 240_000, what: 'the PGlite template' });
    return TEMPLATE;
  }
  try {
    const building = await mkdtemp(join(tmpdir(), 'oms-reference-template-build-'));
    const app = await buildApp(loadConfig({ ...BASE_ENV, DATA_DIR: building }));
    await app.close();
    await (await open(join(building, 'ready'), 'w')).close();
    await rename(building, TEMPLATE);
  } finally {
    await rm(lock, { force: true });
  }
  return TEMPLATE;
}

/** A new DATA_DIR holding a copy of the migrated template: no initdb, so a start is seconds even under load. */
export async function freshDataDir(prefix = 'oms-reference-test-'): Promise<string> {
  const dataDir = await mkdtemp(join(tmpdir(), prefix));
  await cp(await template(), dataDir, { recursive: true });
  return dataDir;
}

/** Starts the app embedded (PGlite, memory stores) on a fresh copy of the template, listening on loopback. */
export async function startEmbedded(env: Record<string, string> = {}, logs?: string[]): Promise<Harness> {
  const dataDir = await freshDataDir();
  return start({ ...BASE_ENV, DATA_DIR: dataDir, ...env }, dataDir, logs);
}

/** Starts the app with the given environment (DATABASE_URL, REDIS_URL, ...). */
export async function start(env: Record<string, string>, dataDir: string, logs?: string[]): Promise<Harness> {
  const app = await buildApp(
    loadConfig(env),
    logs ? { logDestination: { write: (line: string) => void logs.push(line) } } : {},
  );
  const url = await app.listen();
  return {
    app,
    url,
    dataDir,
    token: (role, subject) => mintDevToken({ dataDir, role, ...(subject ? { subject } : {}) }),
    async call(method, path, o = {}) {
      const headers: Record<string, string> = { ...o.headers };
      if (o.token) headers.authorization = `Bearer ${o.token}`;
      if (o.body !== undefined) headers['content-type'] = 'application/json';
      const res = await fetch(`${url}${path}`, {
        method,
        headers,
        ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
      });
      const text = await res.text();
      let body: unknown = text;
      try {
        body = JSON.parse(text);
      } catch {}
      return { status: res.status, headers: res.headers, body, text };
    },
    async close() {
      await app.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}

export const ORDER = { items: [{ sku: 'sku-1', quantity: 2, unitPriceCents: 1250 }], currency: 'EUR' };

/** Creates an order as `token`'s subject and returns it. */
export async function createOrder(h: Harness, token: string, key = crypto.randomUUID()) {
  const r = await h.call('POST', '/v1/orders', { token, body: ORDER, headers: { 'idempotency-key': key } });
  if (r.status !== 201) throw new Error(`create order: ${r.status} ${r.text}`);
  return r.body.order as { id: string; customerId: string; status: string };
}
