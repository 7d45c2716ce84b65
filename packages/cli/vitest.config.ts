import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: '@othink/cli',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
  },
});
