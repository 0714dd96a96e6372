import { describe, expect, it } from 'vitest';
import { type Principal, type RoleDefinition, rbac } from '../src/index.js';

const who = (roles: string[], extra: Partial<Principal> = {}): Principal => ({
  subject: 'user-1',
  roles,
  scopes: [],
  claims: {},
  ...extra,
});

const access = rbac({
  permissions: ['orders:read', 'orders:update', 'orders:refund', 'users:read', 'reports:read'],
  roles: {
    viewer: { permissions: ['orders:read'] },
    clerk: {
      inherits: ['viewer'],
      permissions: [{ permission: 'orders:update', when: (p, r) => r.owner === p.subject, name: 'owner' }],
    },
    manager: { inherits: ['clerk'], permissions: ['orders:*'] },
    auditor: { permissions: ['*:read'] },
    support: { permissions: ['users:read'], crossTenant: true },
    root: { permissions: ['*'], crossTenant: true },
  },
});

describe('rbac', () => {
  it('grants through inheritance and says which role did', () => {
    expect(access.can(who(['clerk']), 'orders:read')).toBe(true);
    expect(access.explain(who(['clerk']), 'orders:read')).toMatchObject({
      allowed: true,
      role: 'clerk',
      grant: 'orders:read',
      detail: 'clerk (inherited from viewer) grants orders:read',
    });
    expect(access.can(who(['viewer']), 'orders:update')).toBe(false);
  });

  it('matches resource:* , *:action and * wildcards', () => {
    expect(access.explain(who(['manager']), 'orders:refund')).toMatchObject({
      allowed: true,
      grant: 'orders:*',
    });
    expect(access.can(who(['manager']), 'users:read')).toBe(false);
    expect(access.explain(who(['auditor']), 'reports:read')).toMatchObject({
      allowed: true,
      grant: '*:read',
    });
    expect(access.can(who(['auditor']), 'orders:update')).toBe(false);
    expect(access.explain(who(['root']), 'orders:refund')).toMatchObject({ allowed: true, grant: '*' });
  });

  it('applies resource conditions: an owner may update their own order only', () => {
    expect(access.can(who(['clerk']), 'orders:update', { owner: 'user-1' })).toBe(true);
    expect(access.explain(who(['clerk']), 'orders:update', { owner: 'user-2' })).toMatchObject({
      allowed: false,
      reason: 'condition-false',
      role: 'clerk',
    });
    expect(access.explain(who(['clerk']), 'orders:update')).toMatchObject({
      reason: 'condition-needs-resource',
    });
  });

  it('isolates tenants unless a crossTenant role grants', () => {
    const acme = (roles: string[]) => who(roles, { tenant: 'acme' });
    expect(access.can(acme(['viewer']), 'orders:read', { tenant: 'acme' })).toBe(true);
    expect(access.explain(acme(['viewer']), 'orders:read', { tenant: 'globex' })).toMatchObject({
      allowed: false,
      reason: 'tenant-mismatch',
    });
    expect(access.can(who(['viewer']), 'orders:read', { tenant: 'acme' })).toBe(false); // no tenant at all
    expect(access.can(acme(['support']), 'users:read', { tenant: 'globex' })).toBe(true);
    expect(access.can(acme(['manager', 'support']), 'orders:refund', { tenant: 'globex' })).toBe(false);
  });

  it('denies unknown roles, no roles, unknown permissions and malformed principals', () => {
    expect(access.explain(who(['ghost']), 'orders:read')).toMatchObject({
      allowed: false,
      reason: 'no-grant',
    });
    expect(access.can(who([]), 'orders:read')).toBe(false);
    // @ts-expect-error an unknown permission is a compile-time error with a permissions list
    expect(access.explain(who(['root']), 'orders:delete')).toMatchObject({
      allowed: false,
      reason: 'unknown-permission',
    });
    expect(access.can({ subject: 'x' } as unknown as Principal, 'orders:read')).toBe(false);
  });

  it('denies when a condition throws', () => {
    const a = rbac({
      roles: {
        r: {
          permissions: [
            {
              permission: 'a:b',
              when: () => {
                throw new Error('bug');
              },
            },
          ],
        },
      },
    });
    expect(a.can(who(['r']), 'a:b', {})).toBe(false);
  });

  it('refuses cycles, unknown parents, bad patterns and unknown permissions at construction', () => {
    const bad: Record<string, RoleDefinition>[] = [
      {
        a: { inherits: ['b'], permissions: [] },
        b: { inherits: ['c'], permissions: [] },
        c: { inherits: ['a'], permissions: [] },
      },
      { a: { inherits: ['a'], permissions: [] } },
      { a: { inherits: ['nobody'], permissions: [] } },
      { a: { permissions: ['orders'] } },
      { a: { permissions: ['orders:read:extra'] } },
      { a: { permissions: [''] } },
      { a: {} as RoleDefinition },
    ];
    for (const roles of bad) {
      expect(() => rbac({ roles })).toThrow(expect.objectContaining({ code: 'ERR_OMS_AUTH_INVALID_OPTION' }));
    }
    expect(() => rbac({ roles: bad[0] as Record<string, RoleDefinition> })).toThrow(
      /cycle: a -> b -> c -> a/,
    );
    expect(() => rbac({ permissions: ['a:b'], roles: { r: { permissions: ['a:c' as 'a:b'] } } })).toThrow(
      /not in permissions/,
    );
  });

  it('compiles 10,000 roles with deep inheritance and still answers exactly', () => {
    const roles: Record<string, RoleDefinition> = {};
    for (let i = 0; i < 10_000; i++) {
      roles[`r${i}`] = {
        permissions: [`res${i}:read`],
        ...(i > 0 && i % 100 !== 0 ? { inherits: [`r${i - 1}`] } : {}),
      };
    }
    const big = rbac({ roles });
    expect(big.can(who(['r199']), 'res150:read')).toBe(true);
    expect(big.explain(who(['r199']), 'res99:read')).toMatchObject({ allowed: false, reason: 'no-grant' });
    expect(big.roleNames).toHaveLength(10_000);
  });
});
