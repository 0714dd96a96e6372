import { invalidOption } from '../errors.js';
import type {
  ConditionalGrant,
  Explanation,
  Principal,
  Rbac,
  RbacOptions,
  Resource,
  RoleDefinition,
} from '../types.js';

/** One grant of a role, with the role it came from (inherited grants keep their origin for `explain`). */
interface Grant {
  readonly pattern: string;
  readonly from: string;
  readonly crossTenant: boolean;
  readonly when: ConditionalGrant<string>['when'] | undefined;
  readonly name: string | undefined;
}

/**
 * One grant as a role holds it, with the explanations it gives, built the first time each is needed (a check that
 * passes then allocates nothing).
 */
interface RoleGrant {
  readonly grant: Grant;
  allowed: Explanation | undefined;
  tenantMismatch: Explanation | undefined;
  needsResource: Explanation | undefined;
  conditionFalse: Explanation | undefined;
}

/** A role after construction: every grant it has, own and inherited, indexed by the exact pattern string. */
type CompiledRole = ReadonlyMap<string, readonly RoleGrant[]>;

const PERMISSION = /^(\*|[A-Za-z0-9_.-]+):(\*|[A-Za-z0-9_.-]+)$/;

function checkPattern(role: string, p: unknown): string {
  if (p === '*') return p;
  if (typeof p !== 'string' || !PERMISSION.test(p)) {
    throw invalidOption(
      `role ${JSON.stringify(role)}: permission ${JSON.stringify(p)} must be "resource:action", with * as either part, or "*"`,
    );
  }
  return p;
}

/** Rejects unknown inherited roles and cycles, naming the cycle, before anything is compiled. */
function checkGraph(roles: Readonly<Record<string, RoleDefinition<string>>>): void {
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, path: string[]): void => {
    const s = state.get(name);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(name)), name].join(' -> ');
      throw invalidOption(`role inheritance has a cycle: ${cycle}`);
    }
    state.set(name, 'visiting');
    for (const parent of roles[name]?.inherits ?? []) {
      if (!Object.hasOwn(roles, parent)) {
        throw invalidOption(`role ${JSON.stringify(name)} inherits unknown role ${JSON.stringify(parent)}`);
      }
      visit(parent, [...path, name]);
    }
    state.set(name, 'done');
  };
  for (const name of Object.keys(roles)) visit(name, []);
}

function compile(
  roles: Readonly<Record<string, RoleDefinition<string>>>,
  known: ReadonlySet<string> | undefined,
) {
  const own = new Map<string, Grant[]>();
  for (const [name, def] of Object.entries(roles)) {
    if (typeof def !== 'object' || def === null || !Array.isArray(def.permissions)) {
      throw invalidOption(`role ${JSON.stringify(name)} needs { permissions: [...] }`);
    }
    if (def.inherits !== undefined && !Array.isArray(def.inherits)) {
      throw invalidOption(`role ${JSON.stringify(name)}: inherits must be an array of role names`);
    }
    const crossTenant = def.crossTenant === true;
    own.set(
      name,
      def.permissions.map((g) => {
        const conditional = typeof g === 'object' && g !== null;
        const pattern = checkPattern(name, conditional ? (g as ConditionalGrant<string>).permission : g);
        if (known !== undefined && !pattern.includes('*') && !known.has(pattern)) {
          throw invalidOption(`role ${JSON.stringify(name)} grants ${pattern}, which is not in permissions`);
        }
        const when = conditional ? (g as ConditionalGrant<string>).when : undefined;
        if (conditional && typeof when !== 'function') {
          throw invalidOption(
            `role ${JSON.stringify(name)}: the grant of ${pattern} needs a when(principal, resource) function`,
          );
        }
        return {
          pattern,
          from: name,
          crossTenant,
          when,
          name: conditional ? (g as ConditionalGrant<string>).name : undefined,
        };
      }),
    );
  }
  // Flatten inheritance once (memoized, the graph is acyclic): a check then never walks the hierarchy.
  const flat = new Map<string, Grant[]>();
  const grantsOf = (name: string): Grant[] => {
    const done = flat.get(name);
    if (done) return done;
    const seen = new Set<Grant>(own.get(name));
    for (const parent of roles[name]?.inherits ?? []) for (const g of grantsOf(parent)) seen.add(g);
    const list = [...seen];
    flat.set(name, list);
    return list;
  };
  const compiled = new Map<string, CompiledRole>();
  for (const name of Object.keys(roles)) {
    const index = new Map<string, RoleGrant[]>();
    for (const grant of grantsOf(name)) {
      const rg: RoleGrant = {
        grant,
        allowed: undefined,
        tenantMismatch: undefined,
        needsResource: undefined,
        conditionFalse: undefined,
      };
      const list = index.get(grant.pattern);
      if (list) list.push(rg);
      else index.set(grant.pattern, [rg]);
    }
    compiled.set(name, index);
  }
  return compiled;
}

const deny = (reason: Explanation['reason'], detail: string, role?: string, grant?: string): Explanation => {
  const base = { allowed: false, reason, detail };
  return Object.freeze(
    role === undefined ? base : { ...base, role, ...(grant === undefined ? {} : { grant }) },
  );
};

