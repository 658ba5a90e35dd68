#!/usr/bin/env node
// Thin launcher: the CLI is compiled TypeScript in dist/ (built by `pnpm build`, which
// `pnpm install` runs through the root `prepare` script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  process.stderr.write('relaymesh: not built yet; run `pnpm build` at the repository root\n');
  process.exit(1);
}
await import(entry.href);
