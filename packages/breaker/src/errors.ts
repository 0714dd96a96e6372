/**
 * Every code an @oms/breaker error can carry.
 *
 * @example
 * const shed: BreakerErrorCode[] = ['ERR_OMS_BREAKER_OPEN', 'ERR_OMS_BREAKER_BULKHEAD_FULL'];
 * export const statusOf = (e: unknown) => (isOmsBreakerError(e) && shed.includes(e.code) ? 503 : 500);
 */
export type BreakerErrorCode =
  | 'ERR_OMS_BREAKER_INVALID_OPTION'
  | 'ERR_OMS_BREAKER_INVALID_SNAPSHOT'
  | 'ERR_OMS_BREAKER_OPEN'
  | 'ERR_OMS_BREAKER_TIMEOUT'
  | 'ERR_OMS_BREAKER_BULKHEAD_FULL'
  | 'ERR_OMS_BREAKER_RETRY_BUDGET'
  | 'ERR_OMS_BREAKER_CONCURRENCY_LIMIT'
  | 'ERR_OMS_BREAKER_CLOSED';

/**
 * The one error class of @oms/breaker. `code` is stable; `retryable` says whether trying the same call again
 * later can succeed; `retryAfterMs` (on `ERR_OMS_BREAKER_OPEN`) is how long the circuit stays open.
 *
 * @example
 * declare const breaker: CircuitBreaker;
 * declare function serveFromCache(): Response;
 * export async function prices(): Promise<Response> {
 *   try {
 *     return await breaker.execute(() => fetch('http://pricing.internal/prices'));
 *   } catch (e) {
 *     if (isOmsBreakerError(e) && e.code === 'ERR_OMS_BREAKER_OPEN') return serveFromCache();
 *     throw e;
 *   }
 * }
 */
export class OmsBreakerError extends Error {
  readonly isOmsBreakerError = true;
  /** For `ERR_OMS_BREAKER_OPEN`: milliseconds until the breaker lets a probe through. */
  readonly retryAfterMs: number | undefined;
  constructor(
    readonly code: BreakerErrorCode,
    message: string,
    readonly retryable = false,
    options?: { cause?: unknown; retryAfterMs?: number },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/**
 * True for any error thrown by @oms/breaker, across duplicated installs too.
 *
 * @example
 * let timeouts = 0;
 * export const count = (err: unknown) => {
 *   if (isOmsBreakerError(err) && err.code === 'ERR_OMS_BREAKER_TIMEOUT') timeouts++;
 * };
 */
export const isOmsBreakerError = (e: unknown): e is OmsBreakerError =>
  e instanceof Error && (e as Partial<OmsBreakerError>).isOmsBreakerError === true;

/** Errors our own policies raise to shed load; they say nothing about the health of the dependency. */
export const isRejection = (e: unknown): boolean =>
  isOmsBreakerError(e) &&
  (e.code === 'ERR_OMS_BREAKER_OPEN' ||
    e.code === 'ERR_OMS_BREAKER_BULKHEAD_FULL' ||
    e.code === 'ERR_OMS_BREAKER_RETRY_BUDGET' ||
    e.code === 'ERR_OMS_BREAKER_CONCURRENCY_LIMIT' ||
    e.code === 'ERR_OMS_BREAKER_CLOSED');

export function invalid(message: string): OmsBreakerError {
  return new OmsBreakerError('ERR_OMS_BREAKER_INVALID_OPTION', message);
}