/** The concrete permissions `rbac()` was told about, so an unknown one is an error; undefined when not listed. */
function knownPermissions(permissions: readonly string[] | undefined): Set<string> | undefined {
  if (permissions === undefined) return undefined;
  if (!Array.isArray(permissions))
    throw invalidOption('permissions must be an array of "resource:action" strings');
  for (const p of permissions)
    if (checkPattern('(permissions)', p).includes('*')) {
      throw invalidOption(`permissions lists concrete permissions; ${p} is a pattern`);
    }
  return new Set(permissions);
}

/**
 * One grant of one role, judged for a principal and resource. Each outcome's explanation is built once per grant
 * and kept, so a hot check allocates nothing.
 */
function judge(
  rg: RoleGrant,
  role: string,
  principal: Principal,
  resource: Resource | undefined,
  foreign: boolean,
): Explanation {
  const g = rg.grant;
  if (foreign && !g.crossTenant) {
    rg.tenantMismatch ??= deny(
      'tenant-mismatch',
      `role ${role} grants ${g.pattern} only within the principal's tenant`,
      role,
      g.pattern,
    );
    return rg.tenantMismatch;
  }
  if (g.when !== undefined) {
    if (resource === undefined) {
      rg.needsResource ??= deny(
        'condition-needs-resource',
        `role ${role} grants ${g.pattern} only on a resource`,
        role,
        g.pattern,
      );
      return rg.needsResource;
    }
    let ok = false;
    try {
      ok = g.when(principal, resource) === true;
    } catch {
      ok = false; // a throwing condition denies; it never grants
    }
    if (!ok) {
      rg.conditionFalse ??= deny(
        'condition-false',
        `role ${role} grants ${g.pattern} only when ${g.name ?? 'its condition'} holds`,
        role,
        g.pattern,
      );
      return rg.conditionFalse;
    }
  }
  rg.allowed ??= Object.freeze({
    allowed: true,
    reason: 'granted',
    role,
    grant: g.pattern,
    detail: `${g.from === role ? role : `${role} (inherited from ${g.from})`} grants ${g.pattern}`,
  });
  return rg.allowed;
}

/**
 * Role-based access control with inheritance, `resource:action` permissions with `*` wildcards, conditional
 * grants (an owner may update their own order), and tenant isolation: a principal never passes a check on a
 * resource of another tenant unless a role with `crossTenant: true` grants it.
 *
 * Everything is compiled at construction (cycles and unknown roles are errors then); a check looks up at most
 * four patterns per role the principal holds, so the number of roles defined does not slow it.
 * List `permissions` to get compile-time errors for unknown permission strings.
 *
 * @example
 * import { rbac, type Principal } from '@oms/auth';
 * const access = rbac({
 *   permissions: ['orders:read', 'orders:update', 'orders:refund'],
 *   roles: {
 *     clerk: { permissions: ['orders:read', { permission: 'orders:update', when: (p, r) => r.owner === p.subject }] },
 *     manager: { inherits: ['clerk'], permissions: ['orders:*'] },
 *   },
 * });
 * declare const principal: Principal;
 * const mayUpdate = access.can(principal, 'orders:update', { owner: 'user-1', tenant: 'acme' });
 * const why = access.explain(principal, 'orders:refund').detail;
 */
export function rbac<const P extends string = string>(opts: RbacOptions<P>): Rbac<P> {
  if (typeof opts !== 'object' || opts === null || typeof opts.roles !== 'object' || opts.roles === null) {
    throw invalidOption('rbac(options) needs { roles: { [name]: { inherits?, permissions } } }');
  }
  const roles = opts.roles as Readonly<Record<string, RoleDefinition<string>>>;
  const known = knownPermissions(opts.permissions);
  checkGraph(roles);
  const compiled = compile(roles, known);

  // The patterns that can grant a permission, per permission string: built once, not per check.
  const candidatesOf = new Map<string, readonly string[]>();
  const candidates = (permission: string, colon: number): readonly string[] => {
    let c = candidatesOf.get(permission);
    if (c === undefined) {
      c = ['*', permission, `${permission.slice(0, colon)}:*`, `*:${permission.slice(colon + 1)}`];
      if (candidatesOf.size >= 4096) candidatesOf.clear(); // bounded, whatever callers pass
      candidatesOf.set(permission, c);
    }
    return c;
  };

  const explain = (principal: Principal, permission: string, resource?: Resource): Explanation => {
    const colon = typeof permission === 'string' ? permission.indexOf(':') : -1;
    if (colon <= 0 || (known !== undefined && !known.has(permission))) {
      return deny('unknown-permission', `${JSON.stringify(permission)} is not a known permission`);
    }
    const patterns = candidates(permission, colon);
    const roleNames = Array.isArray(principal?.roles) ? principal.roles : [];
    const foreign = resource?.tenant !== undefined && resource.tenant !== principal.tenant;
    let refusal: Explanation | undefined;
    for (const role of roleNames) {
      const index = compiled.get(role);
      if (index === undefined) continue;
      for (const c of patterns) {
        const grants = index.get(c);
        if (grants === undefined) continue;
        for (const rg of grants) {
          const x = judge(rg, role, principal, resource, foreign);
          if (x.allowed) return x;
          refusal ??= x;
        }
      }
    }
    return refusal ?? deny('no-grant', `no role of the principal grants ${permission}`);
  };

  return {
    roleNames: Object.freeze(Object.keys(roles)),
    can: (principal, permission, resource) => explain(principal, permission, resource).allowed,
    explain,
  };
}
