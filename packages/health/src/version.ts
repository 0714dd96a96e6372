/**
 * The version of @oms/health, used as the tracer/meter version.
 *
 * @example
 * import { VERSION } from '@oms/health';
 * const userAgent = `my-service (@oms/health ${VERSION})`;
 */
export const VERSION = '0.1.0';
