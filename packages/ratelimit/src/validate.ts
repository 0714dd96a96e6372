import { invalidOption, OmsRatelimitError } from './errors.js';
import { keyProblem, type Validators, validators } from './internal/validate.js';

/** The checks every @oms package shares, failing with `ERR_OMS_RATELIMIT_INVALID_OPTION`. */
export const v: Validators = validators((message) => invalidOption(message));

const NAME = /^[A-Za-z0-9_.-]{1,64}$/;

/** Policy names go into headers and metric attributes unescaped, so they are restricted. */
export function policyName(name: unknown): string {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw invalidOption(`name must be 1-64 characters of A-Z a-z 0-9 _ . - (got ${JSON.stringify(name)})`);
  }
  return name;
}

/** Returns an error instead of throwing so the async API can reject without a try/catch on the hot path. */
export function keyError(key: unknown): OmsRatelimitError | undefined {
  const problem = keyProblem('key', key);
  return problem === undefined ? undefined : new OmsRatelimitError('ERR_OMS_RATELIMIT_INVALID_KEY', problem);
}

/** A cost must be a whole unit count the algorithm could ever admit. */
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
