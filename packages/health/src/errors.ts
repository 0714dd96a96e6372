/**
 * The stable codes of {@link OmsHealthError}.
 *
 * @example
 * const retryable = (code: HealthErrorCode) => code === 'ERR_OMS_HEALTH_ABORTED';
 */
export type HealthErrorCode =
  | 'ERR_OMS_HEALTH_INVALID_OPTION'
  | 'ERR_OMS_HEALTH_DUPLICATE_CHECK'
  | 'ERR_OMS_HEALTH_UNKNOWN_CHECK'
  | 'ERR_OMS_HEALTH_CLOSED'
  | 'ERR_OMS_HEALTH_ABORTED';

/**
 * The one error class @oms/health throws. `code` is stable; the message says what was wrong and what to do.
 *
 * @example
 * declare const registry: HealthRegistry;
 * try {
 *   registry.register({ name: 'db:ping', check: () => ({}), kinds: ['readiness'], critical: true, timeoutMs: 0 });
 * } catch (e) {
 *   if (!isOmsHealthError(e) || e.code !== 'ERR_OMS_HEALTH_INVALID_OPTION') throw e;
 * }
 */
export class OmsHealthError extends Error {
  readonly isOmsHealthError = true;
  constructor(
    readonly code: HealthErrorCode,
    message: string,
    readonly retryable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * True for any error thrown by @oms/health, across duplicated installs too.
 *
 * @example
 * declare const e: unknown;
 * const duplicate = isOmsHealthError(e) && e.code === 'ERR_OMS_HEALTH_DUPLICATE_CHECK';
 */
export const isOmsHealthError = (e: unknown): e is OmsHealthError =>
  e instanceof Error && (e as Partial<OmsHealthError>).isOmsHealthError === true;
