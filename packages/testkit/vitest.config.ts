import { defineConfig } from 'vitest/config';
import { omsTestConfig } from './src/vitest-config.js';

export default defineConfig(
  omsTestConfig({ globalSetup: new URL('./src/global-setup.ts', import.meta.url).pathname }),
);
