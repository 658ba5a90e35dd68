import { describe, expect, it } from 'vitest';
import {
  MALLOC_TUNABLE,
  mallocTrimChosen,
  mallocTuningAdvice,
  mallocTuningEnv,
  withMallocTuning,
} from '../../src/node/malloc-tuning.ts';

describe('glibc heap trimming for streaming (docs/performance.md "glibc gives the socket buffers back")', () => {
  it('is a 64 MiB trim threshold', () => {
    expect(MALLOC_TUNABLE).toBe('glibc.malloc.trim_threshold=67108864');
  });

  it("leaves the operator's own trim threshold or top pad alone", () => {
    expect(mallocTrimChosen(undefined)).toBe(false);
    expect(mallocTrimChosen('')).toBe(false);
    expect(mallocTrimChosen('glibc.malloc.arena_max=2')).toBe(false);
    expect(mallocTrimChosen('glibc.malloc.trim_threshold=1048576')).toBe(true);
    expect(mallocTrimChosen('glibc.malloc.arena_max=2:glibc.malloc.top_pad=0')).toBe(true);
    // A name that only ends like it is another tunable.
    expect(mallocTrimChosen('glibc.malloc.xtrim_threshold=1')).toBe(false);
  });

  it("adds it to a child's environment, after the operator's other tunables", () => {
    expect(withMallocTuning({ A: '1' })).toEqual({ A: '1', GLIBC_TUNABLES: MALLOC_TUNABLE });
    expect(withMallocTuning({ GLIBC_TUNABLES: 'glibc.malloc.arena_max=2' }).GLIBC_TUNABLES).toBe(
      `glibc.malloc.arena_max=2:${MALLOC_TUNABLE}`,
    );
    const chosen = { GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=0' };
    expect(withMallocTuning(chosen)).toBe(chosen);
  });

  it('gives just the variable, for an environment of extras', () => {
    expect(mallocTuningEnv({})).toEqual({ GLIBC_TUNABLES: MALLOC_TUNABLE });
    expect(mallocTuningEnv({ GLIBC_TUNABLES: 'glibc.malloc.top_pad=0' })).toEqual({
      GLIBC_TUNABLES: 'glibc.malloc.top_pad=0',
    });
  });

  it('advises it on glibc only, and only when it is missing', () => {
    expect(mallocTuningAdvice({}, true)).toBe(`GLIBC_TUNABLES=${MALLOC_TUNABLE}`);
    expect(mallocTuningAdvice({ GLIBC_TUNABLES: MALLOC_TUNABLE }, true)).toBeUndefined();
    expect(mallocTuningAdvice({}, false)).toBeUndefined();
  });
});
