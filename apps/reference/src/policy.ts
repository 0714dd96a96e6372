import { type Principal, type Resource, rbac, routePolicy } from '@oms/auth';

/** Every permission of the app. `orders:*` gate routes; `order:*` are checked on a loaded order. */
export const PERMISSIONS = [
  'orders:create',
  'orders:list',
  'orders:read',
  'orders:pay',
  'orders:cancel',
  'order:read',
  'order:pay',
  'order:cancel',
  'backups:manage',
  'maintenance:manage',
  'audit:verify',
  'ops:read',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

/**
 * Every route of the app and its rule. An unmapped route is denied (403) before any token is read, and a test
 * enumerates Fastify's routes against this table.
 */
export const ROUTES = {
  'GET /livez': 'public',
  'GET /readyz': 'public',
  'GET /startupz': 'public',
  'GET /health': 'public',
  'POST /livez': 'public',
  'POST /readyz': 'public',
  'POST /startupz': 'public',
  'POST /health': 'public',
  'PUT /livez': 'public',
  'PUT /readyz': 'public',
  'PUT /startupz': 'public',
  'PUT /health': 'public',
  'PATCH /livez': 'public',
  'PATCH /readyz': 'public',
  'PATCH /startupz': 'public',
  'PATCH /health': 'public',
  'DELETE /livez': 'public',
  'DELETE /readyz': 'public',
  'DELETE /startupz': 'public',
  'DELETE /health': 'public',
  'GET /metrics': 'public',
  'POST /v1/orders': 'orders:create',
  'GET /v1/orders': 'orders:list',
  'GET /v1/orders/:id': 'orders:read',
  'POST /v1/orders/:id/pay': 'orders:pay',
  'POST /v1/orders/:id/cancel': 'orders:cancel',
  'POST /admin/maintenance/freeze': 'maintenance:manage',
  'DELETE /admin/maintenance/freeze': 'maintenance:manage',
  'POST /admin/backups': 'backups:manage',
  'GET /admin/backups': 'backups:manage',
  'GET /admin/audit/verify': 'audit:verify',
  'GET /admin/notifications': 'ops:read',
  'GET /admin/breakers': 'ops:read',
} as const;

export const routes = routePolicy<Permission>(ROUTES);

/** A customer's own order: the resource check of `order:*`. */
const own = {
  permission: 'order:*' as const,
  when: (p: Principal, r: Resource) => r.customerId === p.subject,
  name: 'own-orders',
};

export const access = rbac<Permission>({
  permissions: PERMISSIONS,
  roles: {
    customer: {
      permissions: ['orders:create', 'orders:list', 'orders:read', 'orders:pay', 'orders:cancel', own],
    },
    support: {
      permissions: ['orders:list', 'orders:read', 'orders:cancel', 'order:read', 'order:cancel', 'ops:read'],
    },
    admin: { permissions: ['*'] },
  },
});
