import { defineConfig } from 'vitest/config';

// Unit tests live next to each package (packages/*/test); the end-to-end suite and the
// simulated world live in test/. Tests import package sources directly through the
// "@relaymesh/source" export condition, so no build is needed to run them; tests that
// spawn real node processes use the built dist/ (the root `test` script builds first).
export default defineConfig({
  resolve: { conditions: ['@relaymesh/source'] },
  ssr: { resolve: { conditions: ['@relaymesh/source'] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts', 'test/world/test/**/*.test.ts'],
          testTimeout: 20_000,
          hookTimeout: 20_000,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/**/*.test.ts'],
          exclude: ['test/world/**', '**/node_modules/**'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
