import { setFlagsFromString } from 'node:v8';

/**
 * V8's incremental-marking triggers for a process that streams bodies (docs/performance.md,
 * "Two GC regimes"). A relay allocates a new ArrayBuffer for every socket read, hundreds of
 * MB a second, on a small heap (~20 MB). V8 counts that external memory against the old
 * generation's room. By default it starts marking once that room is below the young
 * generation's capacity, so right after each mark-compact. A process can then settle into
 * a mark-compact every 25-35 ms, with no scavenge in between, and stream at about half its
 * rate. With these triggers V8 starts marking only at 90 % of the way to its limit (a task),
 * or at once at 95 %. Measured on the slow-clients bench's no-load baselines: slow in 0 of
 * 12 runs with them, in 5 of 15 without.
 */
export const STREAMING_GC_FLAGS = [
  '--incremental-marking-soft-trigger=90',
  '--incremental-marking-hard-trigger=95',
] as const;

/**
 * Whether the operator already chose these triggers on node's command line (`node
 * --incremental-marking-soft-trigger=N ...`; node does not take V8 flags in NODE_OPTIONS):
 * then they stand.
 */
export function gcTriggersChosen(execArgv: readonly string[]): boolean {
  return execArgv.some((w) => /^--incremental[-_]marking[-_](soft|hard)[-_]trigger\b/.test(w));
}

/**
 * Sets {@link STREAMING_GC_FLAGS} for this process unless the operator chose them. V8 reads
 * them each time it decides whether to start marking, so they apply from now on. Returns
 * whether it set them. For processes that run a data plane (`relaymesh node`): the flags
 * are process-wide, so a library does not set them on its own.
 */
export function tuneGcForStreaming(execArgv: readonly string[] = process.execArgv): boolean {
  if (gcTriggersChosen(execArgv)) return false;
  setFlagsFromString(STREAMING_GC_FLAGS.join(' '));
  return true;
}

/**
 * The floor under V8's old-generation limit a node should start with, on node's command
 * line (docs/performance.md, "The old generation's floor"; V8 reads it when it sizes the
 * heap, at start, so a running process cannot set it and node does not take it in
 * NODE_OPTIONS). V8 counts the ArrayBuffers allocated since the last mark-compact against
 * the old generation's room, and frees the young ones with a scavenge once they reach
 * 32 MB. On a small heap (a node whose slow clients went to its slow lane: ~27 MB live) V8
 * may set the limit so close that marking starts first, and the node then runs 5-6
 * mark-compacts a second for tens of seconds. With a floor of 128 MB the room stays above
 * those 32 MB; a larger heap's limit is above the floor anyway. Measured on the
 * slow-clients bench with the lane: 2-3 major GCs in a run, against 2-372 without.
 */
export const HEAP_FLOOR_FLAG = '--initial-old-space-size=128';

/**
 * The flag to start node with when node's command line gives no floor of its own (any
 * `--initial-old-space-size` or `--initial-heap-size`); undefined when it does.
 */
export function heapFloorAdvice(
  execArgv: readonly string[] = process.execArgv,
): string | undefined {
  return execArgv.some((w) => /^--initial[-_](old[-_]space|heap)[-_]size\b/.test(w))
    ? undefined
    : HEAP_FLOOR_FLAG;
}
