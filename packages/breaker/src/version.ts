/** The package version, for the OpenTelemetry tracer and meter. */
export const VERSION = '0.1.0';
