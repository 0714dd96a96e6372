/** The package version, for the tracer and meter. */
export const VERSION = '0.1.0';
