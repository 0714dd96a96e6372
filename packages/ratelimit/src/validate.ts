import { invalidOption, OmsRatelimitError } from './errors.js';

export function positiveFinite(name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
    throw invalidOption(`${name} must be a finite number > 0 (got ${String(v)})`);
  }
}

export function positiveInt(name: string, v: unknown): asserts v is number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw invalidOption(`${name} must be an integer >= 1 (got ${String(v)})`);
  }
}

export function fraction(name: string, v: unknown, { openLow = false } = {}): asserts v is number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1 || (openLow && v === 0)) {
    throw invalidOption(`${name} must be a number in ${openLow ? '(0' : '[0'}, 1] (got ${String(v)})`);
  }
}

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;
export function policyName(v: unknown): asserts v is string {
  if (typeof v !== 'string' || !NAME.test(v)) {
    throw invalidOption(`name must be 1-64 characters of A-Z a-z 0-9 _ . - (got ${JSON.stringify(v)})`);
  }
}

/** Returns an error instead of throwing so the async API can reject without a try/catch on the hot path. */
export function keyError(key: unknown): OmsRatelimitError | undefined {
  if (typeof key === 'string') {
    const n = key.length;
    // a UTF-16 length above 341 may exceed 1 KiB once encoded; only then pay for byteLength
    if (n !== 0 && (n <= 341 || Buffer.byteLength(key) <= 1024)) return undefined;
    return new OmsRatelimitError(
      'ERR_OMS_RATELIMIT_INVALID_KEY',
      n === 0
        ? 'key must be a non-empty string'
        : `key must be at most 1024 bytes (got ${Buffer.byteLength(key)})`,
    );
  }
  return new OmsRatelimitError('ERR_OMS_RATELIMIT_INVALID_KEY', `key must be a string (got ${typeof key})`);
}

export function costError(cost: unknown, max: number): OmsRatelimitError | undefined {
  if (typeof cost !== 'number' || !Number.isSafeInteger(cost) || cost <= 0) {
    return new OmsRatelimitError(
      'ERR_OMS_RATELIMIT_INVALID_COST',
      `cost must be an integer >= 1 (got ${String(cost)})`,
    );
  }
  if (cost > max) {
    return new OmsRatelimitError(
      'ERR_OMS_RATELIMIT_COST_EXCEEDS_LIMIT',
      `cost ${cost} exceeds the limit ${max}, so it could never be admitted; raise the limit or split the work`,
    );
  }
  return undefined;
}
