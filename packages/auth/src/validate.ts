import { invalidOption } from './errors.js';
import { type Validators, validators } from './internal/validate.js';

/** The shared option checks, failing with `ERR_OMS_AUTH_INVALID_OPTION`. */
export const v: Validators = validators((m) => invalidOption(m));

/** A non-empty string, or a non-empty list of them: `issuer` and `audience` accept either. */
export function stringList(name: string, value: unknown): readonly string[] {
  const list = typeof value === 'string' ? [value] : value;
  if (
    !Array.isArray(list) ||
    list.length === 0 ||
    list.some((s) => typeof s !== 'string' || s.length === 0)
  ) {
    throw invalidOption(
      `${name} must be a non-empty string or a non-empty array of them (got ${JSON.stringify(value)})`,
    );
  }
  return Object.freeze([...(list as string[])]);
}
