import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: '@othink/core',
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
  },
});
