// Generated from package.json by scripts/sync-internal.mjs; do not edit.
/**
 * The version of @oms/breaker, as published; its tracer and meter carry it.
 *
 * @example
 * import { VERSION } from '@oms/breaker';
 * const resource = { 'service.version': VERSION };
 */
export const VERSION = '0.1.0';
