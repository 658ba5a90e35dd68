/**
 * Shared plumbing of the tunnel and multiplexer benchmarks: JSON result lines, statistics,
 * child processes with a ready line, and bounded waits. Results go to stdout (one JSON
 * object per line), progress to stderr.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { withMallocTuning } from '../src/node/malloc-tuning.ts';

export const TOKEN = 'bench-token-6f0c2d9e4b1a7c3e5d8f0a2b4c6e8d1f';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Progress line on stderr. */
export function note(msg: string): void {
  process.stderr.write(`  ${msg}\n`);
}

export interface Baseline {
  name: string;
  value: number;
  unit: string;
}

export interface Result {
  bench: string;
  metric: string;
  value: number;
  unit: string;
  baseline: Baseline;
  ratio: number;
  target: string;
  pass: boolean;
  [extra: string]: unknown;
}

/** One result line on stdout. Numbers are rounded to 4 significant digits. */
export function emit(result: Result): void {
  process.stdout.write(
    `${JSON.stringify(result, (_k, v) => (typeof v === 'number' ? round(v) : v))}\n`,
  );
}

export function round(v: number): number {
  if (!Number.isFinite(v) || Number.isInteger(v)) return v;
  return Number(v.toPrecision(4));
}

export interface Stats {
  median: number;
  min: number;
  max: number;
  runs: number[];
}

export function stats(values: number[]): Stats {
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  const median = s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
  return { median, min: s[0]!, max: s[s.length - 1]!, runs: values };
}

/** The q-quantile (0..1) of `sorted` (nearest rank). */
export function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i]!;
}

/** Rejects after `ms` unless `p` settles first. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

export const MiB = 1024 * 1024;

/** MB/s (10^6 bytes per second) from bytes and milliseconds. */
export function mbps(bytes: number, ms: number): number {
  return bytes / 1e3 / ms;
}

const children = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export interface Child {
  ready: Record<string, unknown>;
  proc: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts `script` (TypeScript, run with this process's loader flags unless `execArgv` says
 * otherwise) with `args` and waits for its first stdout line, a JSON ready object. The
 * child exits when our stdin pipe to it closes, so it never outlives the bench.
 */
export async function startChild(
  script: string,
  args: string[],
  timeoutMs = 15_000,
  execArgv: readonly string[] = process.execArgv,
): Promise<Child> {
  // BENCH_CHILD_PROF=DIR writes a V8 CPU profile of every child into DIR (diagnostics).
  const dir = process.env.BENCH_CHILD_PROF;
  const prof = dir ? ['--cpu-prof', `--cpu-prof-dir=${dir}`] : [];
  const proc = spawn(process.execPath, [...execArgv, ...prof, script, ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    // glibc's trim threshold, as docs/operations.md has nodes started (BENCH_MALLOC_TUNING=0:
    // glibc's default, under which a child streams at half its rate at random).
    env: process.env.BENCH_MALLOC_TUNING === '0' ? process.env : withMallocTuning(process.env),
  });
  children.add(proc);
  proc.once('exit', () => children.delete(proc));
  const lines = createInterface({ input: proc.stdout! });
  const first = new Promise<string>((resolve, reject) => {
    lines.once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`${script} exited with ${code} before ready`)));
  });
  let ready: Record<string, unknown>;
  try {
    ready = JSON.parse(await within(first, timeoutMs, `${script} ready`)) as Record<
      string,
      unknown
    >;
  } catch (err) {
    proc.kill('SIGKILL');
    throw err;
  }
  // Keep draining stdout so a chatty child never blocks.
  lines.on('line', (l) => process.stderr.write(`  [child] ${l}\n`));
  const stop = async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = once(proc, 'exit');
    proc.stdin?.end();
    proc.kill('SIGTERM');
    await within(exited, 3000, 'child exit').catch(() => proc.kill('SIGKILL'));
  };
  return { ready, proc, stop };
}

/** A TCP server on 127.0.0.1 that counts what each connection sends until its FIN. */
export interface Sink {
  port: number;
  /** Resolves with the next connection's byte count and the time (performance.now) of its FIN. */
  next(): Promise<{ bytes: number; endAt: number }>;
  close(): void;
}

export async function startSink(): Promise<Sink> {
  const waiters: Array<(r: { bytes: number; endAt: number }) => void> = [];
  const done: Array<{ bytes: number; endAt: number }> = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    let bytes = 0;
    s.on('data', (c: Buffer) => {
      bytes += c.length;
    });
    s.on('error', () => {});
    s.on('end', () => {
      const r = { bytes, endAt: performance.now() };
      const w = waiters.shift();
      if (w) w(r);
      else done.push(r);
      s.end();
    });
    s.on('close', () => sockets.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as net.AddressInfo).port;
  return {
    port,
    next: () => {
      const r = done.shift();
      return r ? Promise.resolve(r) : new Promise((resolve) => waiters.push(resolve));
    },
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}

/**
 * Writes `chunk` over and over for `ms` (or until `maxBytes`), honouring backpressure,
 * then ends. Resolves with the bytes written and the time writing started.
 */
export async function blast(
  w: NodeJS.WritableStream & { writableLength?: number; destroyed?: boolean },
  chunk: Buffer,
  ms: number,
  maxBytes = Number.MAX_SAFE_INTEGER,
): Promise<{ bytes: number; startAt: number }> {
  const startAt = performance.now();
  const stopAt = startAt + ms;
  let bytes = 0;
  while (bytes < maxBytes && performance.now() < stopAt && !w.destroyed) {
    bytes += chunk.length;
    if (!w.write(chunk)) {
      await within(
        new Promise<void>((resolve) => {
          w.once('drain', resolve);
        }),
        30_000,
        'drain',
      );
    }
  }
  w.end();
  return { bytes, startAt };
}
