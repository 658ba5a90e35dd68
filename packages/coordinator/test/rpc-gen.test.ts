import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SHARED = fileURLToPath(new URL('../../shared/', import.meta.url));

function files(dir: string, base = dir): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory()
      ? files(path.join(dir, e.name), base)
      : [path.relative(base, path.join(dir, e.name))],
  );
}

describe('generated RPC types', () => {
  it('match what `gen:rpc` produces from coordinator.proto (no hand edits, not stale)', () => {
    const pkg = JSON.parse(readFileSync(path.join(SHARED, 'package.json'), 'utf8'));
    const script: string = pkg.scripts['gen:rpc'];
    const out = mkdtempSync(path.join(tmpdir(), 'relaymesh-gen-'));
    const args = script
      .split(/\s+/)
      .slice(1)
      .map((a) => (a.startsWith('--outDir=') ? `--outDir=${out}` : a));
    const bin = path.join(SHARED, 'node_modules/.bin/proto-loader-gen-types');
    const run = spawnSync(bin, args, { cwd: SHARED, encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const committed = path.join(SHARED, 'src/rpc/gen');
    expect(files(out).sort()).toEqual(files(committed).sort());
    for (const f of files(out)) {
      expect(readFileSync(path.join(committed, f), 'utf8'), f).toBe(
        readFileSync(path.join(out, f), 'utf8'),
      );
    }
  });
});
