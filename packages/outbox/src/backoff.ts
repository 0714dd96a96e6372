import { OmsOutboxError } from './errors.js';
import type { Backoff } from './types.js';
import { v } from './validate.js';

/** Turns the `backoff` option into a function of the attempt number (1 after the first failure), checked once. */
export function backoffFn(
  b: Backoff | undefined,
  random: () => number = Math.random,
): (attempt: number) => number {
  if (typeof b === 'function') {
    return (attempt) => {
      const ms = b(attempt);
      // a user function returning NaN would make the message available never (or at once); clamp instead
      return Number.isFinite(ms) && ms > 0 ? ms : 0;
    };
  }
  if (b !== undefined && (typeof b !== 'object' || b === null)) {
    throw new OmsOutboxError(
      'ERR_OMS_OUTBOX_INVALID_OPTION',
      'backoff must be a function or { baseMs, maxMs, factor, jitter }',
    );
  }
  const baseMs = v.durationMs('backoff.baseMs', b?.baseMs ?? 500);
  const maxMs = v.durationMs('backoff.maxMs', b?.maxMs ?? 60_000, { min: baseMs });
  const factor = v.positiveFinite('backoff.factor', b?.factor ?? 2);
  const jitter = v.fraction('backoff.jitter', b?.jitter ?? 0.2);
  return (attempt) => {
    const ms = Math.min(maxMs, baseMs * factor ** Math.max(0, attempt - 1));
    return ms * (1 - jitter * random());
  };
}
