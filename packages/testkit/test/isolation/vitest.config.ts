import { defineConfig } from 'vitest/config';

// Two files, two workers: the files are guaranteed to run at the same time.
export default defineConfig({
  test: {
    root: new URL('.', import.meta.url).pathname,
    include: ['*.iso.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
