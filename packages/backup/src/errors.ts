/**
 * Stable codes of every error @oms/backup throws.
 *
 * @example
 * import type { BackupErrorCode } from '@oms/backup';
 * const refuse: BackupErrorCode[] = ['ERR_OMS_BACKUP_CORRUPT', 'ERR_OMS_BACKUP_DECRYPT'];
 */
export type BackupErrorCode =
  | 'ERR_OMS_BACKUP_INVALID_OPTION'
  | 'ERR_OMS_BACKUP_NOT_FOUND'
  | 'ERR_OMS_BACKUP_BINARY_NOT_FOUND'
  | 'ERR_OMS_BACKUP_VERSION_MISMATCH'
  | 'ERR_OMS_BACKUP_CONNECTION'
  | 'ERR_OMS_BACKUP_DUMP_FAILED'
  | 'ERR_OMS_BACKUP_RESTORE_FAILED'
  | 'ERR_OMS_BACKUP_STORAGE'
  | 'ERR_OMS_BACKUP_CORRUPT'
  | 'ERR_OMS_BACKUP_DECRYPT'
  | 'ERR_OMS_BACKUP_VERIFY_MISMATCH'
  | 'ERR_OMS_BACKUP_TARGET_NOT_EMPTY'
  | 'ERR_OMS_BACKUP_ABORTED'
  | 'ERR_OMS_BACKUP_CLOSED'
  | 'ERR_OMS_BACKUP_MISSING_PEER';

/**
 * The base error of @oms/backup: a stable `code`, whether retrying may help, and the underlying `cause`.
 *
 * @example
 * import { isOmsBackupError, type BackupManager } from '@oms/backup';
 * declare const backups: BackupManager;
 * try {
 *   await backups.verify('20260101T000000000Z-1a2b', { scratchUrl: 'postgres://localhost/postgres' });
 * } catch (e) {
 *   if (isOmsBackupError(e) && e.code === 'ERR_OMS_BACKUP_CORRUPT') process.exitCode = 1;
 *   else throw e;
 * }
 */
export class OmsBackupError extends Error {
  readonly isOmsBackupError = true;
  constructor(
    readonly code: BackupErrorCode,
    message: string,
    readonly retryable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * True for any error thrown by @oms/backup, across duplicated installs too.
 *
 * @example
 * import { isOmsBackupError } from '@oms/backup';
 * const describe = (e: unknown): string => (isOmsBackupError(e) ? e.code : 'unexpected');
 */
export const isOmsBackupError = (e: unknown): e is OmsBackupError =>
  e instanceof Error && (e as Partial<OmsBackupError>).isOmsBackupError === true;

/** The error an aborted call rejects with: the signal's own reason when it is ours, else ERR_OMS_BACKUP_ABORTED. */
export function abortError(signal: AbortSignal | undefined, what: string): OmsBackupError {
  const reason: unknown = signal?.reason;
  if (isOmsBackupError(reason)) return reason;
  return new OmsBackupError('ERR_OMS_BACKUP_ABORTED', `${what} was aborted`, true, { cause: reason });
}

/** Throws the abort error when `signal` has already aborted. */
export function throwIfAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(signal, what);
}
