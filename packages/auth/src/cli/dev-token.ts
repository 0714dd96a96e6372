import { SignJWT } from 'jose';
import { invalidOption } from '../errors.js';

/** Options of a development token. */
export interface DevTokenOptions {
  roles: readonly string[];
  subject?: string;
  issuer?: string;
  audience?: string;
  tenant?: string;
  scopes?: readonly string[];
  ttlSec?: number;
}

/**
 * Signs an HS256 development token with `OMS_AUTH_DEV_SECRET` (at least 32 bytes). It refuses to run when
 * `NODE_ENV` is `production`: test tokens come from a CLI on a developer's machine, never from a route of the
 * service.
 *
 * It is not exported from the package on purpose; the `oms-auth` bin is its only caller:
 * `OMS_AUTH_DEV_SECRET=... npx oms-auth dev-token --role admin`.
 */
export async function devToken(
  o: DevTokenOptions,
  env: Readonly<Record<string, string | undefined>>,
): Promise<string> {
  if (env.NODE_ENV === 'production') {
    throw invalidOption('oms-auth dev-token refuses to run with NODE_ENV=production');
  }
  const secret = env.OMS_AUTH_DEV_SECRET ?? '';
  const key = new TextEncoder().encode(secret);
  if (key.byteLength < 32) throw invalidOption('set OMS_AUTH_DEV_SECRET to a secret of at least 32 bytes');
  const ttl = o.ttlSec ?? 3600;
  if (!Number.isSafeInteger(ttl) || ttl <= 0 || ttl > 86_400)
    throw invalidOption('--ttl must be 1..86400 seconds');
  const claims: Record<string, unknown> = { roles: [...o.roles] };
  if (o.scopes !== undefined && o.scopes.length > 0) claims.scope = o.scopes.join(' ');
  if (o.tenant !== undefined) claims.tid = o.tenant;
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(o.subject ?? 'dev-user')
    .setIssuer(o.issuer ?? env.OMS_AUTH_DEV_ISSUER ?? 'oms-dev')
    .setAudience(o.audience ?? env.OMS_AUTH_DEV_AUDIENCE ?? 'oms-dev')
    .setIssuedAt()
    .setExpirationTime(`${ttl}s`)
    .setJti(crypto.randomUUID())
    .sign(key);
}
