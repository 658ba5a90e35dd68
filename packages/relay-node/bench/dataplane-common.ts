/**
 * Shared plumbing of the data-plane benchmarks (dataplane-*.bench.ts): the HTTP load
 * generator (undici, keep-alive, closed loop), RSS sampling from /proc, and the nginx
 * chain baseline (two nginx reverse proxies run as children with generated configs).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Client, type Dispatcher, Pool } from 'undici';
import { type Child, note, quantile, sleep, startChild, within } from './common.ts';

export const CHILD = fileURLToPath(new URL('./dataplane-child.ts', import.meta.url));

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** How the data-plane children run; `children` goes in every result line. */
export interface ChildRuntime {
  /** 'dist' or 'src via tsx (<why>)'. */
  children: string;
  execArgv: string[];
}

let runtime: ChildRuntime | undefined;

/** `tsc -b` of the workspace (well under a second when nothing changed); the error, or undefined. */
function build(): string | undefined {
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-b'], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return undefined;
  } catch (err) {
    const out = (err as { stdout?: Buffer }).stdout?.toString().split('\n')[0];
    return out || (err as Error).message.split('\n')[0];
  }
}

/**
 * The children run the built `dist/`, what users run: the bench builds first (`tsc -b`,
 * as `pnpm test` does) and drops the `@relaymesh/source` export condition, so
 * `@relaymesh/*` imports resolve to `dist/`. tsx still loads the child script itself but
 * leaves the built JavaScript alone. When the build fails, or with DP_CHILDREN=src, the
 * sources run through tsx instead (its transform cost 12-22 µs of CPU per small request
 * across entry and exit, docs/performance.md), and the result lines say so.
 */
export function childRuntime(): ChildRuntime {
  if (runtime) return runtime;
  const failed = process.env.DP_CHILDREN === 'src' ? 'DP_CHILDREN=src' : build();
  if (failed) {
    note(`children run the sources through tsx: ${failed}`);
    runtime = { children: `src via tsx (${failed})`, execArgv: process.execArgv };
    return runtime;
  }
  const execArgv: string[] = [];
  const args = process.execArgv;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--conditions=@relaymesh/source' || a === '-C=@relaymesh/source') continue;
    if ((a === '--conditions' || a === '-C') && args[i + 1] === '@relaymesh/source') {
      i++;
      continue;
    }
    execArgv.push(a);
  }
  // DP_CHILD_FLAGS="--flag ...": extra node flags for the children (diagnostics).
  const extra = process.env.DP_CHILD_FLAGS?.split(' ').filter(Boolean) ?? [];
  runtime = {
    children: extra.length > 0 ? `dist ${extra.join(' ')}` : 'dist',
    execArgv: [...execArgv, ...extra],
  };
  return runtime;
}

/** Starts a dataplane-child (see {@link childRuntime} for what code it runs). */
export function startDataplaneChild(args: string[], timeoutMs?: number): Promise<Child> {
  return startChild(CHILD, args, timeoutMs, childRuntime().execArgv);
}
/** The Host clients send so the entry maps the request to the declared origin. */
export const ORIGIN_HOST = 'bench.local';

export interface LoadOptions {
  /** Base URL, e.g. http://127.0.0.1:8080 */
  url: string;
  path: string;
  /** Concurrent workers, each with at most one request in flight. */
  workers: number;
  durationMs: number;
  /** Stop earlier after this many requests in total. */
  maxRequests: number;
  /** One undici Client (one keep-alive connection) per worker instead of one shared Pool. */
  clientPerWorker?: boolean;
}

