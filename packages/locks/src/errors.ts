/**
 * Stable codes of every error @oms/locks throws.
 *
 * @example
 * import type { LocksErrorCode } from '@oms/locks';
 * const retryLater: LocksErrorCode[] = ['ERR_OMS_LOCKS_TIMEOUT', 'ERR_OMS_LOCKS_BACKEND'];
 */
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
 * import { isOmsLocksError, type Locks } from '@oms/locks';
 * declare const locks: Locks;
 * declare function reply(status: number): void;
 * try { await (await locks.acquire('orders', { waitMs: 100 })).release(); }
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
 * import { isOmsLocksError, type Lease } from '@oms/locks';
 * declare const lease: Lease;
 * declare const log: { warn(fields: object, message: string): void };
 * lease.signal.addEventListener('abort', () => {
 *   const reason: unknown = lease.signal.reason;
 *   if (isOmsLocksError(reason)) log.warn({ code: reason.code }, 'lock lost');
 * });
 */
export const isOmsLocksError = (e: unknown): e is OmsLocksError =>
  e instanceof Error && (e as Partial<OmsLocksError>).isOmsLocksError === true;
