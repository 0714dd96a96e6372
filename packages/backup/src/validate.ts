import { OmsBackupError } from './errors.js';
import { type Validators, validators } from './internal/validate.js';
import type { BackupManagerOptions, BackupSource, BackupStorage } from './types.js';

/** The shared option checks, failing with ERR_OMS_BACKUP_INVALID_OPTION. */
export const v: Validators = validators((m) => new OmsBackupError('ERR_OMS_BACKUP_INVALID_OPTION', m));

export const invalid = (message: string): OmsBackupError =>
  new OmsBackupError('ERR_OMS_BACKUP_INVALID_OPTION', message);

/** Backup ids name directories and object keys, so they stay within a safe alphabet. */
export function checkId(id: unknown): string {
  if (typeof id !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(id)) {
    throw new OmsBackupError(
      'ERR_OMS_BACKUP_NOT_FOUND',
      `no backup with id ${JSON.stringify(id)}: ids look like 20260101T120000000Z-1a2b3c4d (run list to see them)`,
    );
  }
  return id;
}

export function checkSignal(name: string, s: unknown): AbortSignal | undefined {
  if (s === undefined) return undefined;
  if (typeof s !== 'object' || s === null || typeof (s as AbortSignal).aborted !== 'boolean') {
    throw invalid(`${name} must be an AbortSignal (got ${s === null ? 'null' : typeof s})`);
  }
  return s as AbortSignal;
}

/** backupManager's source, storage and lock have the shapes it calls, checked once at construction. */
export function checkParts(o: BackupManagerOptions): void {
  if (typeof o !== 'object' || o === null) throw invalid('backupManager needs { source, storage }');
  const s = o.source as Partial<BackupSource> | undefined;
  if (
    !s ||
    typeof s.dump !== 'function' ||
    typeof s.verify !== 'function' ||
    typeof s.restore !== 'function'
  ) {
    throw invalid('source must be a backup source such as postgresSource({ connectionString })');
  }
  const st = o.storage as Partial<BackupStorage> | undefined;
  if (!st || (['put', 'get', 'list', 'delete'] as const).some((k) => typeof st[k] !== 'function')) {
    throw invalid('storage must have put, get, list and delete, such as fileStorage(dir)');
  }
  const lock = o.lock as Record<string, unknown> | undefined;
  if (lock !== undefined && typeof lock?.tryAcquire !== 'function' && typeof lock?.acquire !== 'function') {
    throw invalid('lock must have tryAcquire(key) or acquire(key), such as a Locks store of @oms/locks');
  }
}
