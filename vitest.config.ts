import os from 'node:os';
import { defineConfig } from 'vitest/config';

// Unit tests live next to each package (packages/*/test); the end-to-end suite and the
// simulated world live in test/. Tests import package sources directly through the
// "@relaymesh/source" export condition, so no build is needed to run them; tests that
// spawn real node processes use the built dist/ (the root `test` script builds first).
//
// Scheduling (vitest runs one group after another, never two groups at once): first the
// package unit files and the acceptance scenarios (test/scenarios), two files at a time;
// then the world's tests and the chaos and resilience files, one at a time. Vitest's
// default is cores - 1 workers, one on a 2-core machine; the unit files spend most of
// their time waiting on sockets, timers and worker start-up, and the scenarios assert
// integrity and paths, not rates or timings (their bounds are timeouts sized for a loaded
// machine). The world's link emulation tests and the chaos/resilience files assert rates
// and timings: they keep the machine to themselves. docs/operations.md, "Running the tests".
const unitWorkers = Math.max(2, os.availableParallelism() - 1);

export default defineConfig({
  resolve: { conditions: ['@relaymesh/source'] },
  ssr: { resolve: { conditions: ['@relaymesh/source'] } },
  test: {
    projects: [
      {
        extends: true,
        test: {
          name: 'unit',
          include: ['packages/*/test/**/*.test.ts'],
          testTimeout: 20_000,
          hookTimeout: 20_000,
          maxWorkers: unitWorkers,
          // The files of a worker share its module cache: importing the package sources
          // again for each of the 67 files took 39 s of the workers' time (85 s -> 50 s).
          // They mock nothing and change no process-wide state. A file must not leave a timer
          // or socket that fires after it ends: it would fail the worker's next file
          // (docs/operations.md, "Running the tests").
          isolate: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'scenarios',
          include: ['test/scenarios/**/*.test.ts'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          maxWorkers: unitWorkers,
        },
      },
      {
        extends: true,
        test: {
          name: 'world',
          include: ['test/world/test/**/*.test.ts'],
          testTimeout: 20_000,
          hookTimeout: 20_000,
          fileParallelism: false,
        },
      },
      {
        extends: true,
        test: {
          name: 'e2e',
          include: ['test/**/*.test.ts'],
          exclude: ['test/world/**', 'test/scenarios/**', '**/node_modules/**'],
          testTimeout: 60_000,
          hookTimeout: 60_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
