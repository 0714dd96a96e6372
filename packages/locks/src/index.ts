export { isOmsLocksError, type LocksErrorCode, OmsLocksError } from './errors.js';
export { systemClock } from './internal/clock.js';
export { type MemoryLocksOptions, MemoryLockTable, memoryLocks, memoryLockTable } from './memory.js';
export { type InstrumentOptions, instrument } from './telemetry.js';
export type {
  AcquireOptions,
  Clock,
  Lease,
  LockMode,
  Locks,
  LocksEvents,
  LocksOptions,
  LossReason,
} from './types.js';
export { MAX_KEY_BYTES, MIN_TTL_MS } from './validate.js';
export { VERSION } from './version.js';
