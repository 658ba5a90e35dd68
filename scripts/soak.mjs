#!/usr/bin/env node
// The chaos soak: random node kills, link blackholes and degradations and coordinator
// restarts every few seconds for N minutes on the aws12 world with the real mesh, with
// continuous traffic whose bodies are all checked (test/chaos/soak.ts; results in
// docs/reliability.md). Not part of `pnpm test`. Needs the build (`pnpm exec tsc -b`).
// Usage: node scripts/soak.mjs [--minutes 5] [--seed N] [--log-dir DIR] [--entries a,b,c]
//   [--coordinator-outage S]
// (--coordinator-outage: the coordinator down S seconds from the first fault, the other
// faults going on; killed nodes come back after it)
// (--log-dir: every process's output in DIR/<name>.log, the nodes at log level info)
// (--entries: send from these entries, each to a file origin on its shortest route)
// Prints JSON lines (one per fault, a summary last); exits 1 when a request failed outside
// a fault's detection window or a body was corrupted.
import { spawnSync } from 'node:child_process';

const run = spawnSync(
  process.execPath,
  [
    '--conditions=@relaymesh/source',
    '--import',
    'tsx',
    'test/chaos/soak.ts',
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
);
process.exit(run.status ?? 1);
