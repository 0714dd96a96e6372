export { adaptiveConcurrency } from './adaptive-concurrency.js';
export {
  constantBackoff,
  decorrelatedJitterBackoff,
  exponentialBackoff,
  fullJitterBackoff,
  linearBackoff,
} from './backoff.js';
export { bulkhead } from './bulkhead.js';
export { circuitBreaker } from './circuit-breaker.js';
export { type BreakerErrorCode, isOmsBreakerError, OmsBreakerError } from './errors.js';
export { fallback } from './fallback.js';
export { systemClock } from './internal/clock.js';
export { pipeline } from './pipeline.js';
export { retry } from './retry.js';
export { retryBudget } from './retry-budget.js';
export { type Instrumentable, instrument, traced } from './telemetry.js';
export { timeout } from './timeout.js';
export type * from './types.js';
export { VERSION } from './version.js';
