import { jwtVerify } from 'jose';
import { type CacheEntry, VerificationCache } from '../cache.js';
import { fail, invalidOption, isOmsAuthError } from '../errors.js';
import { type Clock, systemClock } from '../internal/clock.js';
import { Emitter } from '../internal/emitter.js';
import { ED448_UNSUPPORTED, isHmac, KNOWN_ALGORITHMS } from '../keys/key-set.js';
import type {
  Claims,
  CredentialLocations,
  DpopVerifier,
  JwsAlgorithm,
  KeySource,
  Principal,
  RequestLike,
  RevocationList,
  RevokeTarget,
  Verifier,
  VerifierEvents,
  VerifierOptions,
  VerifyOptions,
} from '../types.js';
import { stringList, v } from '../validate.js';
import { fromJose, type HeaderRules, type JwsHeader, normalizeTyp, parseHeader } from './header.js';
import { deepFreeze, defaultPrincipal, shallowFreeze } from './principal.js';
import { type Credentials, readCredentials } from './request.js';

/** Everything a verification needs, checked once at construction. */
interface Settings {
  readonly issuer: string[];
  readonly audience: string[];
  readonly keys: KeySource;
  readonly algorithms: JwsAlgorithm[];
  readonly algorithmSet: ReadonlySet<string>;
  readonly clockToleranceSec: number;
  readonly maxTokenBytes: number;
  readonly typ: string | undefined;
  readonly requiredClaims: string[];
  readonly toPrincipal: (claims: Claims) => Principal;
  readonly credentials: CredentialLocations;
  readonly dpop: DpopVerifier | undefined;
  readonly revocations: RevocationList | undefined;
  readonly clock: Clock;
}

/** A verified token: its principal, and the key binding DPoP needs. */
interface Verified {
  readonly principal: Principal;
  readonly jkt: string | undefined;
  readonly cached: boolean;
}

const jktOf = (claims: Claims): string | undefined => {
  const cnf = claims.cnf as { jkt?: unknown } | undefined;
  return typeof cnf === 'object' && cnf !== null && typeof cnf.jkt === 'string' ? cnf.jkt : undefined;
};

/**
 * The authorizer's synchronous look-up of a cached Bearer verification, package-internal (not exported from the
 * entry point): a cache hit then decides a request without a single promise. A miss answers `undefined` and the
 * caller takes `verifyRequest`, which reports every failure.
 */
export const cachedRequest: unique symbol = Symbol('@oms/auth cachedRequest');

/** What `cachedRequest` answers: the cache entry (its principal and token). */
export interface CachedVerifier {
  [cachedRequest](req: RequestLike): CacheEntry | undefined;
}

export const hasCachedRequest = (v: Verifier): v is Verifier & CachedVerifier =>
  typeof (v as Partial<CachedVerifier>)[cachedRequest] === 'function';

class JwtVerifier implements Verifier, CachedVerifier {
  readonly #s: Settings;
  readonly #cache: VerificationCache | undefined;
  readonly #events = new Emitter<VerifierEvents>();
  readonly #offs: (() => void)[];
  readonly #headerRules: HeaderRules;
  /** Accepted protected headers by their encoded segment: an issuer's tokens share a handful. */
  readonly #headers = new Map<string, JwsHeader>();

  constructor(s: Settings, cache: VerificationCache | undefined) {
    this.#s = s;
    this.#cache = cache;
    this.#headerRules = { algorithms: s.algorithmSet, typ: s.typ, refusedTyp: 'dpop+jwt', what: 'the token' };
    this.#offs = [
      s.keys.on('fetch', (e) => this.#events.emit('jwksFetch', e)),
      s.keys.on('retired', () => this.#cache?.dropRetired()),
    ];
    // A revoked token's entries are freed at once (a hit would refuse them anyway).
    if (s.revocations !== undefined && cache !== undefined) {
      this.#offs.push(
        s.revocations.on('revoked', (r) =>
          cache.revoke(r.kind === 'jti' ? { jti: r.value } : { subject: r.value }),
        ),
      );
    }
  }

  get cacheSize(): number {
    return this.#cache?.size ?? 0;
  }

  verify(token: string, opts?: VerifyOptions): Promise<Principal> {
    const hit = this.#hit(token);
    if (hit !== undefined) return Promise.resolve(hit.principal);
    return this.#full(token, undefined, undefined, opts?.signal);
  }

