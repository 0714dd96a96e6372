export { rateLimitMiddleware } from './middleware.js';
export type { RateLimitMiddleware, RequestLimitOptions, RequestScope } from './types.js';
