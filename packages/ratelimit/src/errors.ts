/**
 * Stable codes of every error @oms/ratelimit throws.
 *
 * @example
 * import { isOmsRatelimitError, type RatelimitErrorCode } from '@oms/ratelimit';
 * declare const e: unknown;
 * const code: RatelimitErrorCode | undefined = isOmsRatelimitError(e) ? e.code : undefined;
 * const status = code === 'ERR_OMS_RATELIMIT_INVALID_KEY' ? 400 : 500;
 */
export type RatelimitErrorCode =
  | 'ERR_OMS_RATELIMIT_INVALID_OPTION'
  | 'ERR_OMS_RATELIMIT_INVALID_KEY'
  | 'ERR_OMS_RATELIMIT_INVALID_COST'
  | 'ERR_OMS_RATELIMIT_COST_EXCEEDS_LIMIT'
  | 'ERR_OMS_RATELIMIT_STORE_UNAVAILABLE'
  | 'ERR_OMS_RATELIMIT_STORE_TIMEOUT'
  | 'ERR_OMS_RATELIMIT_TIMEOUT'
  | 'ERR_OMS_RATELIMIT_ABORTED'
  | 'ERR_OMS_RATELIMIT_MIXED_STORES'
  | 'ERR_OMS_RATELIMIT_CLOSED';

/**
 * The base error of @oms/ratelimit. `code` is stable; `retryable` says whether the same call may succeed later.
 *
 * @example
 * import { isOmsRatelimitError, type RateLimiter } from '@oms/ratelimit';
 * declare const limiter: RateLimiter;
 * let status = 200;
 * try {
 *   await limiter.consume('');
 * } catch (e) {
 *   if (isOmsRatelimitError(e) && !e.retryable) status = 400;
 * }
 */
export class OmsRatelimitError extends Error {
  readonly isOmsRatelimitError = true;
  /** For `ERR_OMS_RATELIMIT_TIMEOUT` from `acquire`: how long the caller would have had to wait. */
  retryAfterMs?: number;
  constructor(
    readonly code: RatelimitErrorCode,
    message: string,
    readonly retryable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * True for any error thrown by @oms/ratelimit, across duplicated installs too.
 *
 * @example
 * import { isOmsRatelimitError } from '@oms/ratelimit';
 * declare const e: unknown;
 * const status = isOmsRatelimitError(e) && e.code === 'ERR_OMS_RATELIMIT_TIMEOUT' ? 429 : 500;
 */
export const isOmsRatelimitError = (e: unknown): e is OmsRatelimitError =>
  e instanceof Error && (e as Partial<OmsRatelimitError>).isOmsRatelimitError === true;

export const invalidOption = (message: string): OmsRatelimitError =>
  new OmsRatelimitError('ERR_OMS_RATELIMIT_INVALID_OPTION', message);
