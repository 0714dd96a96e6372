export { type BackupErrorCode, isOmsBackupError, OmsBackupError } from './errors.js';
export { fileStorage } from './file-storage.js';
export { backupManager } from './manager.js';
export { type InstrumentOptions, instrument } from './telemetry.js';
export type * from './types.js';
export { VERSION } from './version.js';
