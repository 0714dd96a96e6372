import { createHash, randomUUID } from 'node:crypto';
import type { Lease, Locks } from '@oms/locks';
import { enqueue } from '@oms/outbox';
import { context, propagation } from '@opentelemetry/api';
import { type Kysely, sql, type Transaction } from 'kysely';
import type pg from 'pg';
import type { Logger } from 'pino';
import { canonicalJson } from '../audit.js';
import type { Database, OrdersTable } from '../db/schema.js';
import type { Maintenance } from '../maintenance.js';
import type { PaymentGateway } from '../payment-gateway.js';
import { Problem } from '../problems.js';

export type OrderStatus = OrdersTable['status'];

export interface OrderItem {
  sku: string;
  quantity: number;
  unitPriceCents: number;
}

export interface Order {
  id: string;
  customerId: string;
  status: OrderStatus;
  totalCents: number;
  currency: string;
  items: OrderItem[];
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface NewOrder {
  items: OrderItem[];
  currency: string;
}

/** The outbox topic of order events. */
export const ORDER_TOPIC = 'orders';

type Db = Kysely<Database> | Transaction<Database>;

/**
 * The order domain: creation with an idempotency key, reads, and the pay/cancel transitions. Every write runs
 * under the maintenance gate; a transition runs under the order's lock, and its UPDATE carries the lease's
 * fencing token, so a holder whose lease was lost can no longer write. Events go to the outbox in the same
 * transaction as the write.
 */
export class OrderService {
  readonly #db: Kysely<Database>;
  readonly #locks: Locks;
  readonly #maintenance: Maintenance;
  readonly #payments: PaymentGateway;
  readonly #fence: (token: bigint) => bigint;
  readonly #log: Logger;
  readonly #cache: OrderCache | undefined;
  readonly #pool: Pick<pg.Pool, 'query'> | undefined;

  constructor(o: {
    db: Kysely<Database>;
    locks: Locks;
    maintenance: Maintenance;
    payments: PaymentGateway;
    fence: (token: bigint) => bigint;
    log: Logger;
    /**
     * Keep read orders in process memory (at most this many). Only where this process is the database's one
     * writer (embedded PGlite): every write here invalidates its order, a write elsewhere could not.
     */
    readCache?: number;
    /** PostgreSQL: reads run as a named prepared statement on this pool (planned once per connection). */
    pool?: Pick<pg.Pool, 'query'>;
  }) {
    this.#db = o.db;
    this.#locks = o.locks;
    this.#maintenance = o.maintenance;
    this.#payments = o.payments;
    this.#fence = o.fence;
    this.#log = o.log;
    this.#cache = o.readCache ? new OrderCache(o.readCache) : undefined;
    this.#pool = o.pool;
  }

  /**
   * Creates an order, or replays the one this principal created with this key. The key row and the order are
   * one transaction: concurrent requests with one key wait on the key row (PostgreSQL) or run one after the
   * other (PGlite), and all but the first find it.
   */
  async create(
    customerId: string,
    key: string,
    input: NewOrder,
  ): Promise<{ order: Order; replayed: boolean }> {
    const requestHash = createHash('sha256').update(canonicalJson(input)).digest('hex');
    return this.#maintenance.write(() =>
      this.#db.transaction().execute(async (trx) => {
        const id = `ord_${randomUUID()}`;
        const claimed = await trx
          .insertInto('idempotency_keys')
          .values({ principal: customerId, key, request_hash: requestHash, order_id: id })
          .onConflict((oc) => oc.columns(['principal', 'key']).doNothing())
          .returning('order_id')
          .executeTakeFirst();
        if (!claimed) {
          const prior = await trx
            .selectFrom('idempotency_keys')
            .select(['request_hash', 'order_id'])
            .where('principal', '=', customerId)
            .where('key', '=', key)
            .executeTakeFirstOrThrow();
          if (prior.request_hash !== requestHash) {
            throw new Problem('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with another body');
          }
          return { order: await this.#load(trx, prior.order_id), replayed: true };
        }
        const totalCents = input.items.reduce((s, i) => s + i.quantity * i.unitPriceCents, 0);
        const now = new Date();
        await trx
          .insertInto('orders')
          .values({
            id,
            customer_id: customerId,
            status: 'created',
            total_cents: totalCents,
            currency: input.currency,
            version: 1,
            fence: '0',
            created_at: now,
            updated_at: now,
          })
          .execute();
        await trx
          .insertInto('order_items')
          .values(
            input.items.map((i, line) => ({
              order_id: id,
              line,
              sku: i.sku,
              quantity: i.quantity,
              unit_price_cents: i.unitPriceCents,
            })),
          )
          .execute();
        await enqueue(trx, {
          topic: ORDER_TOPIC,
          key: id,
          type: 'OrderCreated',
          payload: { orderId: id, customerId, totalCents, currency: input.currency },
        });
        return { order: await this.#load(trx, id), replayed: false };
      }),
    );
  }

