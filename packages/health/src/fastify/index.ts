export { type HealthPluginOptions, healthPlugin } from './plugin.js';
export { type FastifyApp, type FastifyShutdownOptions, gracefulShutdown } from './shutdown.js';
