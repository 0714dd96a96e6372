import { OmsBreakerError } from './errors.js';
import type { BreakerSnapshot, BreakerState } from './types.js';
import { isObject } from './validate.js';

const STATES: readonly BreakerState[] = ['closed', 'open', 'half-open'];

const isCount = (n: unknown): boolean => typeof n === 'number' && Number.isFinite(n) && n >= 0;

function validWindow(w: unknown): boolean {
  if (!isObject(w)) return false;
  if (w.kind === 'calls') return Array.isArray(w.outcomes) && w.outcomes.every(isCount);
  if (w.kind !== 'time' || !Array.isArray(w.buckets) || !isCount(w.bucketMs)) return false;
  return w.buckets.every(
    (b: unknown) => Array.isArray(b) && b.length === 4 && Number.isInteger(b[0]) && b.slice(1).every(isCount),
  );
}

/**
 * Checks a snapshot before a restore touches any state, so a bad snapshot leaves the breaker as it was.
 * Throws `ERR_OMS_BREAKER_INVALID_SNAPSHOT` saying what is wrong.
 */
export function checkSnapshot(s: BreakerSnapshot, name: string): void {
  const bad = (why: string) =>
    new OmsBreakerError('ERR_OMS_BREAKER_INVALID_SNAPSHOT', `cannot restore: ${why}`);
  if (!isObject(s) || s.v !== 1) throw bad('not a version 1 snapshot from toJSON()');
  if (s.name !== name) throw bad(`snapshot is of breaker '${String(s.name)}', not '${name}'`);
  if (!STATES.includes(s.state)) throw bad(`unknown state ${String(s.state)}`);
  for (const k of ['openUntil', 'trips', 'consecutiveFailures'] as const) {
    if (typeof s[k] !== 'number' || !Number.isFinite(s[k]) || s[k] < 0)
      throw bad(`${k} must be a number >= 0`);
  }
  for (const k of ['window', 'slowWindow'] as const) {
    if (s[k] !== undefined && !validWindow(s[k])) throw bad(`${k} is not a window from toJSON()`);
  }
}