  /** The order, or 404 (from the read cache when there is one). */
  async get(id: string): Promise<Order> {
    const cache = this.#cache;
    if (!cache) return this.#load(this.#db, id);
    const hit = cache.get(id);
    if (hit) return hit;
    const epoch = cache.epoch;
    const order = await this.#load(this.#db, id);
    cache.set(order, epoch);
    return order;
  }

  /** A page of orders, newest first; `customerId` limits it to one customer's. */
  async list(o: {
    customerId?: string;
    limit: number;
    cursor?: string;
  }): Promise<{ orders: Order[]; nextCursor: string | null }> {
    let q = this.#db.selectFrom('orders').selectAll();
    if (o.customerId !== undefined) q = q.where('customer_id', '=', o.customerId);
    if (o.cursor) {
      const c = decodeCursor(o.cursor);
      q = q.where(sql<boolean>`(created_at, id) < (${c.createdAt}::timestamptz, ${c.id})`);
    }
    const rows = await q
      .orderBy('created_at', 'desc')
      .orderBy('id', 'desc')
      .limit(o.limit + 1)
      .execute();
    const page = rows.slice(0, o.limit);
    const items = await this.#items(
      this.#db,
      page.map((r) => r.id),
    );
    const orders = page.map((r) => toOrder(r, items.get(r.id) ?? []));
    const last = page[page.length - 1];
    return {
      orders,
      nextCursor:
        rows.length > o.limit && last ? encodeCursor(new Date(last.created_at).toISOString(), last.id) : null,
    };
  }

  /**
   * Pays an order: marks it payment_pending, charges it through the payments pipeline, then marks it paid and
   * enqueues OrderPaid. When payments is unavailable the order stays payment_pending (a later pay retries with
   * the same charge key, so it is never charged twice) and the caller gets 503 with Retry-After.
   */
  async pay(id: string, check: (o: Order) => void): Promise<Order> {
    return this.#underOrderLock(id, check, async (order, fence, lease) => {
      if (order.status === 'paid') return order;
      if (order.status === 'cancelled') {
        throw new Problem('INVALID_TRANSITION', `a ${order.status} order cannot be paid`, {
          status: order.status,
        });
      }
      if (order.status === 'created') {
        await this.#transition(this.#db, id, ['created'], 'payment_pending', fence);
        this.#cache?.invalidate(id); // reads during the charge see payment_pending
      }
      const traceHeaders: Record<string, string> = {};
      propagation.inject(context.active(), traceHeaders);
      let charge: { chargeId: string };
      try {
        charge = await this.#payments.charge(
          {
            orderId: id,
            amountCents: order.totalCents,
            currency: order.currency,
            idempotencyKey: `charge:${id}`,
            traceHeaders,
          },
          lease.signal,
        );
      } catch (e) {
        const u = this.#payments.unavailable(e);
        this.#log.warn({ orderId: id, reason: u.reason }, 'payment failed; order left payment_pending');
        throw new Problem(
          'PAYMENTS_UNAVAILABLE',
          `payments unavailable (${u.reason}); the order stays payment_pending, retry later`,
          { orderId: id, orderStatus: 'payment_pending' },
          { 'Retry-After': String(u.retryAfterSec) },
        );
      }
      return this.#db.transaction().execute(async (trx) => {
        await this.#transition(trx, id, ['payment_pending'], 'paid', fence);
        await trx
          .insertInto('payments')
          .values({
            charge_id: charge.chargeId,
            order_id: id,
            amount_cents: order.totalCents,
            currency: order.currency,
          })
          .onConflict((oc) => oc.column('order_id').doNothing())
          .execute();
        await enqueue(trx, {
          topic: ORDER_TOPIC,
          key: id,
          type: 'OrderPaid',
          payload: { orderId: id, chargeId: charge.chargeId, totalCents: order.totalCents },
        });
        return this.#load(trx, id);
      });
    });
  }

  /** Cancels a created or payment_pending order (a paid one is 409 INVALID_TRANSITION). */
  async cancel(id: string, check: (o: Order) => void): Promise<Order> {
    return this.#underOrderLock(id, check, async (order, fence) => {
      if (order.status === 'cancelled') return order;
      if (order.status === 'paid') {
        throw new Problem('INVALID_TRANSITION', 'a paid order cannot be cancelled', {
          status: order.status,
        });
      }
      return this.#db.transaction().execute(async (trx) => {
        await this.#transition(trx, id, ['created', 'payment_pending'], 'cancelled', fence);
        await enqueue(trx, {
          topic: ORDER_TOPIC,
          key: id,
          type: 'OrderCancelled',
          payload: { orderId: id },
        });
        return this.#load(trx, id);
      });
    });
  }

  /**
   * A state transition's frame: the shared side of the maintenance lock, the order's own lock, the order as it is
   * now (after `check`, the caller's access rule) and the lease's fencing token for the UPDATE.
   */
  #underOrderLock(
    id: string,
    check: (o: Order) => void,
    fn: (order: Order, fence: bigint, lease: Lease) => Promise<Order>,
  ): Promise<Order> {
    return this.#maintenance.write(() =>
      this.#locks.withLock(
        `order:${id}`,
        async (lease) => {
          const fence = this.#fence(lease.fencingToken);
          // the row as it is now, never the cache: the transition decides on it
          const order = await this.#load(this.#db, id);
          check(order);
          try {
            return await fn(order, fence, lease);
          } finally {
            this.#cache?.invalidate(id); // after the commit (or the failure): later reads see the row
          }
        },
        { ttlMs: 15_000, waitMs: 5_000 },
      ),
    );
  }

  /** The fenced UPDATE: it matches only while no newer lease holder has written the row. */
  async #transition(db: Db, id: string, from: OrderStatus[], to: OrderStatus, fence: bigint): Promise<void> {
    const r = await db
      .updateTable('orders')
      .set({ status: to, version: sql`version + 1`, fence: fence.toString(), updated_at: new Date() })
      .where('id', '=', id)
      .where('status', 'in', from)
      .where('fence', '<=', fence.toString())
      .executeTakeFirst();
    if (Number(r.numUpdatedRows) !== 1) {
      throw new Problem('CONFLICT', 'the order changed under a newer lock holder; retry');
    }
  }

  /** The order and its items in one query (one round trip; on PGlite, one turn of the database). */
  async #load(db: Db, id: string): Promise<Order> {
    const row =
      db === this.#db && this.#pool
        ? (await this.#pool.query<LoadedRow>({ name: 'oms-order-load', text: LOAD_ORDER, values: [id] }))
            .rows[0]
        : (await sql<LoadedRow>`${sql.raw(LOAD_ORDER_BY)} ${id}`.execute(db)).rows[0];
    if (!row) throw new Problem('NOT_FOUND', `no order ${id}`);
    const raw = (typeof row.items === 'string' ? JSON.parse(row.items) : row.items) as [
      string,
      number | string,
      number | string,
    ][];
    return toOrder(
      row,
      raw.map(([sku, quantity, unitPriceCents]) => ({
        sku,
        quantity: Number(quantity),
        unitPriceCents: Number(unitPriceCents),
      })),
    );
  }

  async #items(db: Db, ids: string[]): Promise<Map<string, OrderItem[]>> {
    const out = new Map<string, OrderItem[]>();
    if (ids.length === 0) return out;
    const rows = await db
      .selectFrom('order_items')
      .selectAll()
      .where('order_id', 'in', ids)
      .orderBy('line')
      .execute();
    for (const r of rows) {
      const list = out.get(r.order_id) ?? [];
      list.push({ sku: r.sku, quantity: Number(r.quantity), unitPriceCents: Number(r.unit_price_cents) });
      out.set(r.order_id, list);
    }
    return out;
  }
}

