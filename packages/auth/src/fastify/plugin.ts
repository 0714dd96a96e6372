import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { invalidOption } from '../errors.js';
import { checkRealm, denialResponse, retryAfterSec } from '../http.js';
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
  /** `Retry-After` of a 503 whose source did not say when to retry, in seconds. Default 5. */
  retryAfterSec?: number;
}

/** What `onRoute` showed of one app: `METHOD /pattern` of each route, and whether routes came before the plugin. */
interface DeclaredRoutes {
  readonly routes: string[];
  missedEarlier: boolean;
}

const declaredRoutes = new WeakMap<object, DeclaredRoutes>();

/**
 * Runs `authorize()` on every request in an `onRequest` hook, deny by default: a route the policy does not map is
 * 403 before any token is read. The rule is the one Fastify's matched pattern (`request.routeOptions.url`) resolves
 * to, so `/v1/orders/:id` maps as declared and `request.params` feed the rule's `resource`; a request no route
 * matches is decided by its path (then Fastify answers 404). A denial answers 401 with `WWW-Authenticate` (RFC 6750,
 * `error="invalid_token"`, no description), 403 with an RFC 9457 problem+json body, or 503 with `Retry-After` when
 * the keys cannot be fetched, never 401 (`Retry-After` is the key source's own retry time when it knows it). A
 * request let through carries `request.principal` (unset on `public` routes). A client that closes its connection
 * aborts the request's wait for keys. Hooks apply to the app that registers it (not encapsulated): register it before your routes.
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
  const denialOptions = {
    ...(realm === undefined ? {} : { realm }),
    retryAfterSec: retryAfterSec(opts.retryAfterSec),
  };
  const declared = declaredRoutes.get(app) ?? { routes: [], missedEarlier: false };
  declaredRoutes.set(app, declared);
  // onRoute sees only routes declared from now on; an earlier one would escape assertEveryRouteMapped unnoticed.
  if (!app.printRoutes({ commonPrefix: false }).includes('(empty tree)')) declared.missedEarlier = true;
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) declared.routes.push(`${method} ${policyPattern(route.url)}`);
  });
  if (!app.hasRequestDecorator('principal')) app.decorateRequest('principal', undefined);
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const decision = await auth.authorize(authorizeRequestOf(request), { signal: abortOnClose(reply) });
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
  // Lets another plugin declare `dependencies: ['@oms/auth']`, and Fastify check its own version.
  [Symbol.for('plugin-meta')]: { name: '@oms/auth', fastify: '>=5.0.0' },
});

/**
 * A signal that aborts once the client closes the connection before the reply is sent, so its wait for keys stops
 * (the fetch goes on for the others). The listener goes when the response closes either way.
 */
function abortOnClose(reply: FastifyReply): AbortSignal {
  const gone = new AbortController();
  const res = reply.raw;
  res.once('close', () => {
    if (!res.writableFinished) gone.abort(new Error('the client closed the connection'));
  });
  return gone.signal;
}

function authorizeRequestOf(request: FastifyRequest): AuthorizeRequest {
  const req: AuthorizeRequest = {
    method: request.method,
    url: request.url,
    headers: request.headers,
    rawHeaders: request.raw.rawHeaders,
  };
  const url = request.routeOptions.url;
  if (url === undefined) return req;
  const pattern = policyPattern(url);
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
 * `/files/:id(^\d+).png` as the policy spells it, `/files/:id.png`: the policy has no regular expressions, so a
 * parameter's is dropped and the rule of `/files/:id.png` (or of a `:param` at that place) applies.
 */
function policyPattern(url: string): string {
  if (!url.includes('(')) return url;
  let out = '';
  let depth = 0;
  for (let i = 0; i < url.length; i++) {
    const c = url[i];
    if (depth > 0 && c === '\\') i++;
    else if (c === '(') depth++;
    else if (c === ')' && depth > 0) depth--;
    else if (depth === 0) out += c;
  }
  return out;
}

/**
 * Throws, naming every `METHOD /pattern` the app declared that `policy` does not map, so a route added without a
 * rule fails at start (or in a test) rather than answering 403 in production. Call it after `await app.ready()`
 * (routes of plugins are declared while booting). It needs `authPlugin` registered before any route, and throws
 * when it was not rather than pass unseen routes. HEAD routes Fastify adds for GET routes are mapped by the GET
 * rule; a parameter's regular expression is dropped (`/:id(^\d+)` is mapped by `/:id`).
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
  const declared = declaredOf(app);
  if (declared === undefined) {
    throw invalidOption(
      'assertEveryRouteMapped needs authPlugin registered on this app (before its routes) to see them',
    );
  }
  if (declared.missedEarlier) {
    throw invalidOption(
      'authPlugin was registered after some routes were declared, so assertEveryRouteMapped cannot see them: ' +
        'register it before any route',
    );
  }
  const unmapped = declared.routes.filter((r) => {
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
function declaredOf(app: object): DeclaredRoutes | undefined {
  for (let o: object | null = app; o !== null; o = Object.getPrototypeOf(o)) {
    const declared = declaredRoutes.get(o);
    if (declared !== undefined) return declared;
  }
  return undefined;
}
