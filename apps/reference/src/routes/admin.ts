import type { BackupManager } from '@oms/backup';
import type { FastifyInstance } from 'fastify';
import type { Kysely } from 'kysely';
import type { AuditLog } from '../audit.js';
import type { Database } from '../db/schema.js';
import type { Maintenance } from '../maintenance.js';
import type { PaymentGateway } from '../payment-gateway.js';
import { Problem } from '../problems.js';
import { principalOf } from './orders.js';

export interface AdminDeps {
  db: Kysely<Database>;
  audit: AuditLog;
  maintenance: Maintenance;
  backups: BackupManager;
  scratchUrl: string | undefined;
  payments: PaymentGateway;
}

export function adminRoutes(app: FastifyInstance, d: AdminDeps): void {
  app.post<{ Body: { reason: string; etaSec: number } }>(
    '/admin/maintenance/freeze',
    {
      schema: {
        body: {
          type: 'object',
          additionalProperties: false,
          required: ['reason', 'etaSec'],
          properties: {
            reason: { type: 'string', minLength: 1, maxLength: 500 },
            etaSec: { type: 'integer', minimum: 1, maximum: 86_400 },
          },
        },
      },
    },
    async (req) => d.maintenance.freeze({ subject: principalOf(req).subject, ...req.body }),
  );

  app.delete('/admin/maintenance/freeze', async () => d.maintenance.unfreeze());

  // no parameters: an unknown query parameter is refused (400) rather than ignored
  const noQuery = { querystring: { type: 'object', additionalProperties: false, properties: {} } } as const;

  app.post('/admin/backups', { schema: noQuery }, async (_req, reply) => {
    const manifest = await d.backups.create();
    try {
      await d.backups.verify(manifest.id, d.scratchUrl ? { scratchUrl: d.scratchUrl } : {});
    } catch (e) {
      throw new Problem('BACKUP_FAILED', `backup ${manifest.id} did not verify: ${(e as Error).message}`, {
        backupId: manifest.id,
      });
    }
    return reply.code(201).send({ manifest: await d.backups.get(manifest.id), verified: true });
  });

  app.get('/admin/backups', async () => ({
    backups: await d.backups.list(),
    status: await d.backups.status(),
  }));

  app.get('/admin/audit/verify', async () => d.audit.verify());

  app.get<{ Querystring: { orderId?: string } }>(
    '/admin/notifications',
    {
      schema: {
        querystring: {
          type: 'object',
          additionalProperties: false,
          properties: { orderId: { type: 'string', minLength: 1, maxLength: 100 } },
        },
      },
    },
    async (req) => {
      let q = d.db
        .selectFrom('notifications')
        .selectAll()
        .orderBy('applied_at')
        .orderBy('message_id')
        .limit(1000);
      if (req.query.orderId) q = q.where('order_id', '=', req.query.orderId);
      const rows = await q.execute();
      return {
        notifications: rows.map((r) => ({
          messageId: r.message_id,
          orderId: r.order_id,
          type: r.type,
          appliedAt: new Date(r.applied_at).toISOString(),
        })),
      };
    },
  );

  app.get('/admin/breakers', async () => ({
    breakers: [{ name: d.payments.breaker.name, state: d.payments.breaker.state }],
  }));
}
