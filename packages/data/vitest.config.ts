import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: '@othink/data',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
  },
});
