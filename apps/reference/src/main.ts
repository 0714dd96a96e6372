// The process entry: node apps/reference/dist/main.js
import { gracefulShutdown } from '@oms/health/fastify';
import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';

let config: ReturnType<typeof loadConfig>;
try {
  config = loadConfig();
} catch (e) {
  if (e instanceof ConfigError) {
    process.stderr.write(
      `${JSON.stringify({ level: 'fatal', msg: e.message, variable: e.variable, code: e.code })}\n`,
    );
    process.exit(78); // EX_CONFIG
  }
  throw e;
}

const app = await buildApp(config);
gracefulShutdown({
  server: app.fastify,
  registry: app.health,
  drainDelayMs: config.shutdownDrainMs,
  timeoutMs: config.shutdownTimeoutMs,
  // app.close() drains through Fastify's close(); the app's onClose stops the relay and closes the pools
  hooks: [
    { name: 'app', fn: () => app.close(), timeoutMs: Math.max(1_000, config.shutdownTimeoutMs - 1_000) },
  ],
  log: (line) => app.log.warn(line),
});
await app.listen();
