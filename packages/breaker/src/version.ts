/**
 * The package version, for the OpenTelemetry tracer and meter.
 *
 * @example
 * import { VERSION } from '@oms/breaker';
 * log.info({ breaker: VERSION });
 */
export const VERSION = '0.1.0';
