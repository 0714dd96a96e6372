// Generated from package.json by scripts/sync-internal.mjs; do not edit.
/**
 * The version of @oms/outbox, as published; its tracer and meter carry it.
 *
 * @example
 * import { VERSION } from '@oms/outbox';
 * const resource = { 'service.version': VERSION };
 */
export const VERSION = '0.0.0';
