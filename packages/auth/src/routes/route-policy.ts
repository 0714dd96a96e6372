import { invalidOption } from '../errors.js';
import type { Resource, RoutePolicy, RoutePolicyOptions, RouteResolution, RouteRule } from '../types.js';
import { v } from '../validate.js';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
const PARAM = /^:[A-Za-z_][A-Za-z0-9_]*$/;
const STATIC = /^[A-Za-z0-9._~!$&'()+,;=@-]+$/;

/** What a matched pattern requires. */
type Target =
  | { readonly kind: 'public'; readonly route: string }
  | {
      readonly kind: 'permission';
      readonly route: string;
      readonly permission: string;
      readonly resource: ((params: Readonly<Record<string, string>>) => Resource) | undefined;
    };

/** One trie node: static children by segment, at most one parameter child, at most one rest wildcard. */
interface Node {
  readonly statics: Map<string, Node>;
  param: { readonly name: string; readonly node: Node } | undefined;
  rest: Target | undefined;
  target: Target | undefined;
}

const node = (): Node => ({ statics: new Map(), param: undefined, rest: undefined, target: undefined });

function parseKey(key: string): { method: string; segments: string[] } {
  const sp = key.indexOf(' ');
  const method = sp > 0 ? key.slice(0, sp) : '';
  const path = sp > 0 ? key.slice(sp + 1) : '';
  if (!METHODS.has(method)) {
    throw invalidOption(
      `route ${JSON.stringify(key)} must start with an upper-case method (${[...METHODS].join(', ')})`,
    );
  }
  if (!path.startsWith('/')) throw invalidOption(`route ${JSON.stringify(key)}: the path must start with /`);
  const segments = path === '/' ? [] : path.slice(1).split('/');
  segments.forEach((s, i) => {
    const ok =
      PARAM.test(s) ||
      (s === '*' && i === segments.length - 1) ||
      (STATIC.test(s) && s !== '.' && s !== '..');
    if (!ok) {
      throw invalidOption(
        `route ${JSON.stringify(key)}: segment ${JSON.stringify(s)} must be a literal, :param, or a final *`,
      );
    }
  });
  return { method, segments };
}

function targetOf(route: string, rule: RouteRule): Target {
  if (rule === 'public') return { kind: 'public', route };
  const r = typeof rule === 'string' ? { permission: rule, resource: undefined } : rule;
  if (
    typeof r !== 'object' ||
    r === null ||
    typeof r.permission !== 'string' ||
    !/^[^:\s]+:[^:\s]+$/.test(r.permission)
  ) {
    throw invalidOption(
      `route ${JSON.stringify(route)} must map to 'public' or a "resource:action" permission`,
    );
  }
  if (r.resource !== undefined && typeof r.resource !== 'function') {
    throw invalidOption(`route ${JSON.stringify(route)}: resource must be a function (params) => resource`);
  }
  return { kind: 'permission', route, permission: r.permission, resource: r.resource };
}

function insert(root: Node, route: string, segments: string[], target: Target): void {
  let n = root;
  for (const [i, s] of segments.entries()) {
    if (s === '*') {
      if (n.rest !== undefined)
        throw invalidOption(`route ${JSON.stringify(route)} conflicts with ${JSON.stringify(n.rest.route)}`);
      n.rest = target;
      return;
    }
    if (s.startsWith(':')) {
      const name = s.slice(1);
      if (n.param !== undefined && n.param.name !== name) {
        throw invalidOption(
          `route ${JSON.stringify(route)}: parameter :${name} conflicts with :${n.param.name} at segment ${i + 1}`,
        );
      }
      n.param ??= { name, node: node() };
      n = n.param.node;
    } else {
      let next = n.statics.get(s);
      if (next === undefined) {
        next = node();
        n.statics.set(s, next);
      }
      n = next;
    }
  }
  if (n.target !== undefined)
    throw invalidOption(`route ${JSON.stringify(route)} conflicts with ${JSON.stringify(n.target.route)}`);
  n.target = target;
}

/**
 * A route's parameters: an object with nothing inherited (no `__proto__` setter, no `constructor`, so a parameter
 * of any name is a plain own property), built by a constructor so it gets fast properties; `Object.create(null)`
 * objects start in dictionary mode and cost several times more to build.
 */
const ParamMap = function ParamMap() {} as unknown as new () => Record<string, string>;
ParamMap.prototype = Object.create(null);

const NO_PARAMS: Record<string, string> = Object.freeze(new ParamMap());

const DENY_UNMAPPED = Object.freeze({ kind: 'deny', reason: 'unmapped' } as const);
const DENY_INVALID = Object.freeze({ kind: 'deny', reason: 'invalid-path' } as const);

/** Control bytes, DEL and backslashes: never part of a path two parsers read the same way. */
const unsafeChar = (c: number): boolean => c < 0x20 || c === 0x7f || c === 0x5c;

/** A `%`-escaped segment decoded, or `undefined` when it is a bad escape or decodes to something refused. */
function decodeSegment(s: string): string | undefined {
  let d: string;
  try {
    d = decodeURIComponent(s);
  } catch {
    return undefined;
  }
  if (d === '.' || d === '..' || d.includes('/')) return undefined;
  for (let i = 0; i < d.length; i++) if (unsafeChar(d.charCodeAt(i))) return undefined;
  return d;
}

/**
 * Splits a request target into decoded segments in one pass, or `undefined` for anything a proxy and this code could
 * read differently: dot segments, encoded slashes/backslashes/dots, empty segments, control bytes, bad escapes.
 */
function segmentsOf(target: string, maxSegments: number): string[] | undefined {
  if (target.charCodeAt(0) !== 47 /* / */) return undefined;
  const segs: string[] = [];
  let start = 1;
  let escaped = false;
  for (let i = 1; ; i++) {
    const c = i < target.length ? target.charCodeAt(i) : -1;
    if (c === 47 /* / */ || c === 63 /* ? */ || c === 35 /* # */ || c === -1) {
      if (i === start) {
        // `/` alone is the root; an empty segment anywhere else (`//`, a trailing `/`) is refused
        if (c === 47 || segs.length > 0 || start > 1) return undefined;
        return segs;
      }
      if (segs.length === maxSegments) return undefined;
      let seg = target.slice(start, i);
      if (seg === '.' || seg === '..') return undefined;
      if (escaped) {
        const d = decodeSegment(seg);
        if (d === undefined) return undefined;
        seg = d;
        escaped = false;
      }
      segs.push(seg);
      if (c !== 47) return segs;
      start = i + 1;
    } else if (c === 37 /* % */) escaped = true;
    else if (unsafeChar(c)) return undefined;
  }
}

/**
 * Depth-first match, statics before the parameter before the rest wildcard. The trie bounds the search by the
 * table's depth, never by the request's path, and each step is a Map lookup: no regular expressions, no ReDoS.
 */
function match(n: Node, segs: readonly string[], i: number, params: string[]): Target | undefined {
  if (i === segs.length) return n.target; // a rest wildcard needs at least one segment
  const seg = segs[i] as string;
  const s = n.statics.get(seg);
  if (s !== undefined) {
    const t = match(s, segs, i + 1, params);
    if (t !== undefined) return t;
  }
  if (n.param !== undefined) {
    params.push(n.param.name, seg);
    const t = match(n.param.node, segs, i + 1, params);
    if (t !== undefined) return t;
    params.length -= 2;
  }
  if (n.rest !== undefined) {
    params.push('*', segs.slice(i).join('/'));
    return n.rest;
  }
  return undefined;
}

/**
 * A method + path table mapping each route to a permission or `public`, denying every route it does not map.
 * Patterns have literal segments, `:params` and a final `*`; a duplicate or conflicting pattern (`:id` against
 * `:orderId` at the same place) is an error at construction. Matching walks a trie, one Map lookup per segment.
 * Paths a proxy might read differently (`..`, `%2F`, `%2E%2E`, `//`, backslashes) are denied, never normalized.
 * HEAD falls back to the GET route.
 *
 * @example
 * import { routePolicy } from '@oms/auth';
 * const routes = routePolicy({
 *   'GET /livez': 'public',
 *   'GET /v1/orders/:id': 'orders:read',
 *   'POST /v1/orders/:id/refund': { permission: 'orders:refund', resource: (p) => ({ id: p.id }) },
 * });
 * const r = routes.resolve('GET', '/v1/orders/42?expand=lines');
 * const permission = r.kind === 'permission' ? r.permission : undefined; // 'orders:read'
 */
export function routePolicy<const P extends string = string>(
  map: Readonly<Record<string, RouteRule<P>>>,
  opts: RoutePolicyOptions = {},
): RoutePolicy<P> {
  if (typeof map !== 'object' || map === null)
    throw invalidOption('routePolicy(map) needs { "GET /path": permission }');
  const maxSegments = v.integer('maxSegments', opts.maxSegments ?? 64, { min: 1, max: 10_000 });
  const maxPathBytes = v.integer('maxPathBytes', opts.maxPathBytes ?? 8192, { min: 1 });
  const roots = new Map<string, Node>();
  const routes: string[] = [];
  const seen = new Map<string, string>();
  for (const [key, rule] of Object.entries(map)) {
    const { method, segments } = parseKey(key);
    // Two spellings of one route (`:id` vs `:orderId` as the only difference, say) are the same shape.
    const shape = `${method} /${segments.map((s) => (s.startsWith(':') ? ':' : s)).join('/')}`;
    const clash = seen.get(shape);
    if (clash !== undefined)
      throw invalidOption(`route ${JSON.stringify(key)} duplicates ${JSON.stringify(clash)}`);
    seen.set(shape, key);
    let root = roots.get(method);
    if (root === undefined) {
      root = node();
      roots.set(method, root);
    }
    insert(root, key, segments, targetOf(key, rule as RouteRule));
    routes.push(key);
  }

  const resolve = (method: string, path: string): RouteResolution<P> => {
    if (typeof method !== 'string' || typeof path !== 'string' || path.length > maxPathBytes)
      return DENY_INVALID;
    const segs = segmentsOf(path, maxSegments);
    if (segs === undefined) return DENY_INVALID;
    const root = roots.get(method) ?? roots.get(method.toUpperCase());
    const m = root === undefined ? method.toUpperCase() : method;
    const params: string[] = [];
    let t = root === undefined ? undefined : match(root, segs, 0, params);
    const getRoot = t === undefined && m === 'HEAD' ? roots.get('GET') : undefined;
    if (getRoot !== undefined) {
      params.length = 0;
      t = match(getRoot, segs, 0, params);
    }
    if (t === undefined) return DENY_UNMAPPED;
    let p: Record<string, string> = NO_PARAMS;
    if (params.length > 0) {
      p = new ParamMap();
      for (let i = 0; i < params.length; i += 2) p[params[i] as string] = params[i + 1] as string;
    }
    if (t.kind === 'public') return { kind: 'public', route: t.route, params: p };
    return t.resource === undefined
      ? { kind: 'permission', route: t.route, permission: t.permission as P, params: p }
      : {
          kind: 'permission',
          route: t.route,
          permission: t.permission as P,
          params: p,
          resource: t.resource,
        };
  };

  return { resolve, routes: Object.freeze(routes) };
}
