import { OmsHealthError } from './errors.js';
import { type Validators, validators } from './internal/validate.js';

/** The shared option checks, throwing `ERR_OMS_HEALTH_INVALID_OPTION`. */
export const v: Validators = validators((m) => new OmsHealthError('ERR_OMS_HEALTH_INVALID_OPTION', m));

/** Throws `ERR_OMS_HEALTH_INVALID_OPTION` for a rule the shared vocabulary does not cover. */
export function invalid(message: string): never {
  throw new OmsHealthError('ERR_OMS_HEALTH_INVALID_OPTION', message);
}
