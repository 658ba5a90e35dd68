#!/usr/bin/env node
// Runs every benchmark file (packages/*/bench/*.bench.ts) one after another, each in its
// own process, and passes their JSON lines through. A benchmark prints one JSON object
// per line with at least { bench, value, unit, baseline, ratio } (see docs/performance.md).
// Usage: pnpm bench [substring-filter ...]
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

const roots = ['packages/shared', 'packages/relay-node', 'packages/coordinator', 'test/world'];
const filters = process.argv.slice(2);
const files = [];
for (const root of roots) {
  let entries = [];
  try {
    entries = readdirSync(join(root, 'bench'));
  } catch {
    continue;
  }
  for (const f of entries.sort()) {
    if (!f.endsWith('.bench.ts')) continue;
    const path = join(root, 'bench', f);
    if (filters.length === 0 || filters.some((s) => path.includes(s))) files.push(path);
  }
}
let failed = 0;
for (const file of files) {
  process.stderr.write(`# ${file}\n`);
  const run = spawnSync(
    process.execPath,
    ['--conditions=@relaymesh/source', '--import', 'tsx', '--expose-gc', file],
    { stdio: 'inherit' },
  );
  if (run.status !== 0) {
    failed++;
    process.stderr.write(`# ${file} exited with ${run.status ?? run.signal}\n`);
  }
}
process.exit(failed > 0 ? 1 : 0);
