// An Express app listens on a node:http server, so the node:http shutdown is the Express one.
export { type GracefulShutdownOptions, gracefulShutdown } from '../shutdown.js';
export { type HealthMiddlewareOptions, healthMiddleware } from './middleware.js';
