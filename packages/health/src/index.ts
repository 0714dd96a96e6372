export type {
  DiskOptions,
  EventLoopDelayOptions,
  HttpCheckOptions,
  LatencyThresholds,
  MemoryOptions,
  Pingable,
  SqlQueryable,
} from './checks.js';
export { checks, disk, eventLoopDelay, http, memory, postgres, redis } from './checks.js';
export { systemClock } from './clock.js';
export { type HealthErrorCode, isOmsHealthError, OmsHealthError } from './errors.js';
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
  type ShutdownLogEntry,
  type ShutdownPhase,
} from './shutdown.js';
export { instrumentHealth } from './telemetry.js';
export type * from './types.js';
export { VERSION } from './version.js';
