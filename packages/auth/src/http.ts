import type { AuthorizeResult } from './types.js';

/** What to answer a denied request with: status, headers and an RFC 9457 problem body. */
export interface DenialResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  /** `application/problem+json`; `type` is a stable URN per code, and no detail that leaks which check failed. */
  readonly body: string;
}

const TITLES: Record<number, string> = {
  401: 'Unauthorized',
  403: 'Forbidden',
  503: 'Service Unavailable',
};

/**
 * The HTTP answer to a decision that is not 200: `WWW-Authenticate` (RFC 6750 / RFC 9449), `DPoP-Nonce` when a
 * nonce is required, `Retry-After` for a 503, and a problem+json body carrying the code. Framework glue calls it so
 * every service answers the same way. Returns `undefined` for a 200.
 *
 * @example
 * import { createServer } from 'node:http';
 * import { denialResponse, type Authorizer } from '@oms/auth';
 * declare const auth: Authorizer;
 * createServer(async (req, res) => {
 *   const decision = await auth.authorize({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers });
 *   const denial = denialResponse(decision);
 *   if (denial) return void res.writeHead(denial.status, denial.headers).end(denial.body);
 *   res.end('ok');
 * });
 */
export function denialResponse(result: AuthorizeResult): DenialResponse | undefined {
  if (result.status === 200) return undefined;
  const headers: Record<string, string> = {
    'content-type': 'application/problem+json',
    'cache-control': 'no-store',
  };
  if (result.wwwAuthenticate !== undefined) headers['www-authenticate'] = result.wwwAuthenticate;
  if (result.dpopNonce !== undefined) headers['dpop-nonce'] = result.dpopNonce;
  if (result.status === 503) headers['retry-after'] = '5';
  const code = result.code ?? 'ERR_OMS_AUTH_FORBIDDEN';
  const body = JSON.stringify({
    type: `urn:oms:auth:${code.slice('ERR_OMS_AUTH_'.length).toLowerCase().replaceAll('_', '-')}`,
    title: TITLES[result.status] ?? 'Error',
    status: result.status,
    code,
  });
  return { status: result.status, headers, body };
}
