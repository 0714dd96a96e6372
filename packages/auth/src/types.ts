import type { CryptoKey } from 'jose';
import type { AuthErrorCode } from './errors.js';
import type { Clock } from './internal/clock.js';

export type { AuthErrorCode } from './errors.js';
export type { Clock } from './internal/clock.js';

/**
 * The JWS algorithms a verifier can allow. `none` is not one of them, on purpose.
 *
 * @example
 * const algorithms: JwsAlgorithm[] = ['RS256', 'ES256'];
 */
export type JwsAlgorithm =
  | 'HS256'
  | 'HS384'
  | 'HS512'
  | 'RS256'
  | 'RS384'
  | 'RS512'
  | 'PS256'
  | 'PS384'
  | 'PS512'
  | 'ES256'
  | 'ES384'
  | 'ES512'
  | 'EdDSA'
  | 'Ed25519';

/**
 * A token's claims set as verified: read-only, since cached principals are shared between requests.
 *
 * @example
 * declare const principal: Principal;
 * const claims: Claims = principal.claims;
 * const expiresAt = claims.exp;
 */
export interface Claims {
  readonly iss?: string;
  readonly sub?: string;
  readonly aud?: string | readonly string[];
  readonly exp?: number;
  readonly nbf?: number;
  readonly iat?: number;
  readonly jti?: string;
  readonly [claim: string]: unknown;
}

/**
 * Who made the request, as the rest of the application sees it. Frozen: deeply when the verifier caches (a cached
 * principal is shared by every request presenting the token), the top levels with `cache: false`.
 *
 * @example
 * const p: Principal = { subject: 'user-1', roles: ['clerk'], scopes: ['orders:read'], tenant: 'acme', claims: {} };
 */
export interface Principal {
  /** The `sub` claim by default. */
  readonly subject: string;
  /** The `roles` claim by default (an array of strings, or one string). */
  readonly roles: readonly string[];
  /** The `scope` (space-separated) or `scp` (array) claim by default. */
  readonly scopes: readonly string[];
  /** The `tid` or `tenant` claim by default. */
  readonly tenant?: string;
  /** Every verified claim. */
  readonly claims: Claims;
}

/**
 * One public JWK as found in a JWKS document.
 *
 * @example
 * const jwk: Jwk = { kty: 'EC', crv: 'P-256', x: '...', y: '...', kid: 'k1', alg: 'ES256' };
 */
export interface Jwk {
  readonly kty: string;
  readonly kid?: string;
  readonly alg?: string;
  readonly use?: string;
  readonly crv?: string;
  readonly [member: string]: unknown;
}

/**
 * A JWK Set document: `{ keys: [...] }`.
 *
 * @example
 * declare const jwk: Jwk;
 * const keys = localJwks({ keys: [jwk] } satisfies JwkSet);
 */
export interface JwkSet {
  readonly keys: readonly Jwk[];
}

/**
 * The outcome of one JWKS fetch attempt.
 *
 * @example
 * declare const verifier: Verifier;
 * verifier.on('jwksFetch', (e: JwksFetchEvent) => void (e.outcome === 'error' && e.error));
 */
export interface JwksFetchEvent {
  readonly outcome: 'ok' | 'error';
  /** Why it was fetched. */
  readonly reason: 'initial' | 'unknown-kid' | 'expired' | 'background' | 'manual';
  readonly durationSec: number;
  /** Usable keys after the fetch (`ok` only). */
  readonly keys?: number;
  /** What went wrong (`error` only): `timeout`, `http-<status>`, `network`, `invalid-json`, `invalid-jwks`, `too-large`. */
  readonly error?: string;
}

/**
 * Events of a key source.
 *
 * @example
 * declare const keys: KeySource;
 * const off = keys.on('retired', (e: KeySourceEvents['retired']) => void e.count);
 */
export interface KeySourceEvents {
  fetch: JwksFetchEvent;
  /** Keys left the set; verified tokens they signed leave the verification cache. */
  retired: { readonly count: number };
}

/**
 * A key the source resolved for one token. `retired` turns true once the key leaves the key set, which also
 * invalidates cached verifications made with it.
 *
 * @example
 * declare const keys: KeySource;
 * const resolved: ResolvedKey = await keys.getKey('RS256', 'k1');
 * const stillValid = !resolved.handle.retired;
 */
