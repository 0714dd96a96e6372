/** Stable codes of every error @oms/locks throws. */
export type LocksErrorCode =
  | 'ERR_OMS_LOCKS_INVALID_OPTION'
  | 'ERR_OMS_LOCKS_INVALID_KEY'
  | 'ERR_OMS_LOCKS_TIMEOUT'
  | 'ERR_OMS_LOCKS_ABORTED'
  | 'ERR_OMS_LOCKS_LOST'
  | 'ERR_OMS_LOCKS_RELEASED'
  | 'ERR_OMS_LOCKS_CLOSED'
  | 'ERR_OMS_LOCKS_BACKEND';

/**
 * The base error of @oms/locks: a stable `code`, whether retrying may help, and the underlying `cause`.
 *
 * @example
 * try { await locks.acquire('orders', { waitMs: 100 }); }
 * catch (e) { if (isOmsLocksError(e) && e.code === 'ERR_OMS_LOCKS_TIMEOUT') reply(409); else throw e; }
 */
export class OmsLocksError extends Error {
  readonly isOmsLocksError = true;
  constructor(
    readonly code: LocksErrorCode,
    message: string,
    readonly retryable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * True for any error thrown by @oms/locks, across duplicated installs too.
 *
 * @example
 * lease.signal.addEventListener('abort', () => {
 *   if (isOmsLocksError(lease.signal.reason)) log.warn({ code: lease.signal.reason.code }, 'lock lost');
 * });
 */
export const isOmsLocksError = (e: unknown): e is OmsLocksError =>
  e instanceof Error && (e as Partial<OmsLocksError>).isOmsLocksError === true;
