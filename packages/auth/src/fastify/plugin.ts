import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { invalidOption } from '../errors.js';
import { checkRealm, denialResponse } from '../http.js';
import type { AuthorizeRequest, Authorizer, Principal, RoutePolicy } from '../types.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** The verified principal `authPlugin` let through; unset on `public` routes. */
    principal?: Principal;
  }
}

/**
 * Options of `authPlugin`.
 *
 * @example
 * import type { Authorizer } from '@oms/auth';
 * import type { AuthPluginOptions } from '@oms/auth/fastify';
 * declare const auth: Authorizer;
 * const options: AuthPluginOptions = { authorizer: auth };
 */
export interface AuthPluginOptions {
  /** `authorizer({ verifier, routes, rbac })`: decides every request. */
  authorizer: Authorizer;
  /** Named in every `WWW-Authenticate` challenge (`Bearer realm="orders-api", error="invalid_token"`). */
  realm?: string;
}

/** `METHOD /pattern` of every route each app declared after `authPlugin`, seen through `onRoute`. */
const declaredRoutes = new WeakMap<object, string[]>();

/**
 * Runs `authorize()` on every request in an `onRequest` hook, deny by default: a route the policy does not map is
 * 403 before any token is read. The rule is the one Fastify's matched pattern (`request.routeOptions.url`) resolves
 * to, so `/v1/orders/:id` maps as declared and `request.params` feed the rule's `resource`; a request no route
 * matches is decided by its path (then Fastify answers 404). A denial answers 401 with `WWW-Authenticate` (RFC 6750,
 * `error="invalid_token"`, no description), 403 with an RFC 9457 problem+json body, or 503 with `Retry-After` when
 * the keys cannot be fetched, never 401. A request let through carries `request.principal` (unset on `public`
 * routes). Hooks apply to the app that registers it (not encapsulated): register it before your routes.
 *
 * @example
 * import Fastify from 'fastify';
 * import type { Authorizer } from '@oms/auth';
 * import { authPlugin } from '@oms/auth/fastify';
 * declare const auth: Authorizer;
 * const app = Fastify();
 * await app.register(authPlugin, { authorizer: auth });
 * app.get('/v1/orders/:id', async (request) => ({ by: request.principal?.subject }));
 */
export const authPlugin: FastifyPluginAsync<AuthPluginOptions> = async (app, opts) => {
  const auth = opts?.authorizer;
  if (typeof auth?.authorize !== 'function')
    throw invalidOption('authPlugin needs { authorizer: authorizer({ verifier, routes, rbac }) }');
  const realm = checkRealm(opts.realm);
  const denialOptions = realm === undefined ? undefined : { realm };
  const routes: string[] = declaredRoutes.get(app) ?? [];
  declaredRoutes.set(app, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push(`${method} ${route.url}`);
  });
  if (!app.hasRequestDecorator('principal')) app.decorateRequest('principal', undefined);
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const decision = await auth.authorize(authorizeRequestOf(request));
    const denial = denialResponse(decision, denialOptions);
    // A Buffer, so Fastify sends the content type as given (a string would gain `; charset=utf-8`).
    if (denial !== undefined)
      return reply.code(denial.status).headers(denial.headers).send(Buffer.from(denial.body));
    if (decision.principal !== undefined) request.principal = decision.principal;
  });
};

// What fastify-plugin sets, without depending on it: the hooks and the decorator belong to the registering app.
Object.assign(authPlugin, {
  [Symbol.for('skip-override')]: true,
  [Symbol.for('fastify.display-name')]: '@oms/auth',
});

function authorizeRequestOf(request: FastifyRequest): AuthorizeRequest {
  const req: AuthorizeRequest = {
    method: request.method,
    url: request.url,
    headers: request.headers,
    rawHeaders: request.raw.rawHeaders,
  };
  const pattern = request.routeOptions.url;
  if (pattern === undefined) return req;
  const params = request.params;
  return {
    ...req,
    routePattern: pattern,
    ...(typeof params === 'object' && params !== null
      ? { routeParams: params as Readonly<Record<string, string>> }
      : {}),
  };
}

/**
 * Throws, naming every `METHOD /pattern` the app declared that `policy` does not map, so a route added without a
 * rule fails at start (or in a test) rather than answering 403 in production. Call it after `await app.ready()`
 * (routes of plugins are declared while booting); it sees the routes declared after `authPlugin` was registered.
 * HEAD routes Fastify adds for GET routes are mapped by the GET rule.
 *
 * @example
 * import Fastify from 'fastify';
 * import { routePolicy, type Authorizer } from '@oms/auth';
 * import { assertEveryRouteMapped, authPlugin } from '@oms/auth/fastify';
 * declare const auth: Authorizer;
 * const routes = routePolicy({ 'GET /livez': 'public', 'GET /v1/orders/:id': 'orders:read' });
 * const app = Fastify();
 * await app.register(authPlugin, { authorizer: auth });
 * app.get('/livez', async () => 'ok');
 * app.get('/v1/orders/:id', async () => ({}));
 * await app.ready();
 * assertEveryRouteMapped(app, routes); // throws for a route without a rule
 */
export function assertEveryRouteMapped(app: FastifyInstance, policy: Pick<RoutePolicy, 'resolve'>): void {
  if (typeof policy?.resolve !== 'function')
    throw invalidOption('assertEveryRouteMapped needs the routePolicy(...) the authorizer uses');
  const routes = routesOf(app);
  if (routes === undefined) {
    throw invalidOption(
      'assertEveryRouteMapped needs authPlugin registered on this app (before its routes) to see them',
    );
  }
  const unmapped = routes.filter((r) => {
    const sp = r.indexOf(' ');
    return policy.resolve(r.slice(0, sp), r.slice(sp + 1)).kind === 'deny';
  });
  if (unmapped.length > 0) {
    throw invalidOption(
      `the route policy maps no rule for ${unmapped.length} declared route(s): ${unmapped.join(', ')}; ` +
        `add each to routePolicy({ ... }) as 'public' or a permission`,
    );
  }
}

/** An encapsulated child inherits from its parent, so the routes are found from any instance of the app. */
function routesOf(app: object): readonly string[] | undefined {
  for (let o: object | null = app; o !== null; o = Object.getPrototypeOf(o)) {
    const routes = declaredRoutes.get(o);
    if (routes !== undefined) return routes;
  }
  return undefined;
}
