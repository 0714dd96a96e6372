import { OmsOutboxError } from './errors.js';
import { type Validators, validators } from './internal/validate.js';

/** The shared option checks, failing with `ERR_OMS_OUTBOX_INVALID_OPTION`. */
export const v: Validators = validators((m) => new OmsOutboxError('ERR_OMS_OUTBOX_INVALID_OPTION', m));

const IDENTIFIER = /^[a-z_][a-z0-9_]{0,62}$/;

/** Schema, table and channel names are interpolated as identifiers, so only plain lower-case names pass. */
export function identifier(name: string, value: unknown): string {
  if (typeof value !== 'string' || !IDENTIFIER.test(value)) {
    throw new OmsOutboxError(
      'ERR_OMS_OUTBOX_INVALID_OPTION',
      `${name} must be a lower-case SQL identifier of at most 63 characters matching ${IDENTIFIER} (got ${JSON.stringify(value)})`,
    );
  }
  return value;
}

/** Checks that an optional `signal` is an AbortSignal, so a typo fails at the call rather than never aborting. */
export function checkSignal(signal: unknown): AbortSignal | undefined {
  if (signal === undefined) return undefined;
  if (!(signal instanceof AbortSignal)) {
    throw new OmsOutboxError('ERR_OMS_OUTBOX_INVALID_OPTION', 'signal must be an AbortSignal');
  }
  return signal;
}

/** Throws the signal's reason wrapped as an aborted error when it has fired. */
export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new OmsOutboxError('ERR_OMS_OUTBOX_ABORTED', 'the operation was aborted', false, {
      cause: signal.reason,
    });
  }
}
