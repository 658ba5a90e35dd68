import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { setPriority } from 'node:os';

/** What {@link reniceAll} did. */
export interface Reniced {
  nice: number;
  /** Whether every thread runs under SCHED_IDLE ({@link idleAll}); nice counts for nothing then. */
  idle?: boolean;
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

/**
 * Every thread of this process to SCHED_IDLE, with util-linux's `chrt` (Node has no
 * sched_setscheduler): the kernel then runs it only on a core nothing else wants, and a
 * waking thread of normal policy (the node's) takes the core from it at once, where a nice
 * thread would finish its slice first. Lowering the policy needs no privilege; threads
 * started later inherit it. Returns the failure (no `chrt`, a seccomp profile...) if any.
 */
export function idleAll(): string | undefined {
  try {
    execFileSync('chrt', ['--all-tasks', '--idle', '--pid', '0', String(process.pid)], {
      stdio: ['ignore', 'ignore', 'pipe'],
      timeout: 5000,
    });
    return undefined;
  } catch (err) {
    const e = err as Error & { stderr?: Buffer };
    return (e.stderr?.toString().trim() || e.message).slice(0, 200);
  }
}
