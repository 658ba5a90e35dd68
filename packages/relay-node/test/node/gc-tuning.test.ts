import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  gcTriggersChosen,
  HEAP_FLOOR_FLAG,
  heapFloorAdvice,
  STREAMING_GC_FLAGS,
} from '../../src/node/gc-tuning.ts';

const GC_TUNING = fileURLToPath(new URL('../../src/node/gc-tuning.ts', import.meta.url));

/** Runs tuneGcForStreaming() in a fresh node process with these node flags; what it returned. */
function tuneInChild(execArgv: string[] = []): string {
  const script = `import(${JSON.stringify(GC_TUNING)}).then((m) => process.stdout.write(String(m.tuneGcForStreaming())))`;
  return execFileSync(process.execPath, [...execArgv, '--import', 'tsx', '-e', script], {
    encoding: 'utf8',
  });
}

describe('gc tuning for streaming (docs/performance.md "Two GC regimes")', () => {
  it('are two V8 flags that this node knows', () => {
    // An unknown flag would make setFlagsFromString a silent no-op: check node lists them.
    const options = execFileSync(process.execPath, ['--v8-options'], { encoding: 'utf8' });
    for (const flag of STREAMING_GC_FLAGS) expect(options).toContain(flag.split('=')[0]);
  });

  it("leaves the operator's own triggers alone", () => {
    expect(gcTriggersChosen([])).toBe(false);
    expect(gcTriggersChosen(['--max-old-space-size=512', '--trace-gc'])).toBe(false);
    expect(gcTriggersChosen(['--incremental-marking-soft-trigger=50'])).toBe(true);
    expect(gcTriggersChosen(['--incremental_marking_hard_trigger=80'])).toBe(true);
  });

  it('sets them in a real process unless its node flags chose them', () => {
    expect(tuneInChild()).toBe('true');
    expect(tuneInChild(['--incremental-marking-soft-trigger=70'])).toBe('false');
    expect(tuneInChild(['--incremental-marking-hard-trigger=99'])).toBe('false');
  });
});

/** Mark-compacts in a fresh process with these node flags while it churns ~240 MB of garbage after one full GC. */
function markCompactsWhileChurning(flags: string[]): number {
  const script = `gc(); console.log('churn');
    const keep = [];
    for (let i = 0; i < 1500; i++) { keep.push(new Array(20000).fill(i)); if (keep.length > 4) keep.shift(); }`;
  const out = execFileSync(
    process.execPath,
    [...flags, '--expose-gc', '--trace-gc', '-e', script],
    {
      encoding: 'utf8',
    },
  );
  const after = out.slice(out.indexOf('churn'));
  return after.split('\n').filter((l) => l.includes('Mark-Compact')).length;
}

describe('the old generation\'s floor (docs/performance.md "The old generation\'s floor")', () => {
  it("is advised unless node's command line gives a floor", () => {
    expect(heapFloorAdvice([])).toBe(HEAP_FLOOR_FLAG);
    expect(heapFloorAdvice(['--max-old-space-size=512', '--trace-gc'])).toBe(HEAP_FLOOR_FLAG);
    expect(heapFloorAdvice(['--initial-old-space-size=64'])).toBeUndefined();
    expect(heapFloorAdvice(['--initial_heap_size=256'])).toBeUndefined();
  });

  it('keeps V8 from mark-compacting a small heap for garbage below it', () => {
    // The control: on a small heap (one full GC just before) V8 sets a limit that this
    // churn crosses.
    expect(markCompactsWhileChurning([])).toBeGreaterThan(0);
    expect(markCompactsWhileChurning([HEAP_FLOOR_FLAG])).toBe(0);
  });
});