export interface LoadResult {
  requests: number;
  errors: number;
  errorSamples: string[];
  elapsedMs: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** Requests that took more than 100 ms (stalls: 100x a warm request's p50). */
  over100Ms: number;
}

/**
 * Closed-loop load: `workers` loops each send a GET, read the whole body, and send the
 * next one, until the duration or request cap. Latency per request from hrtime.
 */
export async function runLoad(o: LoadOptions): Promise<LoadResult> {
  const dispatchers: Dispatcher[] = o.clientPerWorker
    ? Array.from(
        { length: o.workers },
        () => new Client(o.url, { pipelining: 1, keepAliveTimeout: 60_000 }),
      )
    : [new Pool(o.url, { connections: o.workers, pipelining: 1, keepAliveTimeout: 60_000 })];
  const lat = new Float64Array(Math.min(o.maxRequests, 5_000_000));
  let requests = 0;
  let errors = 0;
  const errorSamples: string[] = [];
  const start = performance.now();
  const stopAt = start + o.durationMs;
  const worker = async (d: Dispatcher) => {
    while (requests < o.maxRequests && performance.now() < stopAt) {
      const t0 = performance.now();
      try {
        const res = await d.request({
          method: 'GET',
          path: o.path,
          headers: { host: ORIGIN_HOST },
          headersTimeout: 30_000,
          bodyTimeout: 30_000,
        });
        await res.body.dump({ limit: Number.MAX_SAFE_INTEGER });
        if (res.statusCode !== 200) throw new Error(`status ${res.statusCode}`);
        if (requests < lat.length) lat[requests] = performance.now() - t0;
        requests++;
      } catch (err) {
        errors++;
        if (errorSamples.length < 5) errorSamples.push(String(err));
      }
    }
  };
  await Promise.all(
    Array.from({ length: o.workers }, (_, i) => worker(dispatchers[i % dispatchers.length]!)),
  );
  const elapsedMs = performance.now() - start;
  await Promise.all(dispatchers.map((d) => d.close().catch(() => {})));
  const sorted = lat.subarray(0, Math.min(requests, lat.length)).sort();
  let over100Ms = 0;
  for (let i = sorted.length - 1; i >= 0 && sorted[i]! > 100; i--) over100Ms++;
  return {
    requests,
    errors,
    errorSamples,
    elapsedMs,
    rps: (requests * 1000) / elapsedMs,
    p50Ms: quantile(Array.from(sorted), 0.5),
    p99Ms: quantile(Array.from(sorted), 0.99),
    maxMs: sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN,
    over100Ms,
  };
}

/** VmRSS of a process in MiB (Linux /proc), NaN when unreadable. */
export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** A free TCP port on 127.0.0.1 (bound then released; nginx needs a number up front). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Absolute path of an installed program (`which`), undefined when absent. */
export function which(program: string): string | undefined {
  try {
    return execFileSync('which', [program], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export function nginxPath(): string | undefined {
  return which('nginx');
}

/**
 * Second opinion from wrk (one thread, `conns` connections, `seconds`), when installed:
 * requests per second, or undefined. wrk's client costs less CPU than undici's, so its
 * numbers are higher on a 2-core machine; only ratios between targets are compared.
 */
export async function wrkRps(
  url: string,
  conns: number,
  seconds: number,
): Promise<number | undefined> {
  const bin = which('wrk');
  if (!bin) return undefined;
  const out = await new Promise<string>((resolve) => {
    const p = spawn(
      bin,
      ['-t1', `-c${conns}`, `-d${seconds}s`, '-H', `Host: ${ORIGIN_HOST}`, `${url}/small`],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    let text = '';
    p.stdout.on('data', (d: Buffer) => {
      text += d.toString();
    });
    p.on('close', () => resolve(text));
    p.on('error', () => resolve(''));
  });
  if (/Non-2xx|Socket errors/.test(out))
    note(`wrk reported errors for ${url}: ${out.replace(/\s+/g, ' ')}`);
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
  return m ? Number(m[1]) : undefined;
}

function nginxConf(dir: string, name: string, listen: number, upstream: number): string {
  const d = join(dir, name);
  return `user root;
worker_processes 1;
pid ${d}.pid;
error_log ${d}-error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${d}-body;
  proxy_temp_path ${d}-proxy;
  fastcgi_temp_path ${d}-fcgi;
  uwsgi_temp_path ${d}-uwsgi;
  scgi_temp_path ${d}-scgi;
  keepalive_requests 1000000;
  upstream up { server 127.0.0.1:${upstream}; keepalive 256; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:${listen} backlog=1024;
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
  }
}
`;
}

export interface NginxChain {
  port: number;
  pids: number[];
  stop(): Promise<void>;
}

/**
 * Two chained nginx reverse proxies (client → A → B → origin), each its own master with
 * one worker (like one node process each), keep-alive upstreams, no access log, pid and
 * logs in a temp dir, `daemon off`. Undefined (with a note) when nginx is not installed.
 */
export async function startNginxChain(originPort: number): Promise<NginxChain | undefined> {
  const bin = nginxPath();
  if (!bin) {
    note('nginx not found (which nginx): the nginx chain baseline is skipped');
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'dpbench-nginx-'));
  const procs: ChildProcess[] = [];
  const portB = await freePort();
  const portA = await freePort();
  for (const [name, listen, upstream] of [
    ['b', portB, originPort],
    ['a', portA, portB],
  ] as const) {
    const conf = join(dir, `${name}.conf`);
    writeFileSync(conf, nginxConf(dir, name, listen, upstream));
    const p = spawn(
      bin,
      ['-c', conf, '-p', dir, '-e', join(dir, `${name}-stderr.log`), '-g', 'daemon off;'],
      {
        stdio: ['ignore', 'ignore', 'inherit'],
      },
    );
    procs.push(p);
    process.on('exit', () => p.kill('SIGKILL'));
    await waitPort(listen, 5000);
  }
  return {
    port: portA,
    pids: procs.map((p) => p.pid!),
    stop: async () => {
      for (const p of procs) {
        if (p.exitCode !== null || p.signalCode !== null) continue;
        const exited = once(p, 'exit');
        p.kill('SIGTERM'); // fast shutdown of master and worker
        await within(exited, 3000, 'nginx exit').catch(() => p.kill('SIGKILL'));
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Waits until something accepts connections on 127.0.0.1:port. */
export async function waitPort(port: number, ms: number): Promise<void> {
  const deadline = performance.now() + ms;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (performance.now() > deadline) throw new Error(`nothing listens on ${port} after ${ms} ms`);
    await sleep(50);
  }
}

/** The 1-minute load average and the core count, for the result lines. */
export function machineLoad(): { loadavg1: number; cpus: number } {
  return { loadavg1: loadavg()[0]!, cpus: availableParallelism() };
}

/**
 * CPU time (user + system, all threads) of a process in ms, plus its direct children's
 * with `withChildren` (an nginx master and its worker).
 */
export function cpuMs(pid: number, withChildren = false): number {
  let ticks = 0;
  const visit = (p: number, depth: number) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after the command (which may contain spaces) start after the last ')'.
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(f[11]) + Number(f[12]); // utime, stime
      if (depth > 0 || !withChildren) return;
      for (const tid of readdirSync(`/proc/${p}/task`)) {
        const kids = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8').trim();
        for (const k of kids ? kids.split(' ') : []) visit(Number(k), depth + 1);
      }
    } catch {
      // gone
    }
  };
  visit(pid, 0);
  return (ticks * 1000) / CLK_TCK;
}

/**
 * Read and write system calls a process made so far (`syscr`, `syscw` of /proc/<pid>/io:
 * read/recv* and write/writev/send* calls); zeros when unreadable.
 */
export function syscalls(pid: number): { reads: number; writes: number } {
  try {
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (name: string) => Number(new RegExp(`${name}: (\\d+)`).exec(io)?.[1] ?? 0);
    return { reads: field('syscr'), writes: field('syscw') };
  } catch {
    return { reads: 0, writes: 0 };
  }
}

/** Kernel clock ticks per second for /proc/<pid>/stat (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

/** Asks a dataplane-child for its live heap after a full GC (see the child's stdin "heap"). */
export async function heapAfterGc(c: Child): Promise<{ usedMiB: number; rssMiB: number }> {
  const lines = createInterface({ input: c.proc.stdout! });
  try {
    const got = new Promise<{ usedMiB: number; rssMiB: number }>((resolve) => {
      lines.on('line', (l) => {
        if (l.startsWith('{"heap"'))
          resolve((JSON.parse(l) as { heap: { usedMiB: number; rssMiB: number } }).heap);
      });
    });
    c.proc.stdin!.write('heap\n');
    return await within(got, 10_000, 'heap report');
  } finally {
    lines.close();
  }
}

/**
 * Starts the origin, an exit and an entry (entry -> exit over one tunnel, static route),
 * each its own process. Each child is pushed onto `started` as soon as it runs, so the
 * caller's cleanup stops whatever did start when a later one fails.
 */
export async function startEntryExit(
  started: Child[],
): Promise<{ origin: Child; exit: Child; entry: Child; originPort: number }> {
  const origin = await startDataplaneChild([JSON.stringify({ mode: 'origin' })]);
  started.push(origin);
  const originPort = origin.ready.port as number;
  const exit = await startDataplaneChild([
    JSON.stringify({ mode: 'node', id: 'exit', originPort, listen: true }),
  ]);
  started.push(exit);
  const entry = await startDataplaneChild([
    JSON.stringify({
      mode: 'node',
      id: 'entry',
      originPort,
      http: true,
      dial: { exit: exit.ready.tunnelUrl },
      path: ['entry', 'exit'],
    }),
  ]);
  started.push(entry);
  return { origin, exit, entry, originPort };
}
