import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
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
  /** The CPUs every thread may run on (`Cpus_allowed_list`), where /proc says. */
  cpus?: string;
  /** Why the CPUs asked for ({@link pinAll}) could not be set, if they could not. */
  cpusFailed?: string;
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
 * Every thread of process `pid` (this one by default) to SCHED_IDLE, with util-linux's
 * `chrt` (Node has no sched_setscheduler): the kernel then runs it only on a core nothing
 * else wants, and a waking thread of normal policy (the node's) takes the core from it at
 * once, where a nice thread would finish its slice first. Lowering the policy needs no
 * privilege; threads started later inherit it. Returns the failure (no `chrt`, a seccomp
 * profile...) if any.
 */
export function idleAll(pid: number = process.pid): string | undefined {
  return utilLinux('chrt', ['--all-tasks', '--idle', '--pid', '0', String(pid)]);
}

/** Runs one of util-linux's tools: its complaint (or the spawn's), if any. */
function utilLinux(tool: string, args: string[]): string | undefined {
  try {
    execFileSync(tool, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5000 });
    return undefined;
  } catch (err) {
    const e = err as Error & { stderr?: Buffer };
    return (e.stderr?.toString().trim() || e.message).slice(0, 200);
  }
}

/** A Linux CPU list as `taskset --cpu-list` takes it: `1`, `2-3`, `0,2-3`. */
export const CPU_LIST = /^\d{1,4}(-\d{1,4})?(,\d{1,4}(-\d{1,4})?)*$/;

/**
 * Every thread of this process to the CPUs of `list` (a {@link CPU_LIST}), with util-linux's
 * `taskset` (Node has no sched_setaffinity); threads started later inherit it. Needs no
 * privilege for one's own process. Returns the failure (no `taskset`, no CPU of the list
 * allowed here...) if any.
 */
export function pinAll(list: string): string | undefined {
  return utilLinux('taskset', ['--all-tasks', '--cpu-list', '--pid', list, String(process.pid)]);
}

/**
 * The CPUs a thread may run on, from its /proc status file (default: this process's main
 * thread); undefined where there is none.
 */
export function allowedCpus(status = '/proc/self/status'): string | undefined {
  try {
    const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(status, 'utf8'));
    return m?.[1];
  } catch {
    return undefined;
  }
}
