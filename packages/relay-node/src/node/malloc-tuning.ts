/**
 * glibc's heap trimming, for a process that streams bodies (docs/performance.md, "glibc
 * gives the socket buffers back"). Every socket read allocates a fresh 64 KiB buffer with
 * malloc, and V8 frees them in batches after each scavenge. When the freed chunks lie at the
 * top of glibc's heap and exceed its trim threshold (128 KiB by default), glibc gives the
 * pages back to the kernel, and the next reads fault them in again. Whether a process falls
 * into that depends on its heap's layout, so it varies from process to process. Measured on
 * one host: a copy of freshly allocated 64 KiB buffers ran at 1.7-2.5 GB/s in 18 fresh
 * processes, 5.6-6.8 GB/s with this threshold; one undici download stream per fresh process
 * (bench/malloc-trim.bench.ts) ran 2.2-2.9 x faster at the median, with 5 and 8 of 8
 * default processes below 0.6 of that, none tuned; the slow-clients bench's stream baseline
 * ran at 171-579 MB/s (4 of 8 slow) against 484-687 MB/s (0 of 6).
 *
 * glibc reads its tunables from the environment when a process starts, so a running
 * process cannot change its own: `relaymesh node` says so when it runs without it, and the
 * processes relaymesh starts itself get it.
 */

/** At most this much freed memory stays at the top of the heap before glibc trims it. */
export const MALLOC_TRIM_THRESHOLD = 64 * 1024 * 1024;

/** The tunable, as it goes into `GLIBC_TUNABLES`. */
export const MALLOC_TUNABLE = `glibc.malloc.trim_threshold=${MALLOC_TRIM_THRESHOLD}`;

/** Whether `GLIBC_TUNABLES` already sets how glibc trims its heap (the operator's choice stands). */
export function mallocTrimChosen(tunables: string | undefined): boolean {
  return /(^|:)glibc\.malloc\.(trim_threshold|top_pad)=/.test(tunables ?? '');
}

/**
 * `env` for a child process: `GLIBC_TUNABLES` with {@link MALLOC_TUNABLE} added, unless it
 * already sets the trim threshold or the top pad. Harmless where glibc is not the libc.
 */
export function withMallocTuning(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const current = env.GLIBC_TUNABLES;
  if (mallocTrimChosen(current)) return env;
  return {
    ...env,
    GLIBC_TUNABLES: current ? `${current}:${MALLOC_TUNABLE}` : MALLOC_TUNABLE,
  };
}

/** Just the variable {@link withMallocTuning} gives a child, for an environment given as extras. */
export function mallocTuningEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const value = withMallocTuning(env).GLIBC_TUNABLES;
  return value === undefined ? {} : { GLIBC_TUNABLES: value };
}

/** This process runs on glibc: its diagnostic report names glibc's version. */
export function onGlibc(): boolean {
  if (process.platform !== 'linux') return false;
  const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: unknown } };
  return typeof report?.header?.glibcVersionRuntime === 'string';
}

/** What to tell the operator of this process, or undefined when there is nothing to say. */
export function mallocTuningAdvice(
  env: NodeJS.ProcessEnv = process.env,
  glibc: boolean = onGlibc(),
): string | undefined {
  if (!glibc || mallocTrimChosen(env.GLIBC_TUNABLES)) return undefined;
  return `GLIBC_TUNABLES=${MALLOC_TUNABLE}`;
}
