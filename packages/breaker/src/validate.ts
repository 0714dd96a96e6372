import { invalid } from './errors.js';
import { type Validators, validators } from './internal/validate.js';

/** The option checks every @oms package shares, failing with `ERR_OMS_BREAKER_INVALID_OPTION`. */
export const v: Validators = validators(invalid);

export function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null;
}

export function requireObject(name: string, x: unknown): asserts x is Record<string, unknown> {
  if (!isObject(x)) throw invalid(`${name} must be an object (got ${x === null ? 'null' : typeof x})`);
}

export function func<F>(name: string, x: unknown): F {
  if (typeof x !== 'function') throw invalid(`${name} must be a function (got ${typeof x})`);
  return x as F;
}

/** Policy names end up in metric attributes and Redis keys: short, low-cardinality strings. */
export function policyName(label: string, x: unknown): string {
  return v.key(label, x, 200);
}
