import { defineConfig } from 'vitest/config';

// Two cores here: run test files in forked processes, two at a time; ML tests need generous timeouts.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    reporters: ['default'],
  },
});
