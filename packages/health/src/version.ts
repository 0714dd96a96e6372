/** The version of @oms/health, used as the tracer/meter version. */
export const VERSION = '0.1.0';
