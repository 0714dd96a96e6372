import type { Claims, Principal } from '../types.js';

const EMPTY: readonly string[] = Object.freeze([]);

/** A claim as a list of non-empty strings: an array of them is used as is (it is frozen with the claims). */
function strings(v: unknown): readonly string[] {
  if (typeof v === 'string') {
    if (v.length === 0) return EMPTY;
    if (!v.includes(' ')) return [v];
    return v.split(' ').filter((s) => s.length > 0);
  }
  if (!Array.isArray(v)) return EMPTY;
  for (let i = 0; i < v.length; i++) {
    const s = v[i];
    if (typeof s !== 'string' || s.length === 0) {
      return v.filter((x): x is string => typeof x === 'string' && x.length > 0);
    }
  }
  return v as string[];
}

/**
 * The default claims-to-principal mapping: `sub`, `roles` (array or space-separated string), `scope` (RFC 8693,
 * space-separated) or `scp` (array or string), and `tid` or `tenant`. A token without a string `sub` is refused.
 *
 * @example
 * import { defaultPrincipal } from '@oms/auth';
 * const p = defaultPrincipal({ sub: 'u1', roles: ['admin'], scope: 'orders:read orders:write' });
 * // p.scopes is ['orders:read', 'orders:write']
 */
export function defaultPrincipal(claims: Claims): Principal {
  const { sub } = claims;
  if (typeof sub !== 'string' || sub.length === 0) throw new TypeError('the token has no string "sub" claim');
  const tenant =
    typeof claims.tid === 'string'
      ? claims.tid
      : typeof claims.tenant === 'string'
        ? claims.tenant
        : undefined;
  const roles = strings(claims.roles);
  const scopes = strings(claims.scope ?? claims.scp);
  return tenant === undefined
    ? { subject: sub, roles, scopes, claims }
    : { subject: sub, roles, scopes, tenant, claims };
}

/** Freezes a parsed JSON value in place; cached principals are shared, so no caller may change one. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

/** Freezes an object and the objects it holds directly (a principal's role and scope lists), not deeper. */
export function shallowFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const k in value) {
      const v = value[k];
      if (Array.isArray(v)) Object.freeze(v);
    }
    Object.freeze(value);
  }
  return value;
}
