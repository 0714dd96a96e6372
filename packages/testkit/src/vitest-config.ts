import { fileURLToPath } from 'node:url';

export interface OmsTestConfigOptions {
  /** Shared servers the run needs. Default both; a package that never touches PostgreSQL skips it. */
  services?: ('postgres' | 'redis')[];
  /** Override the global setup file (the testkit's own tests point at its source). */
  globalSetup?: string;
}

/**
 * The shared Vitest settings of every @oms package: process isolation per file (so servers started by a
 * file die with it), the testkit's global setup, and timeouts sized for a loaded 2-core machine.
 *
 * @example
 * // vitest.config.ts
 * import { defineConfig } from 'vitest/config';
 * import { omsTestConfig } from '@oms/testkit/vitest';
 * export default defineConfig(omsTestConfig({ services: ['redis'] }));
 */
export function omsTestConfig(opts: OmsTestConfigOptions = {}) {
  process.env.OMS_TESTKIT_SERVICES = (opts.services ?? ['postgres', 'redis']).join(',');
  return {
    test: {
      include: ['test/**/*.test.ts'],
      pool: 'forks' as const,
      globalSetup: [opts.globalSetup ?? fileURLToPath(new URL('./global-setup.js', import.meta.url))],
      testTimeout: 60_000,
      hookTimeout: 120_000,
      teardownTimeout: 30_000,
      maxWorkers: 2,
    },
  };
}
