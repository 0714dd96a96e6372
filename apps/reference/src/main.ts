// The process entry: node apps/reference/dist/main.js
import { ConfigError, loadConfig } from './config.js';
import { openPglite } from './embedded-db.js';

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

// Embedded mode: the database starts opening (WebAssembly compile, file reads) while the app's modules load.
const pglite = config.databaseUrl ? undefined : openPglite(config.dataDir);
pglite?.catch(() => {}); // buildApp awaits it and reports its failure
const [{ buildApp }, { gracefulShutdown }] = await Promise.all([
  import('./app.js'),
  import('@oms/health/fastify'),
]);
const app = await buildApp(config, pglite ? { pglite } : {});
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