/** An order and its items as `[sku, quantity, unitPriceCents]` rows, by id (the id is the parameter after it). */
const LOAD_ORDER_BY = `select o.id, o.customer_id, o.status, o.total_cents, o.currency, o.version, o.created_at,
    o.updated_at, coalesce((select json_agg(json_build_array(i.sku, i.quantity, i.unit_price_cents) order by i.line)
      from order_items i where i.order_id = o.id), '[]') as items
  from orders o where o.id =`;
const LOAD_ORDER = `${LOAD_ORDER_BY} $1`;

interface OrderRow {
  id: string;
  customer_id: string;
  status: OrderStatus;
  total_cents: number | string;
  currency: string;
  version: number;
  created_at: Date | string;
  updated_at: Date | string;
}

type LoadedRow = OrderRow & { items: unknown };

function toOrder(r: OrderRow, items: OrderItem[]): Order {
  return {
    id: r.id,
    customerId: r.customer_id,
    status: r.status,
    totalCents: Number(r.total_cents),
    currency: r.currency,
    items,
    version: Number(r.version),
    createdAt: new Date(r.created_at).toISOString(),
    updatedAt: new Date(r.updated_at).toISOString(),
  };
}

const encodeCursor = (createdAt: string, id: string) =>
  Buffer.from(JSON.stringify([createdAt, id])).toString('base64url');

