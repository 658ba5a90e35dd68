import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { gcTriggersChosen, STREAMING_GC_FLAGS } from '../../src/node/gc-tuning.ts';

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
