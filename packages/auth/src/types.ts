import type { CryptoKey } from 'jose';
import type { AuthErrorCode } from './errors.js';
import type { Clock } from './internal/clock.js';

export type { AuthErrorCode } from './errors.js';
export type { Clock } from './internal/clock.js';

/** The JWS algorithms a verifier can allow. `none` is not one of them, on purpose. */
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

/** A token's claims set as verified: read-only, since cached principals are shared between requests. */
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

/** Who made the request, as the rest of the application sees it. Frozen. */
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

/** One public JWK as found in a JWKS document. */
export interface Jwk {
  readonly kty: string;
  readonly kid?: string;
  readonly alg?: string;
  readonly use?: string;
  readonly crv?: string;
  readonly [member: string]: unknown;
}

/** A JWK Set document: `{ keys: [...] }`. */
export interface JwkSet {
  readonly keys: readonly Jwk[];
}

/** The outcome of one JWKS fetch attempt. */
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

/** Events of a key source. */
export interface KeySourceEvents {
  fetch: JwksFetchEvent;
  /** Keys left the set; verified tokens they signed leave the verification cache. */
  retired: { readonly count: number };
}

/**
 * A key the source resolved for one token. `retired` turns true once the key leaves the key set, which also
 * invalidates cached verifications made with it.
 */
export interface ResolvedKey {
  readonly key: CryptoKey;
  readonly handle: { readonly retired: boolean };
}

/**
 * Where verification keys come from: `remoteJwks(url)`, `localJwks(jwks)` or `hmacSecret(secret)`.
 * The verifier is its only caller; the interface is public so tests and adapters can type against it.
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

/** Options of `remoteJwks(url, opts)`. */
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

/** Options of the verification cache. */
export interface CacheOptions {
  /** The most tokens kept; the least recently used leaves first. Default 10,000. */
  maxEntries?: number;
  /** The longest an entry lives, even when the token's `exp` is later. Default 5 min. */
  maxTtlMs?: number;
}

/** Where `verifyRequest` looks for a token besides `Authorization: Bearer`. */
export interface CredentialLocations {
  /** A cookie holding the token. */
  cookie?: string;
  /** A header holding the bare token (no scheme), lower or mixed case. */
  header?: string;
}

/** Options of `createVerifier`. */
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
  clock?: Clock;
}

/** Options of one verification. */
export interface VerifyOptions {
  /** Aborts a key fetch this verification waits for. */
  signal?: AbortSignal;
}

/** Request headers: a WHATWG `Headers`, or Node's `IncomingHttpHeaders` (lower-case names). */
export type HeadersLike = Headers | Readonly<Record<string, string | readonly string[] | undefined>>;

/** The parts of an HTTP request the verifier reads. */
export interface RequestLike {
  /** Needed for DPoP (`htm`) and routing. */
  method?: string;
  /** The request target (`/v1/orders/7?x=1`); needed for DPoP (`htu`) and routing. Never the Host header. */
  url?: string;
  headers: HeadersLike;
}

/** One verification outcome, for telemetry. Never carries the token or the subject. */
export interface VerificationEvent {
  readonly outcome: 'ok' | AuthErrorCode;
  readonly cached: boolean;
  readonly durationSec: number;
  /** `performance.timeOrigin`-based start, in ms, for spans. */
  readonly startTime: number;
}

/** Events of a verifier. */
export interface VerifierEvents {
  verification: VerificationEvent;
  /** A JWKS fetch of the verifier's key source. */
  jwksFetch: JwksFetchEvent;
}

/** What `revoke()` drops from the cache. */
export type RevokeTarget = { readonly jti: string } | { readonly subject: string };

