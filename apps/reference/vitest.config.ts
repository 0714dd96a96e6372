import { omsTestConfig } from '@oms/testkit/vitest';
import { defineConfig } from 'vitest/config';

export default defineConfig(omsTestConfig({ services: ['postgres', 'redis'] }));
