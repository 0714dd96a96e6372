import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { invalidOption } from '../errors.js';
import { checkRealm, denialResponse, retryAfterSec } from '../http.js';
import type { Authorizer, Principal } from '../types.js';

declare global {
  namespace Express {
    interface Request {
      /** The verified principal `authMiddleware` let through; unset on `public` routes. */
      principal?: Principal;
    }
  }
}

/**
 * Options of `authMiddleware`.
 *
 * @example
 * import type { Authorizer } from '@oms/auth';
 * import type { AuthMiddlewareOptions } from '@oms/auth/express';
 * declare const auth: Authorizer;
 * const options: AuthMiddlewareOptions = { authorizer: auth };
 */
export interface AuthMiddlewareOptions {
  /** `authorizer({ verifier, routes, rbac })`: decides every request. */
  authorizer: Authorizer;
  /** Named in every `WWW-Authenticate` challenge (`Bearer realm="orders-api", error="invalid_token"`). */
  realm?: string;
  /** `Retry-After` of a 503 whose source did not say when to retry, in seconds. Default 5. */
  retryAfterSec?: number;
}

/**
 * Express 5 middleware running `authorize()` on every request, deny by default: the route is resolved from the
 * request path (`req.originalUrl`, so mounting under a prefix changes nothing) through the route policy, and a path
 * it does not map is 403 before any token is read. A denial answers 401 with `WWW-Authenticate` (RFC 6750,
 * `error="invalid_token"`, no description), 403 with an RFC 9457 problem+json body, or 503 with `Retry-After` when
 * the keys cannot be fetched, never 401 (`Retry-After` is the key source's own retry time when it knows it). A
 * request let through carries `req.principal` (unset on `public` routes). A client that closes its connection aborts
 * the request's wait for keys. Mount it before your routes.
 *
 * @example
 * import express from 'express';
 * import type { Authorizer } from '@oms/auth';
 * import { authMiddleware } from '@oms/auth/express';
 * declare const auth: Authorizer;
 * const app = express();
 * app.use(authMiddleware({ authorizer: auth }));
 * app.get('/v1/orders/:id', (req, res) => void res.json({ by: req.principal?.subject }));
 */
export function authMiddleware(opts: AuthMiddlewareOptions): RequestHandler {
  const auth = opts?.authorizer;
  if (typeof auth?.authorize !== 'function')
    throw invalidOption('authMiddleware needs { authorizer: authorizer({ verifier, routes, rbac }) }');
  const realm = checkRealm(opts.realm);
  const denialOptions = {
    ...(realm === undefined ? {} : { realm }),
    retryAfterSec: retryAfterSec(opts.retryAfterSec),
  };
  return (req: Request, res: Response, next: NextFunction): void => {
    // A client that hangs up stops the wait for keys its request caused (the fetch goes on for the others).
    const gone = new AbortController();
    const onClose = () => {
      if (!res.writableFinished) gone.abort(new Error('the client closed the connection'));
    };
    res.once('close', onClose);
    auth
      .authorize(
        {
          method: req.method,
          url: req.originalUrl ?? req.url,
          headers: req.headers,
          rawHeaders: req.rawHeaders,
        },
        { signal: gone.signal },
      )
      .then(
        (decision) => {
          res.off('close', onClose);
          if (gone.signal.aborted) return;
          const denial = denialResponse(decision, denialOptions);
          if (denial !== undefined) {
            res.writeHead(denial.status, denial.headers).end(denial.body);
            return;
          }
          if (decision.principal !== undefined) req.principal = decision.principal;
          next();
        },
        (e: unknown) => {
          res.off('close', onClose);
          next(e);
        },
      );
  };
}
