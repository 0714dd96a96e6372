/**
 * Stable codes of every error @oms/outbox throws.
 *
 * @example
 * import type { OutboxErrorCode } from '@oms/outbox';
 * const badRequest: OutboxErrorCode[] = ['ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON', 'ERR_OMS_OUTBOX_PAYLOAD_TOO_LARGE'];
 */
export type OutboxErrorCode =
  | 'ERR_OMS_OUTBOX_INVALID_OPTION'
  | 'ERR_OMS_OUTBOX_INVALID_MESSAGE'
  | 'ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON'
  | 'ERR_OMS_OUTBOX_PAYLOAD_TOO_LARGE'
  | 'ERR_OMS_OUTBOX_PUBLISHER'
  | 'ERR_OMS_OUTBOX_DRAIN_TIMEOUT'
  | 'ERR_OMS_OUTBOX_ABORTED'
  | 'ERR_OMS_OUTBOX_STOPPED'
  | 'ERR_OMS_OUTBOX_LISTEN_LOST';

/**
 * The base error of @oms/outbox: a stable `code`, whether retrying may help, and the underlying `cause`.
 *
 * @example
 * import { enqueue, isOmsOutboxError } from '@oms/outbox';
 * import type { Kysely } from 'kysely';
 * declare const db: Kysely<unknown>;
 * try {
 *   await enqueue(db, { topic: 'orders', key: 'o-1', type: 'created', payload: { total: 10n } });
 * } catch (e) {
 *   if (isOmsOutboxError(e) && e.code === 'ERR_OMS_OUTBOX_PAYLOAD_NOT_JSON') throw new TypeError(e.message);
 * }
 */
export class OmsOutboxError extends Error {
  readonly isOmsOutboxError = true;
  constructor(
    readonly code: OutboxErrorCode,
    message: string,
    readonly retryable = false,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * True for any error thrown by @oms/outbox, across duplicated installs too.
 *
 * @example
 * import { isOmsOutboxError } from '@oms/outbox';
 * declare const e: unknown;
 * const status = isOmsOutboxError(e) && e.code.startsWith('ERR_OMS_OUTBOX_PAYLOAD') ? 400 : 500;
 */
export const isOmsOutboxError = (e: unknown): e is OmsOutboxError =>
  e instanceof Error && (e as Partial<OmsOutboxError>).isOmsOutboxError === true;
