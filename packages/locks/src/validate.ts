import { OmsLocksError } from './errors.js';
import { keyProblem, MAX_KEY_BYTES, type Validators, validators } from './internal/validate.js';
import type { LockMode } from './types.js';

/** The shared option checks, throwing `ERR_OMS_LOCKS_INVALID_OPTION`. */
export const v: Validators = validators((m) => new OmsLocksError('ERR_OMS_LOCKS_INVALID_OPTION', m));

/**
 * The shortest ttl: auto-extension runs at ttl/3, and a heartbeat faster than ~70 ms is a self-inflicted DoS.
 *
 * @example
 * import { MIN_TTL_MS, memoryLocks } from '@oms/locks';
 * const locks = memoryLocks({ ttlMs: Math.max(MIN_TTL_MS, 150) });
 */
export const MIN_TTL_MS = 200;
/**
 * The longest lock key, in UTF-8 bytes; hash longer keys yourself.
 *
 * @example
 * import { MAX_KEY_BYTES } from '@oms/locks';
 * const fits = (key: string) => Buffer.byteLength(key) <= MAX_KEY_BYTES;
 */
export { MAX_KEY_BYTES };

const invalid = (message: string) => new OmsLocksError('ERR_OMS_LOCKS_INVALID_OPTION', message);

/** Keys have their own code (`ERR_OMS_LOCKS_INVALID_KEY`): a bad key is a caller's data, not configuration. */
export function checkKey(key: unknown): asserts key is string {
  const problem = keyProblem('key', key);
  if (problem !== undefined) throw new OmsLocksError('ERR_OMS_LOCKS_INVALID_KEY', problem);
}

/** A lease ttl: a duration, and no shorter than the heartbeat floor. */
export function checkTtl(name: string, ms: unknown): number {
  const ttl = v.durationMs(name, ms);
  if (ttl < MIN_TTL_MS) {
    throw invalid(`${name} must be at least ${MIN_TTL_MS} ms, the heartbeat floor (got ${ttl})`);
  }
  return ttl;
}

/** How long an acquire may wait: `0` tries once, `Infinity` waits until the lock or the signal. */
export const checkWait = (name: string, ms: unknown): number =>
  v.durationMs(name, ms, { allowInfinity: true });

export function checkMode(mode: unknown): asserts mode is LockMode {
  if (mode !== 'exclusive' && mode !== 'shared') {
    throw invalid(`mode must be 'exclusive' or 'shared' (got ${JSON.stringify(mode)})`);
  }
}

export function checkPrefix(name: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length > 200 || /[{}\s]/.test(value)) {
    throw invalid(
      `${name} must be a string of at most 200 characters without braces or whitespace (got ${JSON.stringify(value)})`,
    );
  }
}

export function checkBoolean(name: string, value: unknown): boolean {
  if (typeof value !== 'boolean')
    throw invalid(`${name} must be true or false (got ${JSON.stringify(value)})`);
  return value;
}
