import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';

/** What {@link reniceAll} did. */
export interface Reniced {
  nice: number;
  /** Threads set. */
  set: number;
  /** The first failure (EACCES under a seccomp profile...), if any. */
  failed?: string;
}

/**
 * Every thread of this process to `nice`: `os.setPriority` on Linux acts on one thread (a
 * tid), and V8's helper threads exist from the start. Threads started later (libuv's pool)
 * inherit the main thread's. Imports only node: modules (lane-main.ts runs it first).
 */
export function reniceAll(nice: number): Reniced {
  let set = 0;
  let failed: string | undefined;
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch (err) {
    // Not Linux (no /proc): the main thread alone.
    tids = ['0'];
    failed = (err as Error).message;
  }
  for (const tid of tids) {
    try {
      setPriority(Number(tid), nice);
      set++;
    } catch (err) {
      failed ??= (err as Error).message;
    }
  }
  return failed === undefined ? { nice, set } : { nice, set, failed };
}
