/**
 * Stable codes of every error @oms/auth throws.
 *
 * @example
 * import { isOmsAuthError, type AuthErrorCode } from '@oms/auth';
 * declare const e: unknown;
 * const code: AuthErrorCode | undefined = isOmsAuthError(e) ? e.code : undefined;
 * const expired = code === 'ERR_OMS_AUTH_TOKEN_EXPIRED';
 */
export type AuthErrorCode =
  | 'ERR_OMS_AUTH_INVALID_OPTION'
  | 'ERR_OMS_AUTH_TOKEN_MISSING'
  | 'ERR_OMS_AUTH_TOKEN_EXPIRED'
  | 'ERR_OMS_AUTH_TOKEN_REVOKED'
  | 'ERR_OMS_AUTH_TOKEN_NOT_YET_VALID'
  | 'ERR_OMS_AUTH_SIGNATURE'
  | 'ERR_OMS_AUTH_AUDIENCE'
  | 'ERR_OMS_AUTH_ISSUER'
  | 'ERR_OMS_AUTH_MALFORMED'
  | 'ERR_OMS_AUTH_ALG_NOT_ALLOWED'
  | 'ERR_OMS_AUTH_KEY_NOT_FOUND'
  | 'ERR_OMS_AUTH_TYP'
  | 'ERR_OMS_AUTH_TOO_LARGE'
  | 'ERR_OMS_AUTH_CLAIMS'
  | 'ERR_OMS_AUTH_UNSAFE_HEADER'
  | 'ERR_OMS_AUTH_DPOP'
  | 'ERR_OMS_AUTH_DPOP_REPLAY'
  | 'ERR_OMS_AUTH_DPOP_NONCE'
  | 'ERR_OMS_AUTH_DPOP_BINDING'
  | 'ERR_OMS_AUTH_KEYS_UNAVAILABLE'
  | 'ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE'
  | 'ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE'
  | 'ERR_OMS_AUTH_FORBIDDEN'
  | 'ERR_OMS_AUTH_ROUTE_DENIED'
  | 'ERR_OMS_AUTH_ABORTED';

/** The HTTP status each code answers with: 401 for credentials, 403 for permissions, 503 for the key source. */
export function httpStatusOf(code: AuthErrorCode): 400 | 401 | 403 | 499 | 500 | 503 {
  switch (code) {
    case 'ERR_OMS_AUTH_KEYS_UNAVAILABLE':
    case 'ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE':
    case 'ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE':
      return 503;
    case 'ERR_OMS_AUTH_FORBIDDEN':
    case 'ERR_OMS_AUTH_ROUTE_DENIED':
      return 403;
    case 'ERR_OMS_AUTH_INVALID_OPTION':
      return 500;
    case 'ERR_OMS_AUTH_ABORTED':
      return 499;
    default:
      return 401;
  }
}

function challengeOf(code: AuthErrorCode): string | undefined {
  switch (code) {
    // RFC 6750 §3.1: a request without credentials gets a bare challenge, no error code.
    case 'ERR_OMS_AUTH_TOKEN_MISSING':
      return 'Bearer';
    case 'ERR_OMS_AUTH_FORBIDDEN':
    case 'ERR_OMS_AUTH_ROUTE_DENIED':
      return 'Bearer error="insufficient_scope"';
    case 'ERR_OMS_AUTH_DPOP':
    case 'ERR_OMS_AUTH_DPOP_REPLAY':
      return 'DPoP error="invalid_dpop_proof"';
    case 'ERR_OMS_AUTH_DPOP_NONCE':
      return 'DPoP error="use_dpop_nonce"';
    case 'ERR_OMS_AUTH_KEYS_UNAVAILABLE':
    case 'ERR_OMS_AUTH_REPLAY_STORE_UNAVAILABLE':
    case 'ERR_OMS_AUTH_REVOCATIONS_UNAVAILABLE':
    case 'ERR_OMS_AUTH_INVALID_OPTION':
    case 'ERR_OMS_AUTH_ABORTED':
      return undefined;
    default:
      // No error_description: the code is for logs, and a description would tell an attacker which check failed.
      return 'Bearer error="invalid_token"';
  }
}

/**
 * The base error of @oms/auth: a stable `code`, the HTTP status to answer with (`httpStatus`), the
 * `WWW-Authenticate` value for 401/403 (RFC 6750; never a description that leaks which check failed),
 * whether retrying may help, and the underlying `cause`.
 *
 * @example
 * import { isOmsAuthError, type Verifier } from '@oms/auth';
 * declare const verifier: Verifier;
 * declare const token: string;
 * try {
 *   await verifier.verify(token);
 * } catch (e) {
 *   if (isOmsAuthError(e)) {
 *     const status = e.httpStatus; // 401, or 503 when the key source is down
 *     const challenge = e.wwwAuthenticate; // e.g. 'Bearer error="invalid_token"'
 *     void [status, challenge];
 *   } else throw e;
 * }
 */
export class OmsAuthError extends Error {
  readonly isOmsAuthError = true;
  /** The HTTP status to answer with. */
  readonly httpStatus: number;
  /** The `WWW-Authenticate` header value for 401 and 403 answers; `undefined` otherwise. */
  readonly wwwAuthenticate: string | undefined;
  /** For `ERR_OMS_AUTH_DPOP_NONCE`: the nonce to send back in the `DPoP-Nonce` header. */
  dpopNonce?: string;
  /** For a 503: when trying again may help, in ms (a JWKS source's remaining cooldown), if the source knows. */
  retryAfterMs?: number;
  constructor(
    readonly code: AuthErrorCode,
    message: string,
    readonly retryable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
    this.httpStatus = httpStatusOf(code);
    this.wwwAuthenticate = challengeOf(code);
  }
}

/**
 * True for any error thrown by @oms/auth, across duplicated installs too.
 *
 * @example
 * import { isOmsAuthError } from '@oms/auth';
 * declare const e: unknown;
 * const status = isOmsAuthError(e) ? e.httpStatus : 500;
 */
export const isOmsAuthError = (e: unknown): e is OmsAuthError =>
  e instanceof Error && (e as Partial<OmsAuthError>).isOmsAuthError === true;

export const invalidOption = (message: string): OmsAuthError =>
  new OmsAuthError('ERR_OMS_AUTH_INVALID_OPTION', message);

export const fail = (code: AuthErrorCode, message: string, cause?: unknown): OmsAuthError =>
  new OmsAuthError(code, message, httpStatusOf(code) === 503, cause === undefined ? undefined : { cause });