function decodeCursor(c: string): { createdAt: string; id: string } {
  try {
    const [createdAt, id] = JSON.parse(Buffer.from(c, 'base64url').toString()) as [unknown, unknown];
    if (typeof createdAt === 'string' && typeof id === 'string' && !Number.isNaN(Date.parse(createdAt))) {
      return { createdAt, id };
    }
  } catch {}
  throw new Problem('VALIDATION', 'cursor is not one this API returned');
}

/**
 * Orders read recently, at most `max` (the oldest read goes first). A read that began before a write's
 * invalidation must not store what it read: every invalidation moves `epoch`, and `set` keeps an order only if
 * the epoch is still the one its read began in.
 */
class OrderCache {
  readonly #max: number;
  readonly #orders = new Map<string, Order>();
  #epoch = 0;

  constructor(max: number) {
    this.#max = max;
  }

  get epoch(): number {
    return this.#epoch;
  }

  get(id: string): Order | undefined {
    return this.#orders.get(id);
  }

  set(order: Order, readBeganIn: number): void {
    if (readBeganIn !== this.#epoch) return;
    if (this.#orders.size >= this.#max && !this.#orders.has(order.id)) {
      const oldest = this.#orders.keys().next();
      if (!oldest.done) this.#orders.delete(oldest.value);
    }
    this.#orders.set(order.id, order);
  }

  invalidate(id: string): void {
    this.#epoch++;
    this.#orders.delete(id);
  }
}