export interface ResolvedKey {
  readonly key: CryptoKey;
  readonly handle: { readonly retired: boolean };
}

/**
 * Where verification keys come from: `remoteJwks(url)`, `localJwks(jwks)` or `hmacSecret(secret)`.
 * The verifier is its only caller; the interface is public so tests and adapters can type against it.
 *
 * @example
 * const keys: KeySource = remoteJwks('https://idp.example.com/.well-known/jwks.json');
 * await keys.close();
 */
export interface KeySource {
  readonly kind: 'remote-jwks' | 'local-jwks' | 'hmac-secret';
  /** True for HMAC secrets: the verifier then allows only HS algorithms, and asymmetric sources never HS. */
  readonly symmetric: boolean;
  /** The key for a token header's `alg` and `kid`, or a typed error (`KEY_NOT_FOUND`, `KEYS_UNAVAILABLE`). */
  getKey(alg: JwsAlgorithm, kid: string | undefined, signal?: AbortSignal): Promise<ResolvedKey>;
  on<K extends keyof KeySourceEvents>(event: K, fn: (e: KeySourceEvents[K]) => void): () => void;
  /** Stops background refreshes. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Options of `remoteJwks(url, opts)`.
 *
 * @example
 * const opts: RemoteJwksOptions = { cooldownMs: 30_000, staleWhileErrorMs: 3_600_000 };
 * const keys = remoteJwks('https://idp.example.com/.well-known/jwks.json', opts);
 */
export interface RemoteJwksOptions {
  /** The least time between two fetches caused by an unknown `kid`. Default 30 s. */
  cooldownMs?: number;
  /** How long fetched keys count as fresh; a background refresh runs then. Default 10 min. */
  cacheMaxAgeMs?: number;
  /** Bound of one fetch. Default 5 s. */
  timeoutMs?: number;
  /** How long the last good keys keep verifying once they are stale and the IdP cannot be reached. Default 1 h. */
  staleWhileErrorMs?: number;
  /** The largest JWKS document accepted, in bytes. Default 1 MiB. */
  maxBytes?: number;
  /** Extra request headers (an API key of a private IdP, say). */
  headers?: Record<string, string>;
  /** A `fetch` implementation (a proxy agent, say). Default: the global `fetch`. */
  fetch?: (url: string, init: { signal: AbortSignal; headers: Record<string, string> }) => Promise<Response>;
  clock?: Clock;
}

/**
 * Options of the verification cache.
 *
 * @example
 * const cache: CacheOptions = { maxEntries: 50_000, maxTtlMs: 60_000 };
 */
export interface CacheOptions {
  /** The most tokens kept; the least recently used leaves first. Default 10,000. */
  maxEntries?: number;
  /** The longest an entry lives, even when the token's `exp` is later. Default 5 min. */
  maxTtlMs?: number;
}

/**
 * Where `verifyRequest` looks for a token besides `Authorization: Bearer`.
 *
 * @example
 * const credentials: CredentialLocations = { cookie: 'session' };
 */
export interface CredentialLocations {
  /** A cookie holding the token. */
  cookie?: string;
  /** A header holding the bare token (no scheme), lower or mixed case. */
  header?: string;
}

/**
 * Options of `createVerifier`.
 *
 * @example
 * const options: VerifierOptions = {
 *   issuer: 'https://idp.example.com/',
 *   audience: 'orders-api',
 *   algorithms: ['RS256'],
 *   keys: remoteJwks('https://idp.example.com/.well-known/jwks.json'),
 * };
 * const verifier = createVerifier(options);
 */
export interface VerifierOptions {
  /** The accepted `iss` values. */
  issuer: string | readonly string[];
  /** The accepted `aud` values; a token passes when one of its audiences is listed. */
  audience: string | readonly string[];
  keys: KeySource;
  /** The allow-list. Required, never `none`, and never HS together with an asymmetric algorithm. */
  algorithms: readonly JwsAlgorithm[];
  /** Leeway for `exp` and `nbf`, in seconds. Default 5. */
  clockToleranceSec?: number;
  /** Longer tokens are refused before any decoding. Default 8192. */
  maxTokenBytes?: number;
  /** The required `typ` header, e.g. `at+jwt` (RFC 9068). Unset: any typ but `dpop+jwt`. */
  typ?: string;
  /** Claims that must be present besides `exp`, `iss` and `aud` (always required). */
  requiredClaims?: readonly string[];
  /** The verification cache; `false` turns it off. Default `{ maxEntries: 10_000 }`. */
  cache?: false | CacheOptions;
  /** Maps verified claims to a principal. Default: `sub`, `roles`, `scope`/`scp`, `tid`/`tenant`. */
  toPrincipal?: (claims: Claims) => Principal;
  /** Where `verifyRequest` also looks for a token. */
  credentials?: CredentialLocations;
  /** Accepts DPoP-bound tokens (`Authorization: DPoP`) with this proof checker. */
  dpop?: DpopVerifier;
  /**
   * The deny list every verification consults, cache hits included: a token it revokes is refused with
   * `ERR_OMS_AUTH_TOKEN_REVOKED`. One list may serve several verifiers.
   */
  revocations?: RevocationList;
  clock?: Clock;
}

/**
 * Options of one verification.
 *
 * @example
 * declare const verifier: Verifier;
 * const opts: VerifyOptions = { signal: AbortSignal.timeout(2_000) };
 * await verifier.verify('eyJ...', opts);
 */
export interface VerifyOptions {
  /** Aborts a key fetch (or a first revocation read) this verification waits for. */
  signal?: AbortSignal;
}

/**
 * Request headers: a WHATWG `Headers`, or Node's `IncomingHttpHeaders` (lower-case names).
 *
 * @example
 * const headers: HeadersLike = new Headers({ authorization: 'Bearer eyJ...' });
 */
export type HeadersLike = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/**
 * The parts of an HTTP request the verifier reads.
 *
 * @example
 * const req: RequestLike = { method: 'GET', url: '/v1/orders/1', headers: { authorization: 'Bearer eyJ...' } };
 */
export interface RequestLike {
  /** Needed for DPoP (`htm`) and routing. */
  method?: string;
  /** The request target (`/v1/orders/7?x=1`); needed for DPoP (`htu`) and routing. Never the Host header. */
  url?: string;
  headers: HeadersLike;
  /**
   * Node's `req.rawHeaders`. Node keeps only the first of two `Authorization` headers in `req.headers`; with the raw
   * list, a request carrying two is refused instead.
   */
  rawHeaders?: readonly string[];
}

/**
 * One verification outcome, for telemetry. Never carries the token or the subject.
 *
 * @example
 * declare const verifier: Verifier;
 * verifier.on('verification', (e: VerificationEvent) => void (e.cached ? 'hit' : e.outcome));
 */
export interface VerificationEvent {
  readonly outcome: 'ok' | AuthErrorCode;
  readonly cached: boolean;
  readonly durationSec: number;
  /** `performance.timeOrigin`-based start, in ms, for spans. */
  readonly startTime: number;
}

/**
 * Events of a verifier.
 *
 * @example
 * type Outcome = VerifierEvents['verification']['outcome'];
 */
export interface VerifierEvents {
  verification: VerificationEvent;
  /** A JWKS fetch of the verifier's key source. */
  jwksFetch: JwksFetchEvent;
}

/**
 * What `revoke()` drops from the cache.
 *
 * @example
 * declare const verifier: Verifier;
 * const target: RevokeTarget = { subject: 'user-1' };
 * verifier.revoke(target);
 */
export type RevokeTarget = { readonly jti: string } | { readonly subject: string };

/**
 * What `revocations.revoke()` refuses from now on: one token by its `jti`, or every token of a subject issued
 * before `notBefore` (a logout everywhere, a password change).
 *
 * @example
 * const one: RevocationTarget = { jti: 'b3f1c2', expiresAt: Date.now() + 3_600_000 };
 * const all: RevocationTarget = { subject: 'user-1' };
 */
export type RevocationTarget =
  | {
      readonly jti: string;
      /** The token's `exp` in ms, when known: the revocation is forgotten then. Default: `retainMs` from now. */
      readonly expiresAt?: number;
    }
  | {
      readonly subject: string;
      /** Tokens whose `iat` (in ms) is before this are refused, and tokens without `iat`. Default: now. */
      readonly notBefore?: number;
    };

/**
 * One revocation as a `RevocationStore` keeps and shares it.
 *
 * @example
 * const r: Revocation = { kind: 'subject', value: 'user-1', notBefore: Date.now(), until: Date.now() + 86_400_000 };
 */
export interface Revocation {
  readonly kind: 'jti' | 'subject';
  /** The token id or the subject. */
  readonly value: string;
  /** For a subject: tokens issued before this time (ms) are refused. For a jti: when it was revoked. */
  readonly notBefore: number;
  /** When the revocation may be forgotten (ms): no token it refuses can still be unexpired by then. */
  readonly until: number;
}

/**
 * Where revocations are shared between instances: `redisRevocationStore()` from `@oms/auth/redis`, or your own.
 * Every instance appends to it and reads what the others appended.
 *
 * @example
 * const log: Revocation[] = [];
 * const store: RevocationStore = {
 *   add: async (r) => void log.push(r),
 *   read: async (cursor) => ({ revocations: log.slice(Number(cursor ?? 0)), cursor: String(log.length) }),
 * };
 */
export interface RevocationStore {
  /** Appends one revocation durably; resolves once other instances can read it. */
  add(revocation: Revocation, signal?: AbortSignal): Promise<void>;
  /** The revocations appended after `cursor` (every one kept, without a cursor) and the cursor to pass next. */
  read(
    cursor: string | undefined,
    signal?: AbortSignal,
  ): Promise<{ readonly revocations: readonly Revocation[]; readonly cursor: string | undefined }>;
  /** How long the store keeps a revocation, in ms; a revocation's `until` is capped to it. */
  readonly retainMs?: number;
}

/**
 * Options of `revocationList()`.
 *
 * @example
 * const opts: RevocationListOptions = { pollMs: 1_000, retainMs: 86_400_000 };
 * const revocations = revocationList(opts);
 */
export interface RevocationListOptions {
  /** Shares revocations with other instances. Without one, the list is this process's alone. */
  store?: RevocationStore;
  /** How often the store is read for other instances' revocations. Default 1 s. */
  pollMs?: number;
  /** Bound of one read of the store; a verification waiting for the first read fails with 503 after it. Default 5 s. */
  timeoutMs?: number;
  /**
   * How long a revocation stays in force, in ms: set it to at least your longest token lifetime. Default 24 h,
   * capped to the store's own `retainMs`.
   */
  retainMs?: number;
  clock?: Clock;
}

/**
 * Events of a revocation list.
 *
 * @example
 * declare const revocations: RevocationList;
 * revocations.on('syncError', (e: RevocationListEvents['syncError']) => void e.error);
 */
export interface RevocationListEvents {
  /** A revocation entered this process's view: made here, or read from the store. */
  revoked: Revocation;
  /** Reading the store failed; the view keeps what it had and the next poll tries again. */
  syncError: { readonly error: unknown };
}

/**
 * A deny list of token ids and subjects, checked by every verification (cache hits included) without I/O: each
 * process holds the list in memory and polls the store for what other instances revoked.
 *
 * @example
 * declare const revocations: RevocationList;
 * await revocations.revoke({ subject: 'user-1' }, { signal: AbortSignal.timeout(2_000) });
 */
export interface RevocationList {
  /** Refuses the token or the subject's tokens from now on; resolves once the store holds it. */
  revoke(target: RevocationTarget, opts?: { signal?: AbortSignal }): Promise<Revocation>;
  /** The revocation refusing this principal, if any, from this process's view. */
  check(principal: Principal, now?: number): Revocation | undefined;
  /** Reads the store now; resolves once this process's view holds everything stored before the call. */
  sync(signal?: AbortSignal): Promise<void>;
  /** True once the view has been read from the store at least once (always, without a store). */
  readonly synced: boolean;
  /** Revocations in force in this process's view. */
  readonly size: number;
  on<K extends keyof RevocationListEvents>(event: K, fn: (e: RevocationListEvents[K]) => void): () => void;
  /** Stops polling. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Verifies tokens and requests; see `createVerifier`.
 *
 * @example
 * declare const verifier: Verifier;
 * const principal = await verifier.verify('eyJ...');
 * await verifier.close();
 */
export interface Verifier {
  /** Verifies a compact JWS and resolves to its principal, or rejects with an `OmsAuthError`. */
  verify(token: string, opts?: VerifyOptions): Promise<Principal>;
  /** Reads the credentials from a request (Bearer, DPoP, or the configured cookie/header) and verifies them. */
  verifyRequest(req: RequestLike, opts?: VerifyOptions): Promise<Principal>;
  /**
   * Drops cached verifications of a token id or of a subject; returns how many. Not a deny list: the next
   * verification of such a token runs in full and passes. To refuse tokens, give the verifier `revocations`.
   */
  revoke(target: RevokeTarget): number;
  /** Cached verifications right now. */
  readonly cacheSize: number;
  on<K extends keyof VerifierEvents>(event: K, fn: (e: VerifierEvents[K]) => void): () => void;
  /** Drops the cache and closes the key source. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Remembers DPoP proof ids (`jti`) so a proof is accepted once.
 *
 * @example
 * const seen = new Set<string>();
 * const store: DpopReplayStore = {
 *   remember: async (id) => !seen.has(id) && seen.add(id).has(id),
 * };
 */
export interface DpopReplayStore {
  /** Records `id` for `ttlMs`; resolves `true` when it was new, `false` when it was already there. */
  remember(id: string, ttlMs: number, signal?: AbortSignal): Promise<boolean>;
}

/**
 * A server-issued DPoP nonce (RFC 9449 §8).
 *
 * @example
 * let current = crypto.randomUUID();
 * const nonce: DpopNonceSource = { current: () => current, accepts: (n) => n === current };
 */
export interface DpopNonceSource {
  /** The nonce to hand out now (in `DPoP-Nonce`). */
  current(): string;
  /** True when a proof's nonce is still accepted. */
  accepts(nonce: string): boolean;
}

/**
 * Options of `dpop()`.
 *
 * @example
 * const opts: DpopOptions = { replayStore: memoryReplayStore(), htuFrom: { origin: 'https://api.example.com' } };
 * const proofs = dpop(opts);
 */
export interface DpopOptions {
  replayStore: DpopReplayStore;
  /**
   * The trusted origin (`https://api.example.com`) the request path is joined to, or a function computing the
   * full URL from the request. The Host header is never read.
   */
  htuFrom: { origin: string } | ((req: { method: string; url: string }) => string);
  /** Allowed proof algorithms; asymmetric only. Default ES256, ES384, PS256, RS256, EdDSA, Ed25519. */
  algorithms?: readonly JwsAlgorithm[];
  /** How far a proof's `iat` may be from now, in seconds. Default 60. */
  iatWindowSec?: number;
  /** Requires a server nonce. */
  nonce?: DpopNonceSource;
  /** Longer proofs are refused before decoding. Default 4096. */
  maxProofBytes?: number;
  clock?: Clock;
}

/**
 * What one proof check needs.
 *
 * @example
 * declare const proofs: DpopVerifier;
 * const check: DpopCheck = { proof: 'eyJ...', method: 'GET', url: '/v1/orders/1', accessToken: 'eyJ...' };
 * const { jkt } = await proofs.verifyProof(check);
 */
export interface DpopCheck {
  proof: string;
  method: string;
  url: string;
  /** The access token presented with the proof; its hash must equal the proof's `ath`. */
  accessToken?: string;
}

/**
 * Checks DPoP proofs; see `dpop()`.
 *
 * @example
 * const proofs: DpopVerifier = dpop({ replayStore: memoryReplayStore(), htuFrom: { origin: 'https://api.example.com' } });
 * const challenge = `DPoP algs="${proofs.algorithms.join(' ')}"`;
 */
export interface DpopVerifier {
  /** Verifies a proof and resolves to its key's JWK SHA-256 thumbprint (to compare with `cnf.jkt`). */
  verifyProof(check: DpopCheck, signal?: AbortSignal): Promise<{ jkt: string }>;
  /** The `algs` parameter of a DPoP challenge. */
  readonly algorithms: readonly JwsAlgorithm[];
}

/**
 * A resource a permission is checked against. `tenant` enables tenant isolation.
 *
 * @example
 * const order: Resource = { tenant: 'acme', owner: 'user-1' };
 */
export interface Resource {
  readonly tenant?: string;
  readonly [attribute: string]: unknown;
}

/**
 * A permission pattern: the permission itself, `resource:*`, `*:action` or `*`.
 *
 * @example
 * const grant: PermissionPattern<'orders:read' | 'orders:update'> = 'orders:*';
 */
export type PermissionPattern<P extends string> =
  | P
  | '*'
  | (P extends `${infer R}:${string}` ? `${R}:*` : never)
  | (P extends `${string}:${infer A}` ? `*:${A}` : never);

/**
 * A grant that applies only when `when` holds for the resource (for example, its owner is the principal).
 *
 * @example
 * const own: ConditionalGrant<'orders:update'> = {
 *   permission: 'orders:update',
 *   when: (p, order) => order.owner === p.subject,
 *   name: 'owner',
 * };
 */
export interface ConditionalGrant<P extends string> {
  readonly permission: PermissionPattern<P>;
  /** Called only with a resource; a grant with a condition never applies to a check without one. */
  readonly when: (principal: Principal, resource: Resource) => boolean;
  /** Names the condition in `explain()`. */
  readonly name?: string;
}

/**
 * One role.
 *
 * @example
 * const manager: RoleDefinition = { inherits: ['clerk'], permissions: ['orders:*'] };
 */
export interface RoleDefinition<P extends string = string> {
  /** Roles whose grants this one also has. Cycles are refused at construction. */
  readonly inherits?: readonly string[];
  readonly permissions: readonly (PermissionPattern<P> | ConditionalGrant<P>)[];
  /** Lets this role's grants apply to resources of other tenants. Default false. */
  readonly crossTenant?: boolean;
}

/**
 * Options of `rbac()`.
 *
 * @example
 * const opts: RbacOptions<'orders:read'> = { permissions: ['orders:read'], roles: { clerk: { permissions: ['orders:read'] } } };
 * const access = rbac(opts);
 */
export interface RbacOptions<P extends string> {
  /** Every permission the application checks; with it, unknown permissions are compile-time errors. */
  readonly permissions?: readonly P[];
  readonly roles: Readonly<Record<string, RoleDefinition<NoInfer<P>>>>;
}

/**
 * Why a check passed or failed.
 *
 * @example
 * declare const access: Rbac;
 * declare const principal: Principal;
 * const x: Explanation = access.explain(principal, 'orders:refund');
 * const line = `${x.allowed ? 'allow' : 'deny'}: ${x.detail}`;
 */
export interface Explanation {
  readonly allowed: boolean;
  /** The role whose grant decided, when one did. */
  readonly role?: string;
  /** The grant pattern that matched (`orders:*`). */
  readonly grant?: string;
  readonly reason:
    | 'granted'
    | 'no-grant'
    | 'tenant-mismatch'
    | 'condition-false'
    | 'condition-needs-resource'
    | 'unknown-permission';
  /** One sentence for logs. */
  readonly detail: string;
}

/**
 * Role-based access checks; see `rbac()`.
 *
 * @example
 * const access: Rbac = rbac({ roles: { clerk: { permissions: ['orders:read'] } } });
 * declare const principal: Principal;
 * const ok = access.can(principal, 'orders:read');
 */
export interface Rbac<P extends string = string> {
  can(principal: Principal, permission: P, resource?: Resource): boolean;
  explain(principal: Principal, permission: P, resource?: Resource): Explanation;
  /** The roles known. */
  readonly roleNames: readonly string[];
}

/**
 * A route's requirement: a permission, or `public`. The object form also names a resource loader.
 *
 * @example
 * const rule: RouteRule = { permission: 'orders:update', resource: (params) => ({ id: params.id }) };
 */
export type RouteRule<P extends string = string> =
  | P
  | 'public'
  | { readonly permission: P; readonly resource?: (params: Readonly<Record<string, string>>) => Resource };

/**
 * What a request resolves to.
 *
 * @example
 * declare const routes: RoutePolicy;
 * const r: RouteResolution = routes.resolve('GET', '/v1/orders/1');
 * const denied = r.kind === 'deny';
 */
export type RouteResolution<P extends string = string> =
  | { readonly kind: 'public'; readonly route: string; readonly params: Readonly<Record<string, string>> }
  | {
      readonly kind: 'permission';
      readonly route: string;
      readonly permission: P;
      readonly params: Readonly<Record<string, string>>;
      readonly resource?: (params: Readonly<Record<string, string>>) => Resource;
    }
  | { readonly kind: 'deny'; readonly reason: 'unmapped' | 'invalid-path' };

/**
 * Options of `routePolicy()`.
 *
 * @example
 * const routes = routePolicy({ 'GET /livez': 'public' }, { maxSegments: 16 } satisfies RoutePolicyOptions);
 */
export interface RoutePolicyOptions {
  /** Paths with more segments are denied without matching. Default 64. */
  maxSegments?: number;
  /** Longer paths are denied without matching. Default 8192. */
  maxPathBytes?: number;
}

/**
 * A method + path table; see `routePolicy()`.
 *
 * @example
 * const routes: RoutePolicy = routePolicy({ 'GET /v1/orders/:id': 'orders:read' });
 * const count = routes.routes.length;
 */
export interface RoutePolicy<P extends string = string> {
  resolve(method: string, path: string): RouteResolution<P>;
  /** The patterns, as given. */
  readonly routes: readonly string[];
}

/**
 * Options of `authorizer()`.
 *
 * @example
 * declare const verifier: Verifier;
 * const opts: AuthorizerOptions<string> = {
 *   verifier,
 *   routes: routePolicy({ 'GET /v1/orders/:id': 'orders:read' }),
 *   rbac: rbac({ roles: { clerk: { permissions: ['orders:read'] } } }),
 * };
 * const auth = authorizer(opts);
 */
export interface AuthorizerOptions<P extends string> {
  verifier: Verifier;
  routes: RoutePolicy<P>;
  rbac: Rbac<P>;
}

/**
 * The request `authorize` decides on: method and target are required.
 *
 * @example
 * const req: AuthorizeRequest = { method: 'GET', url: '/v1/orders/1', headers: {} };
 */
export interface AuthorizeRequest extends RequestLike {
  method: string;
  url: string;
  /**
   * The route pattern the application's router already matched (`/v1/orders/:id`), for framework adapters. When set,
   * the policy rule is the one this pattern resolves to, so it belongs to the handler that will run; `url` is still
   * what DPoP proofs are checked against.
   */
  routePattern?: string;
  /** The router's path parameters, for the rule's `resource` loader; used only with `routePattern`. */
  routeParams?: Readonly<Record<string, string>>;
}

/**
 * The combined decision.
 *
 * @example
 * declare const auth: Authorizer;
 * const result: AuthorizeResult = await auth.authorize({ method: 'GET', url: '/livez', headers: {} });
 * const allowed = result.status === 200;
 */
export interface AuthorizeResult {
  readonly status: 200 | 401 | 403 | 503;
  readonly principal?: Principal;
  /** The error code when denied. */
  readonly code?: AuthErrorCode;
  /** A short sentence for logs; never contains the token. */
  readonly reason: string;
  /** The matched pattern (`GET /v1/orders/:id`), when one matched. */
  readonly route?: string;
  /** The `WWW-Authenticate` value for 401/403. */
  readonly wwwAuthenticate?: string;
  /** The `DPoP-Nonce` value to send back, when a nonce is required. */
  readonly dpopNonce?: string;
  /** For a 503: when a retry may succeed, in ms, when the failing source knows (becomes `Retry-After`). */
  readonly retryAfterMs?: number;
}

/**
 * An audit fact: one authn/authz outcome. Carries a digest of the token, never the token.
 *
 * @example
 * declare const auth: Authorizer;
 * auth.on('decision', (d: DecisionEvent) => void [d.route, d.status, d.code, d.tokenDigest]);
 */
export interface DecisionEvent {
  readonly method: string;
  /** The matched pattern, or `(unmapped)`. */
  readonly route: string;
  readonly status: 200 | 401 | 403 | 503;
  readonly code?: AuthErrorCode;
  readonly reason: string;
  readonly subject?: string;
  /** The first 16 hex digits of SHA-256 of the token, to correlate entries without storing it. */
  readonly tokenDigest?: string;
}

/**
 * Events of an authorizer.
 *
 * @example
 * type Decision = AuthorizerEvents['decision'];
 */
export interface AuthorizerEvents {
  decision: DecisionEvent;
}

/**
 * Combines routes, verification and RBAC; see `authorizer()`.
 *
 * @example
 * declare const auth: Authorizer;
 * const off = auth.on('decision', (d) => void d.status);
 * off();
 */
export interface Authorizer {
  authorize(req: AuthorizeRequest, opts?: VerifyOptions): Promise<AuthorizeResult>;
  on<K extends keyof AuthorizerEvents>(event: K, fn: (e: AuthorizerEvents[K]) => void): () => void;
}
