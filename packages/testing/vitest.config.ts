import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    name: '@othink/testing',
    include: ['test/**/*.test.ts'],
  },
});
