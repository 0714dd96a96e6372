import { type CryptoKey, importJWK } from 'jose';
import { fail } from '../errors.js';
import type { Jwk, JwsAlgorithm, ResolvedKey } from '../types.js';

/** The key type (and curve) each algorithm needs: an RS256 token never meets an EC or HMAC key. */
const NEEDS: Record<JwsAlgorithm, { kty: string; crv?: string }> = {
  HS256: { kty: 'oct' },
  HS384: { kty: 'oct' },
  HS512: { kty: 'oct' },
  RS256: { kty: 'RSA' },
  RS384: { kty: 'RSA' },
  RS512: { kty: 'RSA' },
  PS256: { kty: 'RSA' },
  PS384: { kty: 'RSA' },
  PS512: { kty: 'RSA' },
  ES256: { kty: 'EC', crv: 'P-256' },
  ES384: { kty: 'EC', crv: 'P-384' },
  ES512: { kty: 'EC', crv: 'P-521' },
  EdDSA: { kty: 'OKP', crv: 'Ed25519' },
  Ed25519: { kty: 'OKP', crv: 'Ed25519' },
};

/**
 * jose 6, which verifies every signature here, implements EdDSA with Ed25519 only (its JWS table has no Ed448, as
 * WebCrypto, its one crypto back end, has none as a standard algorithm). An Ed448 key or algorithm is refused with a
 * message saying so, rather than accepted and never matched.
 */
export const ED448_UNSUPPORTED = (what: string): string =>
  `${what} is not supported: jose 6 verifies EdDSA with Ed25519 keys only; sign with Ed25519 (or ES256) instead`;

export const KNOWN_ALGORITHMS: ReadonlySet<string> = new Set(Object.keys(NEEDS));
export const isHmac = (alg: string): boolean => alg.startsWith('HS');

/** The members that make a JWK private (RSA, EC, OKP) or secret (oct). */
const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;
export const hasPrivateMembers = (jwk: Record<string, unknown>): boolean =>
  PRIVATE_MEMBERS.some((m) => jwk[m] !== undefined);

const PUBLIC_MEMBERS: Record<string, readonly string[]> = {
  RSA: ['e', 'n'],
  EC: ['crv', 'x', 'y'],
  OKP: ['crv', 'x'],
};

/** Why a JWK cannot verify signatures, or `undefined` when it can. */
export function unusableReason(jwk: unknown): string | undefined {
  if (typeof jwk !== 'object' || jwk === null || Array.isArray(jwk)) return 'not an object';
  const k = jwk as Record<string, unknown>;
  if (typeof k.kty !== 'string' || PUBLIC_MEMBERS[k.kty] === undefined)
    return `unsupported kty ${String(k.kty)}`;
  if (hasPrivateMembers(k)) return 'it holds private key material';
  if (k.kty === 'OKP' && k.crv !== 'Ed25519') return ED448_UNSUPPORTED(String(k.crv));
  if (k.use !== undefined && k.use !== 'sig') return `use is ${String(k.use)}, not sig`;
  if (Array.isArray(k.key_ops) && !k.key_ops.includes('verify')) return 'key_ops does not include verify';
  if (k.kid !== undefined && (typeof k.kid !== 'string' || k.kid.length === 0)) return 'kid is not a string';
  if (k.alg !== undefined && (typeof k.alg !== 'string' || !KNOWN_ALGORITHMS.has(k.alg) || isHmac(k.alg))) {
    return `alg ${String(k.alg)} is not an asymmetric JWS algorithm`;
  }
  for (const m of PUBLIC_MEMBERS[k.kty] ?? []) {
    if (typeof k[m] !== 'string') return `member ${m} is missing`;
  }
  return undefined;
}

/** One verification key of a set. Kept across refreshes while its public members stay the same. */
export class KeyRecord {
  retired = false;
  readonly kid: string | undefined;
  readonly #jwk: Jwk;
  readonly #resolved = new Map<string, Promise<ResolvedKey>>();

  constructor(
    jwk: Jwk,
    /** The canonical public members: equal fingerprints mean the same key. */
    readonly fingerprint: string,
  ) {
    this.#jwk = jwk;
    this.kid = jwk.kid;
  }

  static from(jwk: Jwk): KeyRecord {
    const members = [...(PUBLIC_MEMBERS[jwk.kty] ?? []), 'kty', 'kid', 'alg'].sort();
    return new KeyRecord(jwk, JSON.stringify(members.map((m) => jwk[m] ?? null)));
  }

  supports(alg: JwsAlgorithm): boolean {
    const need = NEEDS[alg];
    const jwk = this.#jwk;
    return (
      need.kty === jwk.kty &&
      (need.crv === undefined || need.crv === jwk.crv) &&
      (jwk.alg === undefined || jwk.alg === alg || (alg === 'Ed25519' && jwk.alg === 'EdDSA'))
    );
  }

  resolve(alg: JwsAlgorithm): Promise<ResolvedKey> {
    let p = this.#resolved.get(alg);
    if (p === undefined) {
      p = importJWK({ ...this.#jwk, alg: undefined }, alg).then(
        (key) => ({ key: key as CryptoKey, handle: this }),
        (cause: unknown) => {
          this.#resolved.delete(alg);
          throw fail(
            'ERR_OMS_AUTH_KEY_NOT_FOUND',
            `key ${this.kid ?? '(no kid)'} could not be imported`,
            cause,
          );
        },
      );
      this.#resolved.set(alg, p);
    }
    return p;
  }
}

/** An immutable set of keys, indexed by kid. */
export class KeySet {
  readonly #byKid = new Map<string, KeyRecord[]>();
  readonly records: readonly KeyRecord[];

  constructor(records: readonly KeyRecord[]) {
    this.records = records;
    for (const r of records) {
      if (r.kid === undefined) continue;
      const list = this.#byKid.get(r.kid);
      if (list) list.push(r);
      else this.#byKid.set(r.kid, [r]);
    }
  }

  /** The one key for `alg` and `kid`; without a kid, only an unambiguous match counts. */
  find(alg: JwsAlgorithm, kid: string | undefined): KeyRecord | undefined | 'ambiguous' {
    const candidates = kid === undefined ? this.records : (this.#byKid.get(kid) ?? []);
    let found: KeyRecord | undefined;
    for (const r of candidates) {
      if (!r.supports(alg)) continue;
      if (found !== undefined) return 'ambiguous';
      found = r;
    }
    return found;
  }

  /**
   * Builds the next set from a document, reusing records of unchanged keys (so their cached verifications stay)
   * and retiring the rest. Returns the new set and how many records were retired.
   */
  static next(previous: KeySet | undefined, jwks: readonly Jwk[]): { set: KeySet; retired: number } {
    const old = new Map((previous?.records ?? []).map((r) => [r.fingerprint, r]));
    const records: KeyRecord[] = [];
    for (const jwk of jwks) {
      const fresh = KeyRecord.from(jwk);
      const kept = old.get(fresh.fingerprint);
      old.delete(fresh.fingerprint);
      records.push(kept ?? fresh);
    }
    for (const r of old.values()) r.retired = true;
    return { set: new KeySet(records), retired: old.size };
  }
}

export function keyNotFound(alg: string, kid: string | undefined, found: 'ambiguous' | undefined) {
  return found === 'ambiguous'
    ? fail('ERR_OMS_AUTH_KEY_NOT_FOUND', `the token has no kid and several keys fit ${alg}`)
    : fail(
        'ERR_OMS_AUTH_KEY_NOT_FOUND',
        `no ${alg} key${kid === undefined ? '' : ' with that kid'} in the key set`,
      );
}