/** Verifies tokens and requests; see `createVerifier`. */
export interface Verifier {
  /** Verifies a compact JWS and resolves to its principal, or rejects with an `OmsAuthError`. */
  verify(token: string, opts?: VerifyOptions): Promise<Principal>;
  /** Reads the credentials from a request (Bearer, DPoP, or the configured cookie/header) and verifies them. */
  verifyRequest(req: RequestLike, opts?: VerifyOptions): Promise<Principal>;
  /** Drops cached verifications of a token id or of a subject; returns how many. Not a deny list. */
  revoke(target: RevokeTarget): number;
  /** Cached verifications right now. */
  readonly cacheSize: number;
  on<K extends keyof VerifierEvents>(event: K, fn: (e: VerifierEvents[K]) => void): () => void;
  /** Drops the cache and closes the key source. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Remembers DPoP proof ids (`jti`) so a proof is accepted once. */
export interface DpopReplayStore {
  /** Records `id` for `ttlMs`; resolves `true` when it was new, `false` when it was already there. */
  remember(id: string, ttlMs: number, signal?: AbortSignal): Promise<boolean>;
}

/** A server-issued DPoP nonce (RFC 9449 §8). */
export interface DpopNonceSource {
  /** The nonce to hand out now (in `DPoP-Nonce`). */
  current(): string;
  /** True when a proof's nonce is still accepted. */
  accepts(nonce: string): boolean;
}

/** Options of `dpop()`. */
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

/** What one proof check needs. */
export interface DpopCheck {
  proof: string;
  method: string;
  url: string;
  /** The access token presented with the proof; its hash must equal the proof's `ath`. */
  accessToken?: string;
}

/** Checks DPoP proofs; see `dpop()`. */
export interface DpopVerifier {
  /** Verifies a proof and resolves to its key's JWK SHA-256 thumbprint (to compare with `cnf.jkt`). */
  verifyProof(check: DpopCheck, signal?: AbortSignal): Promise<{ jkt: string }>;
  /** The `algs` parameter of a DPoP challenge. */
  readonly algorithms: readonly JwsAlgorithm[];
}

/** A resource a permission is checked against. `tenant` enables tenant isolation. */
export interface Resource {
  readonly tenant?: string;
  readonly [attribute: string]: unknown;
}

/** A permission pattern: the permission itself, `resource:*`, `*:action` or `*`. */
export type PermissionPattern<P extends string> =
  | P
  | '*'
  | (P extends `${infer R}:${string}` ? `${R}:*` : never)
  | (P extends `${string}:${infer A}` ? `*:${A}` : never);

/** A grant that applies only when `when` holds for the resource (for example, its owner is the principal). */
export interface ConditionalGrant<P extends string> {
  readonly permission: PermissionPattern<P>;
  /** Called only with a resource; a grant with a condition never applies to a check without one. */
  readonly when: (principal: Principal, resource: Resource) => boolean;
  /** Names the condition in `explain()`. */
  readonly name?: string;
}

/** One role. */
export interface RoleDefinition<P extends string = string> {
  /** Roles whose grants this one also has. Cycles are refused at construction. */
  readonly inherits?: readonly string[];
  readonly permissions: readonly (PermissionPattern<P> | ConditionalGrant<P>)[];
  /** Lets this role's grants apply to resources of other tenants. Default false. */
  readonly crossTenant?: boolean;
}

/** Options of `rbac()`. */
export interface RbacOptions<P extends string> {
  /** Every permission the application checks; with it, unknown permissions are compile-time errors. */
  readonly permissions?: readonly P[];
  readonly roles: Readonly<Record<string, RoleDefinition<NoInfer<P>>>>;
}

/** Why a check passed or failed. */
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

/** Role-based access checks; see `rbac()`. */
export interface Rbac<P extends string = string> {
  can(principal: Principal, permission: P, resource?: Resource): boolean;
  explain(principal: Principal, permission: P, resource?: Resource): Explanation;
  /** The roles known. */
  readonly roleNames: readonly string[];
}

/** A route's requirement: a permission, or `public`. The object form also names a resource loader. */
export type RouteRule<P extends string = string> =
  | P
  | 'public'
  | { readonly permission: P; readonly resource?: (params: Readonly<Record<string, string>>) => Resource };

/** What a request resolves to. */
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

/** Options of `routePolicy()`. */
export interface RoutePolicyOptions {
  /** Paths with more segments are denied without matching. Default 64. */
  maxSegments?: number;
  /** Longer paths are denied without matching. Default 8192. */
  maxPathBytes?: number;
}

/** A method + path table; see `routePolicy()`. */
export interface RoutePolicy<P extends string = string> {
  resolve(method: string, path: string): RouteResolution<P>;
  /** The patterns, as given. */
  readonly routes: readonly string[];
}

/** Options of `authorizer()`. */
export interface AuthorizerOptions<P extends string> {
  verifier: Verifier;
  routes: RoutePolicy<P>;
  rbac: Rbac<P>;
}

/** The request `authorize` decides on: method and target are required. */
export interface AuthorizeRequest extends RequestLike {
  method: string;
  url: string;
}

/** The combined decision. */
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
}

/** An audit fact: one authn/authz outcome. Carries a digest of the token, never the token. */
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

/** Events of an authorizer. */
export interface AuthorizerEvents {
  decision: DecisionEvent;
}

/** Combines routes, verification and RBAC; see `authorizer()`. */
export interface Authorizer {
  authorize(req: AuthorizeRequest, opts?: VerifyOptions): Promise<AuthorizeResult>;
  on<K extends keyof AuthorizerEvents>(event: K, fn: (e: AuthorizerEvents[K]) => void): () => void;
}
