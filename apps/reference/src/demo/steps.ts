import { randomBytes } from 'node:crypto';
import { call, type Json, type Reply, retryAfterMs, sleep } from './http.js';
import type { AppInstance, Payments } from './processes.js';
import { expectThat, StepFailed, type StepOutcome } from './table.js';

// The bodies of the tour's steps. Each returns the row's one-line result (and detail lines) or throws StepFailed
// naming what it saw instead. They only use the public HTTP API of the app and of the payments service.

export type Role = 'customer' | 'support' | 'admin';
export type Mint = (role: Role, subject: string) => Promise<string>;

export interface TourContext {
  /** Unique per run, appended to subjects so runs on a shared Redis/PostgreSQL never share quotas. */
  run: string;
  mint: Mint;
  payments: Payments;
}

export const ITEMS = [
  { sku: 'book-ddia', quantity: 2, unitPriceCents: 1250 },
  { sku: 'pen-blue', quantity: 1, unitPriceCents: 300 },
];
const TOTAL = 2 * 1250 + 300;

export interface Order {
  id: string;
  customerId: string;
  status: string;
  totalCents: number;
  currency: string;
  version: number;
}

const code = (r: Reply<Json>) => (typeof r.body?.code === 'string' ? r.body.code : '-');
const brief = (r: Reply<Json>) =>
  `${r.status}${r.body?.code ? ` ${r.body.code}` : ''}${r.body?.detail ? ` (${String(r.body.detail).slice(0, 80)})` : ''}`;

export function idempotencyKey(label: string): string {
  return `tour-${label}-${randomBytes(6).toString('hex')}`;
}

export async function createOrder(app: AppInstance, token: string, key = idempotencyKey('order')) {
  return call('POST', `${app.url}/v1/orders`, {
    token,
    headers: { 'idempotency-key': key },
    body: { items: ITEMS, currency: 'EUR' },
  });
}

export async function mustCreate(app: AppInstance, token: string): Promise<Order> {
  const r = await createOrder(app, token);
  expectThat(r.status === 201 && r.body?.order?.id, `create order: expected 201 { order }, got ${brief(r)}`);
  return r.body.order as Order;
}

export const pay = (app: AppInstance, token: string, id: string) =>
  call('POST', `${app.url}/v1/orders/${id}/pay`, { token });

export async function getOrder(app: AppInstance, token: string, id: string): Promise<Order> {
  const r = await call('GET', `${app.url}/v1/orders/${id}`, { token });
  expectThat(r.status === 200 && r.body?.order, `GET /v1/orders/${id}: expected 200, got ${brief(r)}`);
  return r.body.order as Order;
}

export async function setFaults(p: Payments, faults: Record<string, unknown>): Promise<void> {
  const r = await call('PUT', `${p.url}/faults`, { body: faults });
  expectThat(r.status === 200, `PUT /faults on payments: ${r.status} ${r.text}`);
}

export async function paymentsStats(p: Payments): Promise<{ requests: number; charges: number }> {
  const r = await call('GET', `${p.url}/charges`);
  return r.body.stats;
}

export async function chargesFor(p: Payments, orderId: string): Promise<number> {
  const r = await call('GET', `${p.url}/charges`);
  return (r.body.charges as { orderId: string }[]).filter((c) => c.orderId === orderId).length;
}

export async function breakerState(
  app: AppInstance,
  token: string,
): Promise<{ name: string; state: string }> {
  const r = await call('GET', `${app.url}/admin/breakers`, { token });
  expectThat(r.status === 200 && Array.isArray(r.body?.breakers), `GET /admin/breakers: ${brief(r)}`);
  const list = r.body.breakers as { name: string; state: string }[];
  const b = list.find((x) => /pay/i.test(x.name)) ?? list[0];
  expectThat(b, 'GET /admin/breakers lists no breaker');
  return b;
}

