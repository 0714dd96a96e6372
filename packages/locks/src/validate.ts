import { OmsLocksError } from './errors.js';
import type { LockMode } from './types.js';

/** The shortest ttl: auto-extension runs at ttl/3, and a heartbeat faster than ~70 ms is a self-inflicted DoS. */
export const MIN_TTL_MS = 200;
export const MAX_KEY_BYTES = 1024;

const invalid = (message: string) => new OmsLocksError('ERR_OMS_LOCKS_INVALID_OPTION', message);

export function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new OmsLocksError(
      'ERR_OMS_LOCKS_INVALID_KEY',
      `key must be a non-empty string (got ${typeof key === 'string' ? '""' : typeof key})`,
    );
  }
  // length in UTF-16 units bounds the byte length from both sides; only count bytes near the limit
  if (key.length > MAX_KEY_BYTES / 3 && Buffer.byteLength(key) > MAX_KEY_BYTES) {
    throw new OmsLocksError(
      'ERR_OMS_LOCKS_INVALID_KEY',
      `key must be at most ${MAX_KEY_BYTES} bytes of UTF-8 (got ${Buffer.byteLength(key)}); hash long keys yourself`,
    );
  }
}

export function checkTtl(name: string, ms: unknown): asserts ms is number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms <= 0) {
    throw invalid(`${name} must be a finite number > 0 (got ${String(ms)})`);
  }
  if (ms < MIN_TTL_MS) {
    throw invalid(`${name} must be at least ${MIN_TTL_MS} ms, the heartbeat floor (got ${ms})`);
  }
}

export function checkWait(name: string, ms: unknown): asserts ms is number {
  if (typeof ms !== 'number' || Number.isNaN(ms) || ms < 0) {
    throw invalid(`${name} must be a number >= 0 or Infinity (got ${String(ms)})`);
  }
}

export function checkNonNegativeFinite(name: string, ms: unknown): asserts ms is number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw invalid(`${name} must be a finite number >= 0 (got ${String(ms)})`);
  }
}

export function checkMode(mode: unknown): asserts mode is LockMode {
  if (mode !== 'exclusive' && mode !== 'shared') {
    throw invalid(`mode must be 'exclusive' or 'shared' (got ${JSON.stringify(mode)})`);
  }
}

export function checkPrefix(name: string, v: unknown): asserts v is string {
  if (typeof v !== 'string' || v.length > 200 || /[{}\s]/.test(v)) {
    throw invalid(
      `${name} must be a string of at most 200 characters without braces or whitespace (got ${JSON.stringify(v)})`,
    );
  }
}