  verifyRequest(req: RequestLike, opts?: VerifyOptions): Promise<Principal> {
    let creds: Credentials;
    try {
      if (typeof req !== 'object' || req === null)
        throw fail('ERR_OMS_AUTH_MALFORMED', 'the request is not an object');
      creds = readCredentials(req.headers, this.#s.credentials, this.#s.maxTokenBytes, req.rawHeaders);
    } catch (e) {
      if (this.#events.has('verification')) this.#emit(e, false, performance.now());
      return Promise.reject(e);
    }
    if (creds.scheme === 'bearer') {
      const hit = this.#hit(creds.token);
      if (hit !== undefined) return Promise.resolve(hit.principal);
    }
    return this.#full(creds.token, creds, req, opts?.signal);
  }

  [cachedRequest](req: RequestLike): CacheEntry | undefined {
    if (this.#cache === undefined) return undefined;
    let creds: Credentials;
    try {
      creds = readCredentials(req.headers, this.#s.credentials, this.#s.maxTokenBytes, req.rawHeaders);
    } catch {
      return undefined; // verifyRequest reports it
    }
    return creds.scheme === 'bearer' ? this.#hit(creds.token) : undefined;
  }

  revoke(target: RevokeTarget): number {
    if (typeof target !== 'object' || target === null)
      throw invalidOption('revoke() needs { jti } or { subject }');
    return this.#cache?.revoke(target) ?? 0;
  }

  on<K extends keyof VerifierEvents>(event: K, fn: (e: VerifierEvents[K]) => void): () => void {
    return this.#events.on(event, fn);
  }

  async close(): Promise<void> {
    for (const off of this.#offs) off();
    this.#cache?.clear();
    this.#events.clear();
    await this.#s.keys.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * A cached verification a Bearer presentation may use: not DPoP-bound, not revoked. Synchronous and
   * allocation-free unless someone listens to `verification`.
   */
  #hit(token: unknown): CacheEntry | undefined {
    const cache = this.#cache;
    if (cache === undefined || typeof token !== 'string' || token.length > this.#s.maxTokenBytes)
      return undefined;
    const now = this.#s.clock.now();
    const e = cache.get(token, now);
    if (e === undefined || e.jkt !== undefined) return undefined;
    // A revoked token takes the full path, which refuses it with its code.
    if (this.#s.revocations?.check(e.principal, now) !== undefined) return undefined;
    if (this.#events.has('verification')) this.#emit('ok', true, performance.now());
    return e;
  }

  /** Everything but a Bearer cache hit: one `verification` event per call, when someone listens. */
  async #full(
    token: unknown,
    creds: Credentials | undefined,
    req: RequestLike | undefined,
    signal: AbortSignal | undefined,
  ): Promise<Principal> {
    const t0 = this.#events.has('verification') ? performance.now() : -1;
    try {
      const verified = await this.#verifyToken(token, signal);
      if (creds?.scheme === 'dpop') await this.#checkProof(verified, creds, req as RequestLike, signal);
      else if (verified.jkt !== undefined) {
        throw fail(
          'ERR_OMS_AUTH_DPOP_BINDING',
          creds === undefined
            ? 'the token is DPoP-bound and was presented without a proof'
            : 'the token is DPoP-bound and was presented with the Bearer scheme',
        );
      }
      if (t0 >= 0) this.#emit('ok', verified.cached, t0);
      return verified.principal;
    } catch (e) {
      if (t0 >= 0) this.#emit(e, false, t0);
      throw e;
    }
  }

  async #checkProof(
    verified: Verified,
    creds: Credentials & { scheme: 'dpop' },
    req: RequestLike,
    signal: AbortSignal | undefined,
  ): Promise<void> {
    const { dpop } = this.#s;
    if (dpop === undefined) throw fail('ERR_OMS_AUTH_DPOP', 'this verifier does not accept DPoP');
    if (verified.jkt === undefined)
      throw fail('ERR_OMS_AUTH_DPOP_BINDING', 'the token is not DPoP-bound (no cnf.jkt)');
    if (typeof req.method !== 'string' || typeof req.url !== 'string') {
      throw fail('ERR_OMS_AUTH_DPOP', 'DPoP needs the request method and url');
    }
    const { jkt } = await dpop.verifyProof(
      { proof: creds.proof, method: req.method, url: req.url, accessToken: creds.token },
      signal,
    );
    if (jkt !== verified.jkt)
      throw fail('ERR_OMS_AUTH_DPOP_BINDING', 'the DPoP proof key is not the one the token is bound to');
  }

  #emit(outcome: unknown, cached: boolean, t0: number): void {
    const now = performance.now();
    this.#events.emit('verification', {
      outcome: outcome === 'ok' ? 'ok' : isOmsAuthError(outcome) ? outcome.code : 'ERR_OMS_AUTH_MALFORMED',
      cached,
      startTime: performance.timeOrigin + t0,
      durationSec: (now - t0) / 1000,
    });
  }

  #refuseRevoked(principal: Principal, now: number): void {
    if (this.#s.revocations?.check(principal, now) !== undefined)
      throw fail('ERR_OMS_AUTH_TOKEN_REVOKED', 'the token has been revoked');
  }

  async #verifyToken(token: unknown, signal: AbortSignal | undefined): Promise<Verified> {
    const s = this.#s;
    if (typeof token !== 'string')
      throw fail('ERR_OMS_AUTH_MALFORMED', `the token is not a string (got ${typeof token})`);
    // UTF-16 length <= UTF-8 length, so this refuses every token over the byte bound without encoding it.
    if (token.length > s.maxTokenBytes) {
      throw fail('ERR_OMS_AUTH_TOO_LARGE', `the token is longer than maxTokenBytes (${s.maxTokenBytes})`);
    }
    const now = s.clock.now();
    const hit = this.#cache?.get(token, now);
    if (hit !== undefined) {
      this.#refuseRevoked(hit.principal, now);
      return { principal: hit.principal, jkt: hit.jkt, cached: true };
    }
    const header = parseHeader(token, this.#headerRules, this.#headers);
    const { revocations } = s;
    if (revocations !== undefined && !revocations.synced) await revocations.sync(signal);
    const resolved = await s.keys.getKey(header.alg, header.kid, signal);
    let claims: Claims;
    try {
      const result = await jwtVerify(token, resolved.key, {
        algorithms: s.algorithms,
        issuer: s.issuer,
        audience: s.audience,
        clockTolerance: s.clockToleranceSec,
        currentDate: new Date(now),
        requiredClaims: s.requiredClaims,
      });
      claims = result.payload as Claims;
    } catch (e) {
      throw fromJose(e, 'the token');
    }
    let principal: Principal;
    try {
      // A cached principal is shared by every request presenting the token, so it is frozen all the way down;
      // without a cache only the top levels are (deep freezing a parsed payload costs as much as the header parse).
      const freeze = this.#cache === undefined ? shallowFreeze : deepFreeze;
      principal = freeze(s.toPrincipal(freeze(claims)));
    } catch (e) {
      throw fail('ERR_OMS_AUTH_CLAIMS', 'the token claims do not map to a principal', e);
    }
    if (
      typeof principal?.subject !== 'string' ||
      !Array.isArray(principal.roles) ||
      !Array.isArray(principal.scopes)
    ) {
      throw fail(
        'ERR_OMS_AUTH_CLAIMS',
        'toPrincipal must return { subject: string, roles: string[], scopes: string[] }',
      );
    }
    const after = s.clock.now();
    this.#refuseRevoked(principal, after);
    const jkt = jktOf(claims);
    // exp is a required claim and jose checked it is a number; Infinity or 1e300 is bounded by maxTtlMs.
    this.#cache?.set(token, principal, jkt, claims.exp as number, resolved.handle, after);
    return { principal, jkt, cached: false };
  }
}

/**
 * Builds a JWT verifier on jose with the rules RFC 8725 asks for:
 * - `algorithms` is a required allow-list; `none` is always refused, and HS algorithms are accepted only with an
 *   `hmacSecret` (never with a public key), so RS→HS key confusion cannot happen;
 * - `issuer` and `audience` are required and accept lists; `exp` is always required;
 * - tokens longer than `maxTokenBytes` are refused before any decoding; `typ` is enforced where configured;
 * - `jku`, `x5u`, `x5c`, embedded `jwk` and `crit` headers are refused, never followed;
 * - every failure is an `OmsAuthError` with a specific code, `httpStatus` (401, or 503 when the key source is
 *   down) and a `WWW-Authenticate` value.
 *
 * Successes are cached by the whole token until its `exp` (see `CacheOptions`); failures never are.
 *
 * @example
 * import { createVerifier, remoteJwks } from '@oms/auth';
 * const verifier = createVerifier({
 *   issuer: 'https://idp.example.com/',
 *   audience: ['orders-api'],
 *   algorithms: ['RS256', 'ES256'],
 *   keys: remoteJwks('https://idp.example.com/.well-known/jwks.json'),
 *   typ: 'at+jwt',
 * });
 * declare const headers: Record<string, string | string[] | undefined>;
 * const principal = await verifier.verifyRequest({ method: 'GET', url: '/v1/orders', headers });
 * const isAdmin = principal.roles.includes('admin');
 */
export function createVerifier(opts: VerifierOptions): Verifier {
  if (typeof opts !== 'object' || opts === null)
    throw invalidOption('createVerifier(options) needs an options object');
  const issuer = stringList('issuer', opts.issuer);
  const audience = stringList('audience', opts.audience);
  const keys = opts.keys;
  if (typeof keys?.getKey !== 'function' || typeof keys.on !== 'function') {
    throw invalidOption('keys must be remoteJwks(url), localJwks(jwks) or hmacSecret(secret)');
  }
  if (!Array.isArray(opts.algorithms) || opts.algorithms.length === 0) {
    throw invalidOption(
      'algorithms is required: list the JWS algorithms your issuer signs with, e.g. ["RS256"]',
    );
  }
  for (const alg of opts.algorithms) checkAlgorithm(alg, keys.symmetric);
  const maxTokenBytes = v.integer('maxTokenBytes', opts.maxTokenBytes ?? 8192, { min: 16, max: 1_048_576 });
  const clockToleranceSec = v.nonNegativeFinite('clockToleranceSec', opts.clockToleranceSec ?? 5);
  if (opts.typ !== undefined && (typeof opts.typ !== 'string' || opts.typ.length === 0)) {
    throw invalidOption(`typ must be a non-empty string such as "at+jwt" (got ${JSON.stringify(opts.typ)})`);
  }
  const required = opts.requiredClaims ?? [];
  if (!Array.isArray(required) || required.some((c) => typeof c !== 'string' || c.length === 0)) {
    throw invalidOption('requiredClaims must be an array of claim names');
  }
  if (opts.toPrincipal !== undefined && typeof opts.toPrincipal !== 'function') {
    throw invalidOption('toPrincipal must be a function (claims) => Principal');
  }
  const credentials = parseCredentials(opts.credentials);
  if (opts.dpop !== undefined && typeof opts.dpop?.verifyProof !== 'function') {
    throw invalidOption('dpop must be built with dpop({ replayStore, htuFrom })');
  }
  const revocations = opts.revocations;
  if (
    revocations !== undefined &&
    (typeof revocations?.check !== 'function' || typeof revocations.sync !== 'function')
  ) {
    throw invalidOption('revocations must be built with revocationList({ store? })');
  }
  let cache: VerificationCache | undefined;
  if (opts.cache !== false) {
    const c = opts.cache ?? {};
    cache = new VerificationCache(
      v.integer('cache.maxEntries', c.maxEntries ?? 10_000, { min: 1 }),
      v.durationMs('cache.maxTtlMs', c.maxTtlMs ?? 300_000, { min: 1 }),
    );
  }
  return new JwtVerifier(
    {
      issuer: [...issuer],
      audience: [...audience],
      keys,
      algorithms: [...opts.algorithms],
      algorithmSet: new Set(opts.algorithms),
      clockToleranceSec,
      maxTokenBytes,
      typ: opts.typ === undefined ? undefined : normalizeTyp(opts.typ),
      requiredClaims: [...new Set(['exp', ...required])],
      toPrincipal: opts.toPrincipal ?? defaultPrincipal,
      credentials,
      dpop: opts.dpop,
      revocations,
      clock: v.clock(opts.clock, systemClock),
    },
    cache,
  );
}

/** One entry of `algorithms`, refused unless it is a known JWS algorithm that fits the kind of key. */
function checkAlgorithm(alg: JwsAlgorithm, symmetric: boolean): void {
  if (typeof alg === 'string' && alg.toLowerCase() === 'none')
    throw invalidOption('algorithms must never include "none"');
  if (alg === ('Ed448' as JwsAlgorithm)) throw invalidOption(`algorithms: ${ED448_UNSUPPORTED('Ed448')}`);
  if (!KNOWN_ALGORITHMS.has(alg))
    throw invalidOption(`algorithms: unknown JWS algorithm ${JSON.stringify(alg)}`);
  if (isHmac(alg) !== symmetric) {
    throw invalidOption(
      symmetric
        ? `algorithms: ${alg} cannot be verified with an HMAC secret; list only HS256/HS384/HS512`
        : `algorithms: ${alg} needs hmacSecret(); an HMAC algorithm is never accepted with a public key`,
    );
  }
}

/** Where else a token may come from (a header other than Authorization, a cookie), validated. */
function parseCredentials(from: VerifierOptions['credentials']): NonNullable<VerifierOptions['credentials']> {
  const credentials = { ...(from ?? {}) };
  if (credentials.header !== undefined) {
    v.key('credentials.header', credentials.header, 128);
    credentials.header = credentials.header.toLowerCase();
    if (credentials.header === 'authorization')
      throw invalidOption('credentials.header must not be authorization');
  }
  if (credentials.cookie !== undefined) v.key('credentials.cookie', credentials.cookie, 128);
  return credentials;
}