/** Polls `fn` every `everyMs` until it returns a value, for at most `timeoutMs`. */
export async function waitFor<T>(
  fn: () => Promise<T | undefined | false>,
  what: string,
  { timeoutMs = 15_000, everyMs = 100 }: { timeoutMs?: number; everyMs?: number } = {},
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (performance.now() > deadline)
      throw new StepFailed(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * Rate-limit store failures and timeouts an instance counted (oms_ratelimit_store_errors_total). Each one was
 * decided by the limiter's onStoreError policy: the global limit denies ('closed'), so it is never exceeded; the
 * narrower scopes fall back to a local tenth of their limit ('insurance').
 */
export async function rateLimitStoreErrors(app: AppInstance): Promise<number> {
  const r = await call('GET', `${app.url}/metrics`);
  return r.text
    .split('\n')
    .filter((l) => l.startsWith('oms_ratelimit_store_errors_total'))
    .reduce((sum, l) => sum + (Number(l.slice(l.lastIndexOf(' ') + 1)) || 0), 0);
}

// ---- steps ----------------------------------------------------------------------------------------------

/** The first order of the tour, its owner's token and the Idempotency-Key it was created with. */
export interface First {
  order: Order;
  token: string;
  key: string;
}

export async function stepCreate(ctx: TourContext, app: AppInstance): Promise<StepOutcome<First>> {
  const token = await ctx.mint('customer', `alice-${ctx.run}`);
  const key = idempotencyKey('create');
  const r = await createOrder(app, token, key);
  expectThat(r.status === 201, `expected 201, got ${brief(r)}`);
  const order = r.body.order as Order;
  expectThat(order?.status === 'created', `expected status created, got ${order?.status}`);
  expectThat(order.totalCents === TOTAL, `expected totalCents ${TOTAL}, got ${order.totalCents}`);
  expectThat(
    order.customerId === `alice-${ctx.run}`,
    `customerId ${order.customerId} is not the token subject`,
  );
  return {
    result: `201 order ${order.id} status=${order.status} total=${order.totalCents} ${order.currency}`,
    details: [`Idempotency-Key: ${key}`],
    value: { order, token, key },
  };
}

export async function stepReplay(app: AppInstance, first: First | undefined): Promise<StepOutcome<void>> {
  expectThat(first, 'needs the order of the previous step');
  const b = await createOrder(app, first.token, first.key);
  expectThat(b.status === 200, `replay: expected 200, got ${brief(b)}`);
  expectThat(
    b.headers.get('idempotent-replayed') === 'true',
    `replay: expected Idempotent-Replayed: true, got ${b.headers.get('idempotent-replayed')}`,
  );
  expectThat(
    b.body?.order?.id === first.order.id,
    `replay returned order ${b.body?.order?.id}, not ${first.order.id}`,
  );
  const c = await call('POST', `${app.url}/v1/orders`, {
    token: first.token,
    headers: { 'idempotency-key': first.key },
    body: { items: [{ sku: 'other', quantity: 1, unitPriceCents: 1 }], currency: 'EUR' },
  });
  expectThat(
    c.status === 422 && code(c) === 'IDEMPOTENCY_KEY_REUSED',
    `same key, other body: expected 422 IDEMPOTENCY_KEY_REUSED, got ${brief(c)}`,
  );
  return {
    result: `same key -> 200 Idempotent-Replayed: true, same order; same key + other body -> 422 IDEMPOTENCY_KEY_REUSED`,
  };
}

export async function stepPay(
  ctx: TourContext,
  app: AppInstance,
  first: First | undefined,
): Promise<StepOutcome<void>> {
  expectThat(first, 'needs the order of the create step');
  const r = await pay(app, first.token, first.order.id);
  expectThat(r.status === 200 && r.body?.order?.status === 'paid', `expected 200 paid, got ${brief(r)}`);
  const charges = await chargesFor(ctx.payments, first.order.id);
  expectThat(charges === 1, `payments holds ${charges} charges for the order, expected 1`);
  return { result: `200 status=paid; payments holds exactly 1 charge for it (${Math.round(r.ms)} ms)` };
}

export async function stepRbac(
  ctx: TourContext,
  app: AppInstance,
  first: First | undefined,
): Promise<StepOutcome<void>> {
  expectThat(first, 'needs the order of the create step');
  const path = `${app.url}/v1/orders/${first.order.id}`;
  const none = await call('GET', path);
  const mallory = await call('GET', path, { token: await ctx.mint('customer', `mallory-${ctx.run}`) });
  const support = await call('GET', path, { token: await ctx.mint('support', `sam-${ctx.run}`) });
  const supportPay = await call('POST', `${path}/pay`, {
    token: await ctx.mint('support', `sam-${ctx.run}`),
  });
  const custBackup = await call('POST', `${app.url}/admin/backups`, { token: first.token });
  expectThat(none.status === 401, `no token: expected 401, got ${brief(none)}`);
  expectThat(mallory.status === 403, `another customer: expected 403, got ${brief(mallory)}`);
  expectThat(support.status === 200, `support reads all: expected 200, got ${brief(support)}`);
  expectThat(supportPay.status === 403, `support pays: expected 403, got ${brief(supportPay)}`);
  expectThat(custBackup.status === 403, `customer backs up: expected 403, got ${brief(custBackup)}`);
  return {
    result: `no token ${none.status}; other customer ${mallory.status}; support read ${support.status}, pay ${supportPay.status}; customer POST /admin/backups ${custBackup.status}`,
    details: [
      `401 WWW-Authenticate: ${none.headers.get('www-authenticate') ?? '-'}`,
      `403 problem: ${mallory.body?.type ?? '-'} ${code(mallory)}`,
    ],
  };
}

export async function stepTracing(app: AppInstance, first: First | undefined): Promise<StepOutcome<void>> {
  expectThat(first, 'needs the order of the create step');
  const traceId = randomBytes(16).toString('hex');
  const requestId = `tour-${randomBytes(4).toString('hex')}`;
  const r = await call('GET', `${app.url}/v1/orders/${first.order.id}`, {
    token: first.token,
    headers: { 'x-request-id': requestId, traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` },
  });
  expectThat(r.status === 200, `expected 200, got ${brief(r)}`);
  const echoedId = r.headers.get('x-request-id');
  const tp = r.headers.get('traceparent');
  expectThat(echoedId === requestId, `X-Request-Id: sent ${requestId}, got back ${echoedId}`);
  expectThat(tp?.split('-')[1] === traceId, `traceparent: sent trace ${traceId}, got back ${tp}`);
  return { result: `X-Request-Id echoed; traceparent continues trace ${traceId.slice(0, 12)}...` };
}

export interface Tripped {
  token: string;
  adminToken: string;
  order: Order;
  lastRetryAfterMs: number;
}

/** Payments down: pay -> 503 + Retry-After, order payment_pending, breaker opens, calls stop reaching payments. */
export async function stepTrip(
  ctx: TourContext,
  apps: AppInstance[],
  label: string,
): Promise<StepOutcome<Tripped>> {
  const [app, ...others] = apps as [AppInstance, ...AppInstance[]];
  const token = await ctx.mint('customer', `bob-${label}-${ctx.run}`);
  const adminToken = await ctx.mint('admin', `ops-${label}-${ctx.run}`);
  const order = await mustCreate(app, token);
  await setFaults(ctx.payments, { down: true });
  const r = await pay(app, token, order.id);
  expectThat(r.status === 503, `pay with payments down: expected 503, got ${brief(r)}`);
  expectThat(code(r) === 'PAYMENTS_UNAVAILABLE', `expected code PAYMENTS_UNAVAILABLE, got ${code(r)}`);
  const ra = r.headers.get('retry-after');
  expectThat(ra !== null, '503 without Retry-After');
  const pending = await getOrder(app, token, order.id);
  expectThat(pending.status === 'payment_pending', `order is ${pending.status}, expected payment_pending`);
  let calls = 1;
  let last = r;
  let state = (await breakerState(app, adminToken)).state;
  while (state !== 'open' && calls < 12) {
    last = await pay(app, token, order.id);
    calls++;
    expectThat(last.status === 503, `pay #${calls}: expected 503, got ${brief(last)}`);
    state = (await breakerState(app, adminToken)).state;
  }
  expectThat(state === 'open', `breaker still ${state} after ${calls} failed pays`);
  const details = [
    `503 ${code(r)} Retry-After: ${ra}; order ${order.id} stays payment_pending`,
    `breaker open after ${calls} failed pay call(s) on ${app.name}`,
  ];
  // the other instances see the same state (one Redis store); in embedded mode there are none
  for (const o of others) {
    const seen = await waitFor(
      async () => ((await breakerState(o, adminToken)).state === 'open' ? true : undefined),
      `${o.name} to see the breaker open`,
      { timeoutMs: 10_000, everyMs: 100 },
    );
    if (seen) details.push(`${o.name} sees it open too (shared breaker store)`);
  }
  // while open, a pay is refused without calling payments
  const target = others.at(-1) ?? app;
  const before = (await paymentsStats(ctx.payments)).requests;
  const refused = await pay(target, token, order.id);
  const after = (await paymentsStats(ctx.payments)).requests;
  expectThat(refused.status === 503, `pay while open: expected 503, got ${brief(refused)}`);
  expectThat(
    after === before,
    `pay while open reached payments (${after - before} requests): the breaker did not short-circuit`,
  );
  details.push(
    `pay on ${target.name} while open: 503 in ${Math.round(refused.ms)} ms, payments saw 0 requests (Retry-After: ${refused.headers.get('retry-after')})`,
  );
  return {
    result: `payments down -> 503 PAYMENTS_UNAVAILABLE + Retry-After, order payment_pending; breaker open after ${calls} pay call(s)`,
    details,
    value: { token, adminToken, order, lastRetryAfterMs: retryAfterMs(refused.headers) ?? 1000 },
  };
}

/** Payments back: after Retry-After the pay goes through, the order is paid once, the breaker closes. */
export async function stepRecover(
  ctx: TourContext,
  apps: AppInstance[],
  tripped: Tripped | undefined,
): Promise<StepOutcome<void>> {
  expectThat(tripped, 'needs the tripped breaker of the previous step');
  await setFaults(ctx.payments, { down: false });
  const app = apps[1] ?? apps[0]!;
  const t0 = performance.now();
  let wait = Math.max(250, tripped.lastRetryAfterMs);
  let attempts = 0;
  let r: Reply<Json> | undefined;
  while (performance.now() - t0 < 45_000) {
    await sleep(wait);
    r = await pay(app, tripped.token, tripped.order.id);
    attempts++;
    if (r.status === 200) break;
    expectThat(r.status === 503, `pay after recovery: expected 200 or 503, got ${brief(r)}`);
    wait = Math.max(250, retryAfterMs(r.headers) ?? 1000);
  }
  expectThat(
    r?.status === 200,
    `pay never succeeded within 45 s after payments came back (last: ${r && brief(r)})`,
  );
  expectThat(r.body?.order?.status === 'paid', `expected status paid, got ${r.body?.order?.status}`);
  const charges = await chargesFor(ctx.payments, tripped.order.id);
  expectThat(charges === 1, `payments holds ${charges} charges for the order, expected exactly 1`);
  const states: string[] = [];
  for (const a of apps) {
    const s = await waitFor(
      async () => {
        const b = await breakerState(a, tripped.adminToken);
        return b.state === 'closed' ? b.state : undefined;
      },
      `${a.name}'s breaker to close`,
      { timeoutMs: 10_000, everyMs: 100 },
    );
    states.push(`${a.name}: ${s}`);
  }
  return {
    result: `payments up; pay on ${app.name} -> 200 paid after ${((performance.now() - t0) / 1000).toFixed(1)} s (${attempts} attempt(s)); exactly 1 charge; breaker closed`,
    details: apps.length > 1 ? [`breaker state: ${states.join(', ')}`] : [],
  };
}

export async function stepRateLimit(ctx: TourContext, app: AppInstance): Promise<StepOutcome<void>> {
  const token = await ctx.mint('customer', `carol-${ctx.run}`);
  let firstOk: Reply<Json> | undefined;
  let denied: Reply<Json> | undefined;
  let n = 0;
  while (n < 500 && !denied) {
    const r = await call('GET', `${app.url}/v1/orders?limit=1`, { token });
    n++;
    if (r.status === 429) denied = r;
    else {
      expectThat(r.status === 200, `GET /v1/orders: expected 200 or 429, got ${brief(r)}`);
      firstOk ??= r;
    }
  }
  expectThat(firstOk, 'the very first request was denied');
  expectThat(denied, `no 429 after ${n} requests`);
  const h = (r: Reply<Json>, k: string) => r.headers.get(k) ?? '(missing)';
  expectThat(firstOk.headers.get('ratelimit'), '200 without a RateLimit header');
  expectThat(firstOk.headers.get('ratelimit-policy'), '200 without a RateLimit-Policy header');
  expectThat(denied.headers.get('retry-after'), '429 without Retry-After');
  expectThat(
    /problem\+json/.test(denied.headers.get('content-type') ?? ''),
    `429 content-type ${denied.headers.get('content-type')}`,
  );
  return {
    result: `${n - 1} requests admitted, #${n} -> 429 ${code(denied)}, Retry-After: ${h(denied, 'retry-after')} s`,
    details: [
      `200 RateLimit-Policy: ${h(firstOk, 'ratelimit-policy')}`,
      `200 RateLimit: ${h(firstOk, 'ratelimit')}`,
      `429 RateLimit: ${h(denied, 'ratelimit')}`,
      `429 body: ${denied.text.slice(0, 160)}`,
    ],
  };
}

export async function stepFreeze(
  ctx: TourContext,
  app: AppInstance,
  first: First | undefined,
): Promise<StepOutcome<void>> {
  expectThat(first, 'needs the order of the create step');
  const admin = await ctx.mint('admin', `ops-freeze-${ctx.run}`);
  const f = await call('POST', `${app.url}/admin/maintenance/freeze`, {
    token: admin,
    body: { reason: 'tour: schema migration', etaSec: 60 },
  });
  expectThat(f.status === 200 && f.body?.frozen === true, `freeze: expected 200 frozen, got ${brief(f)}`);
  let unfrozen = false;
  try {
    const w = await createOrder(app, first.token);
    expectThat(w.status === 423, `write while frozen: expected 423, got ${brief(w)}`);
    expectThat(code(w) === 'MAINTENANCE', `423 code ${code(w)}, expected MAINTENANCE`);
    expectThat(w.body.holder && w.body.since && w.body.eta, `423 body lacks holder/since/eta: ${w.text}`);
    const read = await call('GET', `${app.url}/v1/orders/${first.order.id}`, { token: first.token });
    expectThat(read.status === 200, `read while frozen: expected 200, got ${brief(read)}`);
    const u = await call('DELETE', `${app.url}/admin/maintenance/freeze`, { token: admin });
    expectThat(
      u.status === 200 && u.body?.frozen === false,
      `unfreeze: expected 200 frozen:false, got ${brief(u)}`,
    );
    unfrozen = true;
    const after = await createOrder(app, first.token);
    expectThat(after.status === 201, `write after unfreeze: expected 201, got ${brief(after)}`);
    return {
      result: 'freeze 200; POST /v1/orders -> 423 MAINTENANCE; reads still 200; unfreeze 200; POST -> 201',
      details: [`423 holder=${w.body.holder} since=${w.body.since} eta=${w.body.eta}`],
    };
  } finally {
    if (!unfrozen)
      await call('DELETE', `${app.url}/admin/maintenance/freeze`, { token: admin }).catch(() => {});
  }
}

export async function stepOutbox(
  ctx: TourContext,
  app: AppInstance,
  first: First | undefined,
): Promise<StepOutcome<void>> {
  expectThat(first, 'needs the paid order of the earlier steps');
  const token = await ctx.mint('support', `sue-${ctx.run}`);
  const url = `${app.url}/admin/notifications?orderId=${encodeURIComponent(first.order.id)}`;
  const t0 = performance.now();
  const list = await waitFor(
    async () => {
      const r = await call('GET', url, { token });
      expectThat(r.status === 200, `GET /admin/notifications: ${brief(r)}`);
      const ns = r.body.notifications as { messageId: string; type: string; appliedAt: string }[];
      const types = new Set(ns.map((n) => n.type));
      return types.has('OrderCreated') && types.has('OrderPaid') ? ns : undefined;
    },
    'OrderCreated and OrderPaid to reach the notifications consumer',
    { timeoutMs: 20_000, everyMs: 150 },
  );
  const waited = performance.now() - t0;
  const ids = list.map((n) => n.messageId);
  expectThat(new Set(ids).size === ids.length, `a message was applied twice: ${ids.join(', ')}`);
  for (const t of ['OrderCreated', 'OrderPaid'])
    expectThat(
      list.filter((n) => n.type === t).length === 1,
      `${t} applied ${list.filter((n) => n.type === t).length} times`,
    );
  return {
    result: `${list.map((n) => n.type).join(' + ')} each applied exactly once by the inbox consumer (seen within ${Math.round(waited)} ms)`,
    details: list.map((n) => `${n.type} message ${n.messageId} applied ${n.appliedAt}`),
  };
}

export async function stepBackup(
  ctx: TourContext,
  app: AppInstance,
  first: First | undefined,
): Promise<StepOutcome<void>> {
  expectThat(first, 'needs a customer token of the create step');
  const admin = await ctx.mint('admin', `ops-backup-${ctx.run}`);
  const r = await call('POST', `${app.url}/admin/backups`, { token: admin, timeoutMs: 90_000 });
  expectThat(r.status === 201, `POST /admin/backups: expected 201, got ${brief(r)}`);
  expectThat(r.body?.verified === true, `backup not verified: ${r.text.slice(0, 200)}`);
  const m = r.body.manifest as {
    id: string;
    bytes: number;
    source: string;
    tables: { name: string; rows: number }[];
    verification?: { restoreMs?: number };
  };
  const l = await call('GET', `${app.url}/admin/backups`, { token: admin });
  expectThat(l.status === 200, `GET /admin/backups: ${brief(l)}`);
  const listed = (l.body.backups as { id: string }[]).some((b) => b.id === m.id);
  expectThat(listed, `GET /admin/backups does not list ${m.id}`);
  const after = await createOrder(app, first.token);
  expectThat(after.status === 201, `write after the backup: expected 201, got ${brief(after)}`);
  const orders = m.tables?.find((t) => t.name === 'orders')?.rows;
  return {
    result: `201 backup ${m.id} (${m.source}, ${m.bytes} bytes) verified by a test restore; listed; writes continue (201)`,
    details: [
      `tables: ${(m.tables ?? []).map((t) => `${t.name}=${t.rows}`).join(' ')}`,
      `orders rows: ${orders ?? '?'}; restore drill ${m.verification?.restoreMs ?? '?'} ms; status ${JSON.stringify(l.body.status ?? {}).slice(0, 160)}`,
    ],
  };
}

export async function stepAudit(ctx: TourContext, app: AppInstance): Promise<StepOutcome<void>> {
  const admin = await ctx.mint('admin', `ops-audit-${ctx.run}`);
  const r = await call('GET', `${app.url}/admin/audit/verify`, { token: admin });
  expectThat(
    r.status === 200 && r.body?.ok === true,
    `expected 200 { ok: true }, got ${brief(r)} ${r.text.slice(0, 120)}`,
  );
  return { result: `hash chain intact over ${r.body.rows} audit_log rows` };
}

export async function stepHealth(app: AppInstance): Promise<StepOutcome<void>> {
  const r = await call('GET', `${app.url}/health`);
  expectThat(r.status === 200, `GET /health: expected 200, got ${r.status} ${r.text.slice(0, 200)}`);
  const ct = r.headers.get('content-type') ?? '';
  expectThat(/health\+json/.test(ct), `content-type ${ct}, expected application/health+json`);
  const body = (r.text ? JSON.parse(r.text) : {}) as {
    status: string;
    checks?: Record<string, { status: string; observedValue?: unknown; observedUnit?: string }[]>;
  };
  expectThat(body.status === 'pass' || body.status === 'warn', `status ${body.status}`);
  const checks = Object.entries(body.checks ?? {});
  expectThat(checks.length > 0, '/health lists no checks');
  return {
    result: `200 application/health+json status=${body.status}, ${checks.length} checks`,
    details: checks.map(([name, cs]) => {
      const c = cs[0];
      const v =
        c?.observedValue !== undefined
          ? ` ${JSON.stringify(c.observedValue)}${c.observedUnit ? ` ${c.observedUnit}` : ''}`
          : '';
      return `${name.padEnd(34)} ${c?.status ?? '?'}${v}`;
    }),
  };
}

export const PACKAGES = ['auth', 'ratelimit', 'breaker', 'locks', 'outbox', 'backup', 'health'] as const;

export async function stepMetrics(app: AppInstance): Promise<StepOutcome<void>> {
  const r = await call('GET', `${app.url}/metrics`);
  expectThat(r.status === 200, `GET /metrics: expected 200, got ${r.status}`);
  const samples = r.text.split('\n').filter((l) => l && !l.startsWith('#'));
  const details: string[] = [];
  const missing: string[] = [];
  for (const p of PACKAGES) {
    const mine = samples.filter((l) => l.startsWith(`oms_${p}_`));
    const families = new Set(mine.map((l) => l.split(/[{ ]/)[0]?.replace(/_(bucket|sum|count)$/, '')));
    if (mine.length === 0) missing.push(p);
    else {
      const example = mine.find((l) => !/_bucket\{/.test(l)) ?? mine[0]!;
      // name{first label,...} value: short enough for one line
      const m = /^([^{ ]+)(\{[^,}]*)?[^ ]* (.*)$/.exec(example);
      const short = m ? `${m[1]}${m[2] ? `${m[2]},...}` : ''} ${m[3]}` : example;
      details.push(
        `@oms/${p.padEnd(9)} ${String(families.size).padStart(2)} families, e.g. ${short.slice(0, 80)}`,
      );
    }
  }
  const http = samples.find((l) => /^http_server/.test(l));
  if (http) details.push(`http        e.g. ${http.slice(0, 90)}`);
  expectThat(missing.length === 0, `no metrics from ${missing.map((p) => `@oms/${p}`).join(', ')}`, details);
  return { result: `${samples.length} samples; every package reports (${PACKAGES.join(', ')})`, details };
}

export async function stepShutdownInFlight(
  ctx: TourContext,
  app: AppInstance,
  terminate: () => Promise<{ code: number | null; signal: string | null; at: number; killed: boolean }>,
): Promise<StepOutcome<void>> {
  const token = await ctx.mint('customer', `dan-${ctx.run}`);
  const order = await mustCreate(app, token);
  // a pay call that is certainly in flight at the signal: payments holds it for 500 ms
  await setFaults(ctx.payments, { latencyMs: 500 });
  const before = (await paymentsStats(ctx.payments)).requests;
  const inflight = pay(app, token, order.id);
  await waitFor(
    async () => (await paymentsStats(ctx.payments)).requests > before || undefined,
    'the pay call to reach payments',
    { timeoutMs: 10_000, everyMs: 10 },
  );
  let notReadyAt: number | undefined;
  const t0 = performance.now();
  const exitP = terminate();
  // the load balancer's view: /readyz stops answering 200 during the drain
  const probe = (async () => {
    while (notReadyAt === undefined && performance.now() - t0 < 10_000) {
      const s = await call('GET', `${app.url}/readyz`, { timeoutMs: 2_000 }).then(
        (x) => x.status,
        () => 0,
      );
      if (s !== 200) notReadyAt = performance.now() - t0;
      else await sleep(10);
    }
  })();
  const [paid, exit] = await Promise.all([inflight, exitP, probe]).then(([a, b]) => [a, b] as const);
  await setFaults(ctx.payments, { latencyMs: 0 });
  expectThat(
    paid.status === 200 && paid.body?.order?.status === 'paid',
    `the pay in flight at SIGTERM: expected 200 paid, got ${brief(paid)}`,
  );
  expectThat(
    !exit.killed && exit.code === 0,
    `exit code ${exit.code} signal ${exit.signal}${exit.killed ? ' (killed after the timeout)' : ''}`,
  );
  return {
    result: `SIGTERM: /readyz not 200 after ${notReadyAt === undefined ? '?' : Math.round(notReadyAt)} ms; the pay in flight finished 200 paid; exit 0 after ${Math.round(exit.at)} ms`,
  };
}
