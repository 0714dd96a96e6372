import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';

/** The issuer of development tokens. */
export const DEV_ISSUER = 'https://oms-reference.local';
/** The audience the app accepts. */
export const DEV_AUDIENCE = 'oms-reference';

/** A role of the reference app. */
export type Role = 'customer' | 'support' | 'admin';
export const ROLES: readonly Role[] = ['customer', 'support', 'admin'];

export interface DevKeys {
  privateJwk: JWK;
  jwks: { keys: JWK[] };
}

/**
 * Creates `<dataDir>/keys/{private.jwk.json,jwks.json}` (an ES256 pair) on first run and returns them. The
 * private key file is written with mode 0600. Safe to call on every start.
 */
export async function ensureDevKeys(dataDir: string): Promise<DevKeys> {
  const dir = join(dataDir, 'keys');
  const privPath = join(dir, 'private.jwk.json');
  const jwksPath = join(dir, 'jwks.json');
  try {
    const [priv, jwks] = await Promise.all([readFile(privPath, 'utf8'), readFile(jwksPath, 'utf8')]);
    return { privateJwk: JSON.parse(priv) as JWK, jwks: JSON.parse(jwks) as { keys: JWK[] } };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  await mkdir(dir, { recursive: true });
  const { privateKey, publicKey } = await generateKeyPair('ES256', { extractable: true });
  const pub = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(pub);
  const privateJwk: JWK = { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
  const jwks = { keys: [{ ...pub, kid, alg: 'ES256', use: 'sig' }] };
  // wx: two processes starting at once never overwrite each other's pair; the loser reads the winner's
  try {
    await writeFile(privPath, JSON.stringify(privateJwk), { mode: 0o600, flag: 'wx' });
    await writeFile(jwksPath, JSON.stringify(jwks), { flag: 'wx' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    return ensureDevKeys(dataDir);
  }
  return { privateJwk, jwks };
}

export interface MintOptions {
  dataDir: string;
  role: Role;
  /** Default `<role>-1`. */
  subject?: string;
  /** Default 3600. */
  ttlSec?: number;
}

/** Signs a development token with the local key (never exposed as a route). */
export async function mintDevToken({ dataDir, role, subject, ttlSec = 3600 }: MintOptions): Promise<string> {
  if (!ROLES.includes(role)) throw new Error(`role must be one of ${ROLES.join(', ')} (got ${String(role)})`);
  if (!Number.isInteger(ttlSec) || ttlSec < 1)
    throw new Error(`ttlSec must be an integer >= 1 (got ${ttlSec})`);
  const { privateJwk } = await ensureDevKeys(dataDir);
  const key = await importJWK(privateJwk, 'ES256');
  return new SignJWT({ roles: [role] })
    .setProtectedHeader({ alg: 'ES256', kid: privateJwk.kid as string, typ: 'JWT' })
    .setIssuer(DEV_ISSUER)
    .setAudience(DEV_AUDIENCE)
    .setSubject(subject ?? `${role}-1`)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSec)
    .sign(key);
}
