import { createHash } from 'node:crypto';
import { type AuthErrorCode, invalidOption, isOmsAuthError } from './errors.js';
import { Emitter } from './internal/emitter.js';
import type {
  AuthorizeRequest,
  AuthorizeResult,
  Authorizer,
  AuthorizerEvents,
  AuthorizerOptions,
  DecisionEvent,
  Principal,
  Resource,
  RoutePolicy,
  RouteResolution,
  VerifyOptions,
} from './types.js';
import { headerValue } from './verify/request.js';

const UNMAPPED = '(unmapped)';

/** The digest audit entries carry: enough to correlate, useless to replay. Computed only for listeners. */
function tokenDigest(req: AuthorizeRequest): string | undefined {
  try {
    const auth = headerValue(req.headers, 'authorization', 1 << 20);
    const token = auth?.slice(auth.indexOf(' ') + 1).trim();
    return token ? createHash('sha256').update(token).digest('hex').slice(0, 16) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Combines the route policy, verification and RBAC into one decision:
 * - 403 `ERR_OMS_AUTH_ROUTE_DENIED` for a route the policy does not map (deny by default) or a hostile path,
 *   before any token is read;
 * - 200 for a `public` route, without reading credentials;
 * - 401 for missing or invalid credentials, 503 when the key source cannot be reached;
 * - 403 `ERR_OMS_AUTH_FORBIDDEN` when no role of the principal grants the route's permission;
 * - 200 with the principal otherwise.
 *
 * It never throws for a bad request: every outcome is a result, and `on('decision')` sees each one (with a token
 * digest, never the token) for an audit log.
 *
 * @example
 * import { authorizer, createVerifier, hmacSecret, rbac, routePolicy } from '@oms/auth';
 * const auth = authorizer({
 *   verifier: createVerifier({
 *     issuer: 'https://idp.example.com/',
 *     audience: 'orders-api',
 *     algorithms: ['HS256'],
 *     keys: hmacSecret(process.env.JWT_SECRET ?? ''),
 *   }),
 *   routes: routePolicy({ 'GET /livez': 'public', 'GET /v1/orders/:id': 'orders:read' }),
 *   rbac: rbac({ roles: { clerk: { permissions: ['orders:read'] } } }),
 * });
 * const off = auth.on('decision', (d) => void d.status); // write d to the audit log
 * declare const headers: Record<string, string | string[] | undefined>;
 * const result = await auth.authorize({ method: 'GET', url: '/v1/orders/42', headers });
 * if (result.status !== 200) {
 *   // reply result.status with result.wwwAuthenticate
 * }
 * off();
 */
export function authorizer<P extends string>(opts: AuthorizerOptions<P>): Authorizer {
  const { verifier, routes, rbac } = opts ?? ({} as AuthorizerOptions<P>);
  if (typeof verifier?.verifyRequest !== 'function')
    throw invalidOption('authorizer needs verifier: createVerifier(...)');
  if (typeof routes?.resolve !== 'function') throw invalidOption('authorizer needs routes: routePolicy(...)');
  if (typeof rbac?.explain !== 'function') throw invalidOption('authorizer needs rbac: rbac(...)');
  const events = new Emitter<AuthorizerEvents>();

  const decide = async (req: AuthorizeRequest, vo?: VerifyOptions): Promise<AuthorizeResult> => {
    if (typeof req !== 'object' || req === null) {
      return deny(403, 'ERR_OMS_AUTH_ROUTE_DENIED', 'the request is not an object');
    }
    const match = resolveRoute(routes, req);
    if (match.kind === 'deny') {
      return deny(
        403,
        'ERR_OMS_AUTH_ROUTE_DENIED',
        match.reason === 'unmapped'
          ? 'no route policy maps this route'
          : 'the request path is not acceptable',
      );
    }
    if (match.kind === 'public') return { status: 200, reason: 'public route', route: match.route };
    let principal: Principal;
    try {
      principal = await verifier.verifyRequest(req, vo);
    } catch (e) {
      if (!isOmsAuthError(e)) throw e;
      const status = e.httpStatus === 503 ? 503 : e.httpStatus === 403 ? 403 : 401;
      return {
        status,
        code: e.code,
        reason: e.message,
        route: match.route,
        ...(e.wwwAuthenticate === undefined ? {} : { wwwAuthenticate: e.wwwAuthenticate }),
        ...(e.dpopNonce === undefined ? {} : { dpopNonce: e.dpopNonce }),
      };
    }
    let resource: Resource | undefined;
    try {
      resource = match.resource?.(match.params);
    } catch {
      return {
        ...deny(403, 'ERR_OMS_AUTH_FORBIDDEN', 'the route resource could not be built'),
        route: match.route,
        principal,
      };
    }
    const x = rbac.explain(principal, match.permission, resource);
    if (!x.allowed) {
      return { ...deny(403, 'ERR_OMS_AUTH_FORBIDDEN', x.detail), route: match.route, principal };
    }
    return { status: 200, principal, reason: x.detail, route: match.route };
  };

  return {
    async authorize(req, vo) {
      const result = await decide(req, vo);
      if (events.has('decision')) {
        const e: DecisionEvent = {
          method: typeof req?.method === 'string' ? req.method.slice(0, 16) : '',
          route: result.route ?? UNMAPPED,
          status: result.status,
          reason: result.reason,
          ...(result.code === undefined ? {} : { code: result.code }),
          ...(result.principal === undefined ? {} : { subject: result.principal.subject }),
        };
        const digest = typeof req === 'object' && req !== null ? tokenDigest(req) : undefined;
        events.emit('decision', digest === undefined ? e : { ...e, tokenDigest: digest });
      }
      return result;
    },
    on: (event, fn) => events.on(event, fn),
  };
}

/** The router's own match when a framework gives one, else the request target's. */
function resolveRoute<P extends string>(routes: RoutePolicy<P>, req: AuthorizeRequest): RouteResolution<P> {
  if (req.routePattern === undefined) return routes.resolve(req.method, req.url);
  const m = routes.resolve(req.method, req.routePattern);
  // The pattern's own segments (`:id`) are no parameter values: the router's are.
  return m.kind === 'deny' ? m : { ...m, params: req.routeParams ?? NO_PARAMS };
}

const NO_PARAMS: Readonly<Record<string, string>> = Object.freeze({});

function deny(status: 403, code: AuthErrorCode, reason: string): AuthorizeResult {
  return { status, code, reason, wwwAuthenticate: 'Bearer error="insufficient_scope"' };
}
