/**
 * The package version, for the tracer and meter.
 *
 * @example
 * metrics.getMeter('@oms/ratelimit', VERSION);
 */
export const VERSION = '0.1.0';
