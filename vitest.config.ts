import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['native', 'packages/*'],
    reporters: ['default', './scripts/summary-reporter.ts'],
  },
});
