#!/usr/bin/env node
// Runs the whole vitest suite and ends with the plain summary line CI reads:
// "N passed, N failed, N skipped". Extra arguments go to vitest (e.g. a path filter).
// Exits non-zero when anything failed or when no test ran at all.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'relaymesh-test-'));
const report = join(dir, 'vitest.json');
const args = [
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile.json=${report}`,
  ...process.argv.slice(2),
];
const run = spawnSync('vitest', args, { stdio: 'inherit' });

let passed = 0;
let failed = 0;
let skipped = 0;
try {
  const json = JSON.parse(readFileSync(report, 'utf8'));
  passed = json.numPassedTests ?? 0;
  failed = (json.numFailedTests ?? 0) + (json.numRuntimeErrorTestSuites ?? 0);
  skipped = (json.numPendingTests ?? 0) + (json.numTodoTests ?? 0);
  for (const file of json.testResults ?? []) {
    // A file that failed to load has no assertions but must count as a failure.
    if (file.status === 'failed' && (file.assertionResults ?? []).length === 0) failed++;
  }
} catch (err) {
  console.error(`test summary: no vitest JSON report (${err.message})`);
  failed++;
}
rmSync(dir, { recursive: true, force: true });
if (run.status !== 0 && failed === 0) failed = 1;
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
