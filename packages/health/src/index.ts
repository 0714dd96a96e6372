export type {
  DiskOptions,
  EventLoopDelayOptions,
  HttpCheckOptions,
  LatencyThresholds,
  MemoryOptions,
  Pingable,
  SqlQueryable,
} from './checks.js';
export { checks } from './checks.js';
export { type HealthErrorCode, isOmsHealthError, OmsHealthError } from './errors.js';
export { systemClock } from './internal/clock.js';
export { redactSecrets } from './redact.js';
export { healthRegistry } from './registry.js';
export { type HealthServer, type HealthServerOptions, healthServer } from './server.js';
export {
  type GracefulShutdown,
  type GracefulShutdownOptions,
  gracefulShutdown,
  type InFlightRequest,
  type ShutdownEvents,
  type ShutdownHook,
  type ShutdownHookFn,
  type ShutdownLogEntry,
  type ShutdownPhase,
} from './shutdown.js';
export { type InstrumentOptions, instrument } from './telemetry.js';
export type * from './types.js';
export { VERSION } from './version.js';
