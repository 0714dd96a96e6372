import type { Principal } from '@oms/auth';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { AuditLog } from '../audit.js';
import type { NewOrder, Order, OrderService } from '../orders/service.js';
import { access } from '../policy.js';
import { Problem } from '../problems.js';

const orderBody = {
  type: 'object',
  additionalProperties: false,
  required: ['items', 'currency'],
  properties: {
    currency: { type: 'string', pattern: '^[A-Z]{3}$' },
    items: {
      type: 'array',
      minItems: 1,
      maxItems: 100,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['sku', 'quantity', 'unitPriceCents'],
        properties: {
          sku: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9._-]+$' },
          quantity: { type: 'integer', minimum: 1, maximum: 10_000 },
          unitPriceCents: { type: 'integer', minimum: 0, maximum: 100_000_000 },
        },
      },
    },
  },
} as const;

const idParams = {
  type: 'object',
  required: ['id'],
  properties: { id: { type: 'string', minLength: 1, maxLength: 100 } },
} as const;

/** The principal authPlugin let through (every /v1 route needs one). */
export function principalOf(req: FastifyRequest): Principal {
  const p = req.principal;
  if (!p) throw new Problem('FORBIDDEN', 'no principal');
  return p;
}

/**
 * The resource check on a loaded order (`order:<action>`): customers only on their own orders, support and
 * admin per their grants. Each outcome goes to the audit log like the route decisions do.
 */
export function orderCheck(audit: AuditLog, req: FastifyRequest, action: 'read' | 'pay' | 'cancel') {
  return (order: Order): void => {
    const p = principalOf(req);
    const permission = `order:${action}` as const;
    const e = access.explain(p, permission, { customerId: order.customerId });
    audit.record({
      kind: 'resource',
      method: req.method,
      route: req.routeOptions.url ?? req.url,
      status: e.allowed ? 200 : 403,
      allowed: e.allowed,
      reason: e.reason,
      subject: p.subject,
      permission,
      resourceId: order.id,
      requestId: req.id,
    });
    if (!e.allowed) throw new Problem('FORBIDDEN', `not allowed to ${action} this order`);
  };
}

export function orderRoutes(app: FastifyInstance, o: { orders: OrderService; audit: AuditLog }): void {
  const { orders, audit } = o;

  app.post<{ Body: NewOrder; Headers: { 'idempotency-key': string } }>(
    '/v1/orders',
    {
      schema: {
        body: orderBody,
        headers: {
          type: 'object',
          required: ['idempotency-key'],
          properties: { 'idempotency-key': { type: 'string', minLength: 1, maxLength: 200 } },
        },
      },
    },
    async (req, reply) => {
      const p = principalOf(req);
      const r = await orders.create(p.subject, req.headers['idempotency-key'], req.body);
      if (r.replayed) reply.header('Idempotent-Replayed', 'true');
      return reply.code(r.replayed ? 200 : 201).send({ order: r.order });
    },
  );

  app.get<{ Querystring: { limit?: number; cursor?: string } }>(
    '/v1/orders',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: {
            limit: { type: 'integer', minimum: 1, maximum: 100, default: 20 },
            cursor: { type: 'string', maxLength: 500 },
          },
        },
      },
    },
    async (req) => {
      const p = principalOf(req);
      // support and admin read every order; a customer's grant is conditional, so only their own
      const all = access.can(p, 'order:read');
      return orders.list({
        limit: req.query.limit ?? 20,
        ...(all ? {} : { customerId: p.subject }),
        ...(req.query.cursor ? { cursor: req.query.cursor } : {}),
      });
    },
  );

  app.get<{ Params: { id: string } }>('/v1/orders/:id', { schema: { params: idParams } }, async (req) => {
    const order = await orders.get(req.params.id);
    orderCheck(audit, req, 'read')(order);
    return { order };
  });

  app.post<{ Params: { id: string } }>(
    '/v1/orders/:id/pay',
    { schema: { params: idParams } },
    async (req) => ({
      order: await orders.pay(req.params.id, orderCheck(audit, req, 'pay')),
    }),
  );

  app.post<{ Params: { id: string } }>(
    '/v1/orders/:id/cancel',
    { schema: { params: idParams } },
    async (req) => ({
      order: await orders.cancel(req.params.id, orderCheck(audit, req, 'cancel')),
    }),
  );
}
