export { type AuthMiddlewareOptions, authMiddleware } from './middleware.js';
