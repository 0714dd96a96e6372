export { rateLimitPlugin } from './plugin.js';
export type { FastifyRateLimitOptions, FastifyScope } from './types.js';
