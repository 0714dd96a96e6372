import { createHash } from 'node:crypto';
import type { CacheEntry } from './cache.js';
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
  Rbac,
  Resource,
  RoutePolicy,
  RouteResolution,
} from './types.js';
import { headerValue } from './verify/request.js';
import { cachedRequest, hasCachedRequest } from './verify/verifier.js';

const UNMAPPED = '(unmapped)';

/** The digest audit entries carry: enough to correlate, useless to replay. Computed only for listeners. */
const digestOf = (token: string): string => createHash('sha256').update(token).digest('hex').slice(0, 16);

/** The digest of the request's Authorization credential, when it has one. */
function requestDigest(req: AuthorizeRequest): string | undefined {
  try {
    const auth = headerValue(req.headers, 'authorization', 1 << 20);
    const token = auth?.slice(auth.indexOf(' ') + 1).trim();
    return token ? digestOf(token) : undefined;
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
  const cached = hasCachedRequest(verifier) ? verifier : undefined;

  return {
    authorize(req, vo) {
      if (typeof req !== 'object' || req === null) {
        return Promise.resolve(
          settle(
            events,
            req,
            deny(403, 'ERR_OMS_AUTH_ROUTE_DENIED', 'the request is not an object'),
            undefined,
          ),
        );
      }
      const match = resolveRoute(routes, req);
      if (match.kind === 'deny') {
        const reason =
          match.reason === 'unmapped'
            ? 'no route policy maps this route'
            : 'the request path is not acceptable';
        return Promise.resolve(
          settle(events, req, deny(403, 'ERR_OMS_AUTH_ROUTE_DENIED', reason), undefined),
        );
      }
      if (match.kind === 'public') {
        return Promise.resolve(
          settle(events, req, { status: 200, reason: 'public route', route: match.route }, undefined),
        );
      }
      // A cached Bearer verification decides without a promise in between; anything else verifies in full.
      const entry = cached?.[cachedRequest](req);
      if (entry !== undefined)
        return Promise.resolve(settle(events, req, permit(rbac, match, entry.principal), entry));
      return verifier.verifyRequest(req, vo).then(
        (principal) => settle(events, req, permit(rbac, match, principal), undefined),
        (e: unknown) => settle(events, req, refused(match, e), undefined),
      );
    },
    on: (event, fn) => events.on(event, fn),
  };
}

type Permission<P extends string> = Extract<RouteResolution<P>, { kind: 'permission' }>;

/** Emits the audit fact of one outcome, when someone listens, and settles with it. */
function settle(
  events: Emitter<AuthorizerEvents>,
  req: AuthorizeRequest,
  result: AuthorizeResult,
  entry: CacheEntry | undefined,
): AuthorizeResult {
  if (events.has('decision')) {
    const e: DecisionEvent = {
      method: typeof req?.method === 'string' ? req.method.slice(0, 16) : '',
      route: result.route ?? UNMAPPED,
      status: result.status,
      reason: result.reason,
      ...(result.code === undefined ? {} : { code: result.code }),
      ...(result.principal === undefined ? {} : { subject: result.principal.subject }),
    };
    // A cached verification keeps its digest: a hit hashes nothing.
    let digest: string | undefined;
    if (entry !== undefined) {
      entry.digest ??= digestOf(entry.token);
      digest = entry.digest;
    } else if (typeof req === 'object' && req !== null) digest = requestDigest(req);
    events.emit('decision', digest === undefined ? e : { ...e, tokenDigest: digest });
  }
  return result;
}

/** The RBAC decision for a verified principal on a matched route. */
function permit<P extends string>(
  rbac: Rbac<P>,
  match: Permission<P>,
  principal: Principal,
): AuthorizeResult {
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
}

/** A verification failure as an answer: 401, 403 or 503, with what the client needs to retry. */
function refused<P extends string>(match: Permission<P>, e: unknown): AuthorizeResult {
  if (!isOmsAuthError(e)) throw e;
  const status = e.httpStatus === 503 ? 503 : e.httpStatus === 403 ? 403 : 401;
  return {
    status,
    code: e.code,
    reason: e.message,
    route: match.route,
    ...(e.wwwAuthenticate === undefined ? {} : { wwwAuthenticate: e.wwwAuthenticate }),
    ...(e.dpopNonce === undefined ? {} : { dpopNonce: e.dpopNonce }),
    ...(status === 503 && e.retryAfterMs !== undefined ? { retryAfterMs: e.retryAfterMs } : {}),
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
