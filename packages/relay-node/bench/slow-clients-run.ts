/**
 * One slow-clients experiment, shared by slow-clients.bench.ts (10,000 clients) and
 * test/resilience/slow-clients.test.ts (1,000): an origin in this process, the entry in
 * its own process (slow-clients-entry.ts, RSS measured from /proc), the slow clients in a
 * third (slow-clients-load.ts, 1 B/s each), and a normal client here whose download rate is
 * measured before (baseline) and while the slow clients hold their connections.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setPriority } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { heapFloorAdvice } from '../src/node/gc-tuning.ts';
import { withMallocTuning } from '../src/node/malloc-tuning.ts';
import { idleAll } from '../src/proxy/lane/renice.ts';
import {
  type EntryLegs,
  entryLegs,
  loopbackPlan,
  type NetPlan,
  nsPrefix,
  nsSocketBytes,
  tcpExtOf,
  tcpExtSum,
} from './slow-clients-net.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ENTRY = fileURLToPath(new URL('./slow-clients-entry.ts', import.meta.url));
const LOAD = fileURLToPath(new URL('./slow-clients-load.ts', import.meta.url));
const NORMAL = fileURLToPath(new URL('./slow-clients-normal.ts', import.meta.url));
const SINK = fileURLToPath(new URL('./slow-clients-sink.ts', import.meta.url));
const CHUNK = Buffer.alloc(64 * 1024, 0x61);
/** The /slow response's length: 1 GiB, or SLOW_BODY_BYTES (slow-clients.bench.ts). */
const SLOW_BYTES = slowBodyBytes(process.env.SLOW_BODY_BYTES);

function slowBodyBytes(env: string | undefined): number {
  if (env === undefined || env === '') return 1024 * 1024 * 1024;
  const n = Number(env);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(`SLOW_BODY_BYTES=${env}: expected a whole number of bytes, at least 1`);
  return n;
}

export interface SlowClientsOptions {
  count: number;
  via: 'local' | 'tunnel';
  /** Bytes of each normal-client download. @default 32 MiB */
  normalBytes?: number;
  /** How long RSS is sampled once the slow clients are answered. @default 3000 */
  settleMs?: number;
  /**
   * The series of normal-client windows goes on at least this long after the load's start
   * (a no-load control: SLOW_CLIENTS=1 with the length of a 10,000-client run). @default 0
   */
  seriesMinMs?: number;
  /** Deadline for all slow clients to connect and get response bytes. @default 60000 */
  loadDeadlineMs?: number;
  /** Progress lines go here (stderr in the bench). */
  note?: (msg: string) => void;
  /** The entry's send timeout. @default 0 (off: the slow clients stay connected) */
  sendTimeoutMs?: number;
  /** The entry's park delay. @default the product default (EntryServerOptions.parkAfterMs) */
  parkAfterMs?: number;
  /** The entry's budget of held stalls. @default the product default (EntryServerOptions.maxHeldStalls) */
  maxHeldStalls?: number;
  /** The host's `net.ipv4.tcp_mem` (pages) when this network namespace cannot show it. */
  tcpMem?: number[];
  /** Where each process runs (slow-clients-net.ts). @default loopback */
  net?: NetPlan;
  /** Descriptor limit (`ulimit -n`) of the entry and load processes. @default 20000 */
  nofile?: number;
  /**
   * After the first measurement under load, wait this long past the last slow client's
   * answer and measure the normal client again (0: no second measurement). Meant for a
   * send timeout: the second figure is after it fired. @default 0
   */
  afterMs?: number;
  /**
   * Measure the normal client this long after the last slow client's answer too (0: not):
   * the steady state, every stalled response parked, before the send timeout. @default 0
   */
  steadyAfterMs?: number;
  /**
   * How the normal client connects for the baseline compared and the transient series:
   * "fresh" (a new connection per download) or "established" (one keep-alive connection,
   * opened before the load and kept through the series; its baseline on it too). The
   * steady-state and after-timeout measurements use fresh connections either way (the
   * entry's 5 s keep-alive idle close ends an established one before them). @default "fresh"
   */
  normalMode?: NormalMode;
  /** New slow connections per second (slow-clients-load.ts `connectRate`). @default as fast as they connect */
  connectRate?: number;
  /**
   * Nice value of the slow clients' process and of this one (the `/slow` origin) from the
   * load's start: on a real deployment both are other hosts, and at the entry's priority on
   * this 2-core host they took up to 0.4 core each while the 10,000 connect, starving the
   * normal client's own process (0.18-0.21 core against 0.4-0.75). The entry and the normal
   * client keep nice 0. 0: everything at the same priority. @default 10
   */
  loadNice?: number;
  /**
   * The load's and this process's scheduling policy from the load's start: "nice" (nice
   * `loadNice` only) or "idle": every thread of both under SCHED_IDLE as well (`chrt`), so
   * that on this 2-core host they run only on a core that neither the entry nor the normal
   * client wants, nearer to a deployment where they are other hosts. @default "nice"
   */
  loadPolicy?: 'nice' | 'idle';
  /**
   * Where the slow clients connect: "entry", or "sink", the control (slow-clients-sink.ts: a
   * listener in the entry's namespace that accepts and holds their connections and answers
   * nothing). With "sink" the entry serves only the normal client, and the series measures
   * what the load alone costs this host; nobody answers the slow clients, so the series ends
   * `settleMs` after they have all connected. "split": the isolation experiment. A second
   * entry, the same script and options, in the entry's namespace (on the entry's CPU when
   * pinned) with all its threads at nice `splitNice`, serves the slow clients, and the first
   * serves only the normal client: the best case of a node that gives the sources holding
   * its stalled connections a process of their own at a lower priority. Its memory, descriptors
   * and socket legs are the memory lines'; the entry's own reports (loop delay, GC, held and
   * parked) remain the first entry's. @default "entry"
   */
  loadTarget?: 'entry' | 'sink' | 'split';
  /** Nice value of every thread of the second entry (loadTarget "split"). @default 10 */
  splitNice?: number;
  /**
   * Pins the entry and its acceptor to CPU 0 and everything else (this process, the load,
   * the normal client) to CPU 1 with `taskset`, from the start, baseline included: the
   * entry's host with a core of its own, as when the load runs elsewhere. 'stream': the
   * same, but the normal client's process (client and its origin) on CPU 0 with the entry,
   * so that the load and the /slow origin on CPU 1 do not compete with the stream's own
   * processes for a core. @default false
   */
  pin?: boolean | 'stream';
}

/** How the normal client connects (SlowClientsOptions.normalMode). */
export type NormalMode = 'fresh' | 'established';

/** The established connection's state after a measurement (slow-clients-normal.ts). */
export interface ConnectionState {
  downloads: number;
  /** Why it closed, if it has (it is never reopened). */
  closed?: string;
  closedAt?: number;
}

/** Descriptors the entry keeps for itself (listener, stdio, epoll) and the normal client. */
const ENTRY_FD_RESERVE = 64;
/** The bench's upstream pool: every slow request gets an origin connection at once if it can. */
const MAX_POOL = 16_384;

/**
 * Upstream pool and client limit so that the entry (its own exit: one client socket and one
 * origin socket per request) stays within `nofile` descriptors. At the limit, libuv answers
 * a new connection's accept() failure (EMFILE) by accepting and closing it at once, which
 * resets whoever connects next (the normal client included), and an origin connect fails
 * (502). With 10,000 clients and 20,000 descriptors, 9,808 of them get an origin
 * connection at once and the rest wait in the pool's queue.
 */
export function entryLimits(
  count: number,
  nofile: number,
): { maxConnections: number; pool: number } {
  const maxConnections = count + ENTRY_FD_RESERVE;
  return {
    maxConnections,
    pool: Math.min(MAX_POOL, nofile - maxConnections - 2 * ENTRY_FD_RESERVE),
  };
}

export interface SlowClientsResult {
  count: number;
  via: string;
  connected: number;
  answered: number;
  closedEarly: number;
  /** Status codes the slow clients got. */
  statuses: Record<string, number>;
  rssBeforeMiB: number;
  rssPeakMiB: number;
  rssGrowthMiB: number;
  /** RSS growth per slow client. */
  perClientKiB: number;
  normalBaselineMBps: number;
  normalUnderLoadMBps: number;
  /** Under load / baseline. */
  normalRatio: number;
  /** Why the normal download under load failed (then its rate is 0), if it did. */
  normalError?: string;
  /** Connections the kernel aborted for lack of TCP memory meanwhile (TCPAbortOnMemory). */
  kernelAbortsOnMemory: number;
  /** Times the kernel entered TCP memory pressure meanwhile (TCPMemoryPressures). */
  kernelMemoryPressures: number;
  /** Connections the kernel dropped from a full accept queue meanwhile (ListenOverflows). */
  kernelListenOverflows: number;
  /** Host TCP memory (/proc/net/sockstat `TCP: mem`, all sockets of the host) before the load. */
  kernelTcpMemBeforeMiB: number;
  /** Its peak while the slow clients held their connections. */
  kernelTcpMemPeakMiB: number;
  /** Host TCP memory when the normal download under load starts. */
  kernelTcpMemAtNormalMiB: number;
  /** Slow connections still open then (a send timeout may have reset the others). */
  openAtNormal: number;
  /** (peak - before) per slow client: socket buffers of all legs (client, entry, origin). */
  kernelPerClientKiB: number;
  /** `net.ipv4.tcp_mem` pressure and max thresholds, MiB. */
  kernelTcpMemLimitsMiB: [number, number];
  /** `net.ipv4.tcp_notsent_lowat` of this network namespace (4294967295: unlimited). */
  tcpNotsentLowat: number;
  /** Where the processes ran. */
  net: NetPlan;
  /** The entry's upstream pool and client limit (from the descriptor limit). */
  limits: { maxConnections: number; pool: number; nofile: number };
  /** Most descriptors the entry had open. */
  entryFdsPeak: number;
  /** The entry's two legs (kernel socket memory) at the peak, after the settle time. */
  entryLegsAtPeak?: EntryLegs;
  /** Socket memory of each namespace (netns mode) at the same time, MiB: all its sockets. */
  namespacesAtPeakMiB?: { load: number; entry: number; origin: number };
  /** The same when the normal download under load starts. */
  entryLegsAtNormal?: EntryLegs;
  /** The normal client's measurements: without load, and right after the answers (connects done, parks under way). */
  baselineWindow: NormalWindow;
  normalMode: NormalMode;
  /** Nice value of the load and the `/slow` origin during the load (0: same as the entry). */
  loadNice: number;
  /** SlowClientsOptions.loadPolicy. */
  loadPolicy: 'nice' | 'idle';
  /** Where the slow clients connected (SlowClientsOptions.loadTarget). */
  loadTarget: 'entry' | 'sink' | 'split';
  /** Established mode: the baseline on the established connection (the series' reference). */
  establishedBaselineWindow?: NormalWindow;
  /** How the load opened its connections: rate asked (undefined: as fast as they connect), measured. */
  load: { connectRate?: number; connectsPerS: number; connectMs: number };
  /**
   * Connections the entry took out of its accept queue (its `accepted` reports), from the
   * load's start until it had accepted as many as the load connected: the mean rate, the
   * busiest report's rate, and when the last was accepted (s after the load started).
   */
  entryAccepts?: { meanPerS: number; peakPerS: number; allAcceptedS: number };
  transientWindow: NormalWindow;
  /**
   * Per second from the load's start to the end of the transient series: [s after the load
   * started, normal client MB/s, parks, host TCP memory MiB, CPU cores of entry, origin,
   * load, entry event-loop delay max ms (-1: the entry sent no report in that second),
   * stalled responses the entry held at the row's end, responses the entry parked in it,
   * connections the entry accepted in it, host busy cores, host softirq cores, connections
   * the entry's admission gate let in, waiting at the row's end, its rate then (-1: open;
   * all three -1 when the gate is off), the entry's main thread's cores, its minor GCs,
   * major GCs and GC ms, then run and CPU-wait seconds per second (schedstat) of the entry's
   * main thread, its other threads, and the main threads of the normal client's process, the
   * origin's, the load's, the acceptor's and the slow lane's (-1, -1 each when unreadable or
   * absent), the entry's ArrayBuffer memory at the row's end, MiB, and the connections
   * handed to the slow lane so far and open there (-1 each without one), and the size of
   * the entry's V8 new space at the row's end, MiB].
   */
  timeline: number[][];
  /**
   * Every measurement from the load's start to the one above (its last): the connects and
   * the park wave. `parks`: responses the entry cut short from 1 s before the window to its end.
   */
  transientSeries: Array<NormalWindow & { parks: number }>;
  /** When the entry cut the origin's `/slow` responses short (parks), seconds after the load started. */
  parkWave: { n: number; firstS: number; p10S: number; p50S: number; p90S: number; lastS: number };
  /** Connections the origin accepted (slow and idle ones), `/slow` requests, those cut short. */
  originStats: {
    connections: number;
    slowRequests: number;
    /** Body bytes the origin wrote per `/slow` request (KiB): read ahead for clients that do not read. */
    slowKiBPerRequest: number;
    slowAborted: number;
  };
  /** Steady-state measurement (`steadyAfterMs`). */
  steady?: NormalWindow & {
    ratio: number;
    kernelTcpMemMiB: number;
    msAfterAnswered: number;
    legs?: EntryLegs;
  };
  /** Second measurement (`afterMs`): the normal client's rate, host TCP memory, the legs. */
  after?: {
    normalMBps: number;
    ratio: number;
    error?: string;
    window: NormalWindow;
    kernelTcpMemMiB: number;
    msAfterAnswered: number;
    legs?: EntryLegs;
  };
}

const PAGE = 4096;

/** Pages of TCP socket memory the host holds now (/proc/net/sockstat); NaN if unreadable. */
export function tcpMemPages(): number {
  try {
    const m = / mem (\d+)/.exec(
      readFileSync('/proc/net/sockstat', 'utf8')
        .split('\n')
        .find((l) => l.startsWith('TCP:')) ?? '',
    );
    return m ? Number(m[1]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

function sysctlNumbers(name: string): number[] {
  try {
    return readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim().split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

const mib = (pages: number) => (pages * PAGE) / (1024 * 1024);

/** A TcpExt counter of this process's network namespace; NaN when unreadable. */
export function tcpExt(name: string): number {
  return tcpExtOf(name, 'self');
}

/** Resident set of a process in MiB (Linux). */
export function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

interface Proc {
  child: ChildProcess;
  first: Promise<Record<string, unknown>>;
  last: () => Record<string, unknown> | undefined;
  /** Calls `fn` with every JSON line the process prints from now on. */
  onLine(fn: (line: Record<string, unknown>) => void): void;
  stop(): Promise<void>;
}

/**
 * SLOW_LANE=1: when the first address went to the slow lane (s from the load's start, by the
 * entry's reports) and the lane's last report: handed so far, clients and parked there now.
 */
function laneNote(
  eld: Array<{
    t: number;
    lane?: { handed: number; clients: number; parkedNow: number; sources: number };
  }>,
  loadStartedAt: number,
): string {
  const last = eld.at(-1)?.lane;
  if (!last) return '';
  const first = eld.find((e) => (e.lane?.sources ?? 0) > 0);
  const at = first ? `${((first.t - loadStartedAt) / 1000).toFixed(1)} s` : 'never';
  return `, slow lane: first address sent at ${at}, last report ${JSON.stringify(last)}`;
}

/**
 * The entry's node flags: SLOW_ENTRY_NODE_FLAGS, and the old generation's floor that
 * docs/operations.md has nodes started with unless those flags give one (SLOW_HEAP_FLOOR=0:
 * without it).
 */
function entryNodeFlags(): string[] {
  const flags = (process.env.SLOW_ENTRY_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const floor = process.env.SLOW_HEAP_FLOOR === '0' ? undefined : heapFloorAdvice(flags);
  return floor ? [floor, ...flags] : flags;
}

/** Runs a bench script (tsx) in its own process (`prefix`: e.g. ip netns exec NS) with `nofile` descriptors. */
function startScript(script: string, arg: unknown, prefix: string[], nofile: number): Proc {
  const [cmd = 'bash', ...rest] = [...prefix, 'bash'];
  const child = spawn(
    cmd,
    [
      ...rest,
      '-c',
      `ulimit -n ${nofile}; exec "$0" "$@"`,
      process.execPath,
      // SLOW_ENTRY_PROF=DIR: a V8 CPU profile of the entry, written there when it exits.
      ...(script === ENTRY && process.env.SLOW_ENTRY_PROF
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.SLOW_ENTRY_PROF}`]
        : []),
      ...(script === ENTRY ? entryNodeFlags() : []),
      // SLOW_ENTRY_BUILD=dist: the entry's relaymesh code (and its acceptor's and lane's)
      // from dist/, what `relaymesh node` runs; the bench's own code stays under tsx.
      ...(script === ENTRY && process.env.SLOW_ENTRY_BUILD === 'dist'
        ? []
        : ['--conditions=@relaymesh/source']),
      '--import',
      'tsx',
      script,
      JSON.stringify(arg),
    ],
    {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
      // glibc's trim threshold, as docs/operations.md has nodes started (SLOW_MALLOC_TUNING=0:
      // glibc's default): without it a process streams at half its rate at random.
      env: process.env.SLOW_MALLOC_TUNING === '0' ? process.env : withMallocTuning(process.env),
    },
  );
  let last: Record<string, unknown> | undefined;
  const listeners: Array<(line: Record<string, unknown>) => void> = [];
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const first = new Promise<Record<string, unknown>>((resolve, reject) => {
    lines.on('line', (l) => {
      // Not one of its JSON lines (node's own output, e.g. --trace-gc through
      // SLOW_ENTRY_NODE_FLAGS): passed on to stderr, named.
      if (!l.startsWith('{')) {
        process.stderr.write(`[${script.slice(script.lastIndexOf('/') + 1)}] ${l}\n`);
        return;
      }
      last = JSON.parse(l) as Record<string, unknown>;
      for (const fn of listeners) fn(last);
      resolve(last);
    });
    child.once('exit', (code) => reject(new Error(`${script} exited with ${code}`)));
  });
  first.catch(() => {});
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    first,
    last: () => last,
    onLine: (fn) => void listeners.push(fn),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.stdin?.end();
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** What the origin saw: connections accepted, `/slow` requests, and when each `/slow` response was cut short (epoch ms: the entry parked it or gave up). */
export interface OriginStats {
  connections: number;
  slowRequests: number;
  /** Body bytes written to `/slow` responses (into their sockets): what the slow clients cost the origin. */
  slowBytes: number;
  slowAbortedAt: number[];
}

/**
 * `/slow`: 1 GiB announced, produced only as fast as it drains; `/fast?bytes=N`. Both honour
 * `Range: bytes=N-` (with ETag), so the entry can resume a download the kernel aborted.
 */
export async function startOrigin(
  host: string,
): Promise<{ port: number; stats: OriginStats; close(): Promise<void> }> {
  const stats: OriginStats = { connections: 0, slowRequests: 0, slowBytes: 0, slowAbortedAt: [] };
  const server = http.createServer((req, res) => {
    const q = new URL(req.url ?? '/', 'http://x');
    if (q.pathname === '/slow') {
      stats.slowRequests++;
      res.once('close', () => {
        if (!res.writableFinished) stats.slowAbortedAt.push(Date.now());
      });
    }
    const total = q.pathname === '/slow' ? SLOW_BYTES : Number(q.searchParams.get('bytes'));
    const from = Number(/^bytes=(\d+)-$/.exec(req.headers.range ?? '')?.[1] ?? 0);
    const headers = { 'content-type': 'application/octet-stream', etag: `"${total}"` };
    if (from > 0 && from < total) {
      res.writeHead(206, {
        ...headers,
        'content-length': total - from,
        'content-range': `bytes ${from}-${total - 1}/${total}`,
      });
    } else {
      res.writeHead(200, { ...headers, 'content-length': total });
    }
    let left = total - (from > 0 && from < total ? from : 0);
    const slow = q.pathname === '/slow';
    const more = () => {
      while (left > 0) {
        const chunk = left >= CHUNK.length ? CHUNK : CHUNK.subarray(0, left);
        left -= chunk.length;
        if (slow) stats.slowBytes += chunk.length;
        if (!res.write(chunk)) return void res.once('drain', more);
      }
      res.end();
    };
    res.on('error', () => {});
    more();
  });
  server.on('connection', () => {
    stats.connections++;
  });
  server.maxConnections = 19_000;
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, host, 4096, r));
  return {
    port: (server.address() as AddressInfo).port,
    stats,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

/** Per download, ms from its start: TCP connect (0 on a reused connection), response head, last byte. */
export interface DownloadPhases {
  connect: number;
  head: number;
  total: number;
}

/** One normal download through the entry; resolves with MB/s (10^6 B/s). */
export function download(
  host: string,
  port: number,
  bytes: number,
  onData?: (n: number) => void,
  phases?: (ms: DownloadPhases) => void,
): Promise<number> {
  const started = performance.now();
  let connectMs = Number.NaN;
  let headMs = Number.NaN;
  return new Promise((resolve, reject) => {
    const req = http.get(
      // A fresh connection each time: a pooled one may meet the entry's 5 s idle close.
      {
        port,
        host,
        path: `/fast?bytes=${bytes}`,
        headers: { host: 'fast.local' },
        agent: false,
      },
      (res) => {
        headMs = performance.now() - started;
        let n = 0;
        res.on('data', (d: Buffer) => {
          n += d.length;
          onData?.(d.length);
        });
        res.once('end', () => {
          if (res.statusCode !== 200 || n !== bytes) {
            reject(new Error(`normal download: status ${res.statusCode}, ${n} of ${bytes} B`));
          } else {
            const total = performance.now() - started;
            phases?.({ connect: connectMs, head: headMs, total });
            resolve(bytes / 1e3 / total);
          }
        });
        res.once('error', reject);
      },
    );
    req.once('socket', (socket) => {
      socket.once('connect', () => {
        connectMs = performance.now() - started;
      });
    });
    req.setTimeout(60_000, () => req.destroy(new Error('normal download timed out')));
    req.once('error', reject);
  });
}

/**
 * User + system CPU time a process has used, seconds (Linux; USER_HZ 100); NaN if unreadable.
 * A string is the stat file of one of its threads (`/proc/PID/task/TID/stat`).
 */
function cpuSeconds(pid: number | string): number {
  try {
    const stat = readFileSync(typeof pid === 'string' ? pid : `/proc/${pid}/stat`, 'utf8');
    // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU seconds the whole host has spent busy (everything but idle and iowait) and in softirq
 * (the veth pairs' packet processing lands there), from /proc/stat; NaN if unreadable.
 */
function hostCpu(): { busy: number; softirq: number } {
  try {
    const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(1);
    const v = f.map(Number);
    const total = v.slice(0, 8).reduce((a, x) => a + x, 0);
    return { busy: (total - (v[3] ?? 0) - (v[4] ?? 0)) / 100, softirq: (v[6] ?? 0) / 100 };
  } catch {
    return { busy: Number.NaN, softirq: Number.NaN };
  }
}

/**
 * Seconds the threads of `pid` ran and waited runnable for a CPU (Linux
 * `/proc/PID/task/TID/schedstat`): `main` its main thread alone, `rest` its other threads
 * (V8's GC helpers, libuv's pool), read only when `withRest`; NaN when unreadable. Waiting
 * is the time the scheduler gave the core to something else while the thread was ready: a
 * CPU wait, not an I/O one.
 */
function schedSeconds(
  pid: number,
  withRest: boolean,
): { main: [number, number]; rest: [number, number] } {
  const read = (tid: string): [number, number] => {
    const [run, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ');
    return [Number(run) / 1e9, Number(wait) / 1e9];
  };
  try {
    const rest: [number, number] = withRest ? [0, 0] : [Number.NaN, Number.NaN];
    for (const tid of withRest ? readdirSync(`/proc/${pid}/task`) : []) {
      if (tid === String(pid)) continue;
      try {
        const [r, w] = read(tid);
        rest[0] += r;
        rest[1] += w;
      } catch {
        // The thread ended between the listing and the read.
      }
    }
    return { main: read(String(pid)), rest };
  } catch {
    return { main: [Number.NaN, Number.NaN], rest: [Number.NaN, Number.NaN] };
  }
}

/** One normal-client measurement: {@link RUNS} downloads one after the other, and what else ran meanwhile. */
export interface NormalWindow {
  /** Median of the downloads, MB/s (0 when one failed). */
  mbps: number;
  rates: number[];
  /** Per download in the order run: ms to the TCP connect, to the response head, to the last byte. */
  phasesMs: number[][];
  error?: string;
  /** Start and end, seconds after the slow clients' process was started (negative: before). */
  startS: number;
  endS: number;
  /** CPU each process used over the window, in cores (1 = one core busy all the time); `host`: the whole host's busy cores. */
  cpuCores: Record<string, number>;
  /** Host TCP memory at the window's start and end, MiB (pressure above `tcp_mem[1]`). */
  tcpMemMiB: [number, number];
  /** The entry's event-loop delay over the window (its per-second reports): max and mean, ms. */
  entryEld: { maxMs: number; meanMs: number };
  /**
   * The entry's main-thread garbage collections in the same reports (the 1-2 s around the
   * window): minor, major, and ms spent in them.
   */
  entryGc: [number, number, number];
  /** Established mode: the connection's state at the window's end. */
  connection?: ConnectionState;
  /** A baseline: the medians of its windows (this one is their median). */
  windowsMBps?: number[];
}

/** Sums the entry's per-second GC reports: [minor, major, ms]. */
function gcOver(reports: Array<{ gc?: [number, number, number] }>): [number, number, number] {
  const sum: [number, number, number] = [0, 0, 0];
  for (const { gc } of reports) {
    if (!gc) continue;
    sum[0] += gc[0];
    sum[1] += gc[1];
    sum[2] += gc[2];
  }
  return sum;
}

/** When the origin's `/slow` responses were cut short, seconds after `from`: the park wave. */
function wave(at: number[], from: number): SlowClientsResult['parkWave'] {
  const s = at.map((t) => (t - from) / 1000).sort((a, b) => a - b);
  const q = (f: number) => s[Math.min(s.length - 1, Math.floor(f * s.length))] ?? Number.NaN;
  return { n: s.length, firstS: q(0), p10S: q(0.1), p50S: q(0.5), p90S: q(0.9), lastS: q(1) };
}

/**
 * The entry's accept rate during the load, from its per-second `accepted` reports: from the
 * last report before the load started to the first with `count` more accepted. Undefined if
 * the reports do not cover it.
 */
function acceptRates(
  reports: Array<{ t: number; accepted?: number }>,
  from: number,
  count: number,
): SlowClientsResult['entryAccepts'] {
  const start = reports.filter((e) => e.t <= from).pop();
  if (start?.accepted === undefined) return undefined;
  const base = start.accepted;
  const after = reports.filter((e) => e.t > from && e.accepted !== undefined);
  const end = after.find((e) => (e.accepted ?? 0) - base >= count);
  if (!end) return undefined;
  let peak = 0;
  let prev = start;
  for (const e of after) {
    if (e.t > end.t) break;
    peak = Math.max(peak, ((e.accepted ?? 0) - (prev.accepted ?? 0)) / ((e.t - prev.t) / 1000));
    prev = e;
  }
  // The accepts began within the first report that has any.
  const first = after.find((e) => (e.accepted ?? 0) > base);
  const began = after[after.indexOf(first ?? end) - 1]?.t ?? start.t;
  return {
    meanPerS: ((end.accepted ?? 0) - base) / ((end.t - began) / 1000),
    peakPerS: peak,
    allAcceptedS: (end.t - from) / 1000,
  };
}

/** Downloads per normal-client measurement (median). */
const RUNS = 5;
/** Windows of the baseline (median). */
const BASELINE_WINDOWS = 3;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Descriptors a process has open (Linux); NaN if unreadable. */
function fdCount(pid: number): number {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return Number.NaN;
  }
}

/** Runs the experiment; every process it started is stopped before it resolves. */
export async function runSlowClients(o: SlowClientsOptions): Promise<SlowClientsResult> {
  const note = o.note ?? (() => {});
  const normalBytes = o.normalBytes ?? 32 * 1024 * 1024;
  const net = o.net ?? loopbackPlan('not requested');
  const nofile = o.nofile ?? 20_000;
  const limits = { ...entryLimits(o.count, nofile), nofile };
  const origin = await startOrigin(net.origin);
  // The normal client and its origin: own process, the bench's namespace (origin side).
  // The entry (and its acceptor, forked from it) on CPU 0, everything else on CPU 1: this
  // process, and so every child it starts but the entry (a child inherits its affinity).
  const pin = o.pin === true || o.pin === 'stream';
  if (pin)
    execFileSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)], { stdio: 'ignore' });
  const normalPrefix = o.pin === 'stream' ? ['taskset', '-c', '0'] : [];
  const normal = startScript(NORMAL, { host: net.origin }, normalPrefix, 1024);
  let normalReady: Record<string, unknown>;
  try {
    normalReady = await normal.first;
  } catch (err) {
    await origin.close();
    throw err;
  }
  let answer: { resolve(line: Record<string, unknown>): void; reject(e: Error): void } | undefined;
  normal.onLine((line) => {
    if (!('rates' in line)) return;
    const a = answer;
    answer = undefined;
    a?.resolve(line);
  });
  normal.child.once('exit', () => answer?.reject(new Error('normal client process exited')));
  let normalProgress = 0;
  normal.onLine((line) => {
    if (typeof line.progress === 'number') normalProgress = line.progress;
  });
  const entryArg = {
    originPort: origin.port,
    fastOriginPort: normalReady.port as number,
    originHost: net.origin,
    listenHost: net.entryListen,
    via: o.via,
    sendTimeoutMs: o.sendTimeoutMs ?? 0,
    ...(o.parkAfterMs === undefined ? {} : { parkAfterMs: o.parkAfterMs }),
    ...(o.maxHeldStalls === undefined ? {} : { maxHeldStalls: o.maxHeldStalls }),
    poolConnections: limits.pool,
    maxConnections: limits.maxConnections,
  };
  const entryPrefix = [...nsPrefix(net.ns?.entry), ...(pin ? ['taskset', '-c', '0'] : [])];
  const entry = startScript(ENTRY, entryArg, entryPrefix, nofile);
  let load: Proc | undefined;
  let sink: Proc | undefined;
  let split: Proc | undefined;
  try {
    const ready = await entry.first;
    const port = ready.port as number;
    const pid = ready.pid as number;
    // The entry's acceptor process (SLOW_ACCEPTOR=process): its memory and CPU count as the entry's.
    const acceptorPid = ready.acceptorPid as number | undefined;
    // SLOW_LANE=1: the entry's slow lane process: its memory and CPU count as the entry's.
    const lanePid = ready.lanePid as number | undefined;
    // loadTarget "split": the second entry, which holds the slow clients (its memory is measured).
    let holder = { port, pid, acceptorPid };
    if (o.loadTarget === 'split') {
      split = startScript(
        ENTRY,
        entryArg,
        [...entryPrefix, 'nice', '-n', String(o.splitNice ?? 10)],
        nofile,
      );
      const r2 = await split.first;
      holder = {
        port: r2.port as number,
        pid: r2.pid as number,
        acceptorPid: r2.acceptorPid as number | undefined,
      };
    }
    // The lane starts when an address first needs it: its pid comes with the entry's
    // reports (procs.lane, kept below), and its memory counts from then on.
    const laneRssMiB = () => {
      const p = procs.lane;
      if (typeof p !== 'number' || split) return 0;
      try {
        return rssMiB(p);
      } catch {
        return 0; // between a death and its replacement
      }
    };
    const entryRssMiB = () =>
      rssMiB(holder.pid) + (holder.acceptorPid ? rssMiB(holder.acceptorPid) : 0) + laneRssMiB();
    const legsNow = () => entryLegs(net.ns?.entry, holder.pid, holder.port, origin.port);
    const host = net.entryForNormal;
    const eld: Array<{
      t: number;
      maxMs: number;
      meanMs: number;
      /** Main-thread garbage collections over the report's second: minor, major, ms in them. */
      gc?: [number, number, number];
      held?: number;
      parked?: number;
      /** Parked now, and the client addresses holding them (EntryServer.stalls). */
      parkedNow?: number;
      parkedSources?: number;
      accepted?: number;
      admitted?: number;
      waiting?: number;
      admitRate?: number;
      arrayBuffersMiB?: number;
      lane?: { pid: number; handed: number; clients: number; parkedNow: number; sources: number };
      newSpaceMiB?: number;
    }> = [];
    entry.onLine((line) => {
      if (!line.eld) return;
      const e = line.eld as (typeof eld)[number];
      eld.push(e);
      // The lane's CPU and scheduling from when it is up (its first second then reads as -1).
      const p = e.lane?.pid ?? -1;
      if (p > 0 && procs.lane !== p && !split) procs.lane = p;
    });
    const procs: Record<string, number | string> = {
      entry: pid,
      // The entry's main thread alone (its event loop); `entry` adds V8's GC helper
      // threads and libuv's pool.
      entryMain: `/proc/${pid}/task/${pid}/stat`,
      ...(acceptorPid ? { acceptor: acceptorPid } : {}),
      ...(lanePid ? { lane: lanePid } : {}),
      origin: process.pid,
      normal: normalReady.pid as number,
      ...(split ? { split: holder.pid } : {}),
      ...(split && holder.acceptorPid ? { splitAcceptor: holder.acceptorPid } : {}),
    };
    let loadStartedAt = Date.now();
    /** `runs` normal downloads in the normal client's process, with CPU and event-loop delay. */
    const measure = async (runs: number, conn: NormalMode = 'fresh'): Promise<NormalWindow> => {
      const cpu0 = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuSeconds(p)]));
      const t0 = performance.now();
      const host0 = hostCpu();
      const tcpMem0 = tcpMemPages();
      const r = await new Promise<Record<string, unknown>>((resolve, reject) => {
        answer = { resolve, reject };
        const cmd = { host, port, bytes: normalBytes, runs, conn };
        normal.child.stdin?.write(`${JSON.stringify(cmd)}\n`);
      });
      const wall = (performance.now() - t0) / 1000;
      const tcpMem1 = tcpMemPages();
      const cpuCores = Object.fromEntries(
        Object.entries(procs).map(([k, p]) => [k, (cpuSeconds(p) - (cpu0[k] ?? 0)) / wall]),
      );
      cpuCores.host = (hostCpu().busy - host0.busy) / wall;
      const startedAt = Number(r.startedAt);
      const endedAt = Number(r.endedAt);
      // The report covering the window's end comes up to a second later.
      for (let i = 0; i < 40 && !eld.some((e) => e.t > endedAt); i++) await sleep(50);
      // Each report covers the second before its timestamp.
      const inWindow = eld.filter((e) => e.t > startedAt && e.t <= endedAt + 1000);
      const rates = ((r.rates as number[]) ?? []).slice().sort((a, b) => a - b);
      return {
        mbps: r.error === undefined ? (rates[Math.floor(rates.length / 2)] ?? 0) : 0,
        rates,
        phasesMs: (r.phases as number[][] | undefined) ?? [],
        ...(r.error === undefined ? {} : { error: String(r.error) }),
        startS: (startedAt - loadStartedAt) / 1000,
        endS: (endedAt - loadStartedAt) / 1000,
        cpuCores,
        tcpMemMiB: [mib(tcpMem0), mib(tcpMem1)],
        entryEld: {
          maxMs: Math.max(0, ...inWindow.map((e) => e.maxMs)),
          meanMs: inWindow.reduce((a, e) => a + e.meanMs, 0) / Math.max(1, inWindow.length),
        },
        entryGc: gcOver(inWindow),
        ...(r.connection ? { connection: r.connection as ConnectionState } : {}),
      };
    };
    /**
     * The baseline: the median of {@link BASELINE_WINDOWS} windows. One window's median
     * swung 257-753 MB/s between runs on this host, and a run with 40 slow clients (no load
     * to speak of) had windows down to 0.52 of a one-window baseline: a window against one
     * lucky window measured the host, not the entry.
     */
    const baselineOf = async (conn: NormalMode, what: string) => {
      const windows: NormalWindow[] = [];
      for (let i = 0; i < BASELINE_WINDOWS; i++) {
        const w = await measure(RUNS, conn);
        if (w.error) throw new Error(`${what} without load: ${w.error}`);
        windows.push(w);
      }
      const sorted = windows.slice().sort((a, b) => a.mbps - b.mbps);
      const median = sorted[Math.floor(sorted.length / 2)] as NormalWindow;
      return { ...median, windowsMBps: windows.map((w) => Number(w.mbps.toFixed(1))) };
    };
    await measure(3); // warm-up (pool, JIT)
    const baseline = await baselineOf('fresh', 'normal download');
    const normalBaselineMBps = baseline.mbps;
    const mode = o.normalMode ?? 'fresh';
    let establishedBaseline: NormalWindow | undefined;
    if (mode === 'established') {
      await measure(1, mode); // opens the connection
      establishedBaseline = await baselineOf(mode, 'established download');
    }
    const rssBeforeMiB = entryRssMiB();
    const pids: Array<number | 'self'> = ['self', holder.pid];
    const counter = (name: string) => tcpExtSum(name, pids);
    const abortsBefore = counter('TCPAbortOnMemory');
    const pressuresBefore = counter('TCPMemoryPressures');
    const overflowsBefore = counter('ListenOverflows');
    const tcpMemBefore = tcpMemPages();
    let tcpMemPeak = tcpMemBefore;
    let fdsPeak = fdCount(holder.pid);
    note(
      `baseline ${normalBaselineMBps.toFixed(1)} MB/s, entry RSS ${rssBeforeMiB.toFixed(0)} MiB, ` +
        `network ${net.mode}${net.reason ? ` (${net.reason})` : ''}, pool ${limits.pool}`,
    );
    let loadPort = holder.port;
    if (o.loadTarget === 'sink') {
      sink = startScript(SINK, { listenHost: net.entryListen }, nsPrefix(net.ns?.entry), nofile);
      const sinkReady = await sink.first;
      procs.sink = Number(sinkReady.pid);
      loadPort = Number(sinkReady.port);
    }
    const started = startScript(
      LOAD,
      {
        port: loadPort,
        connect: net.entryForLoad,
        host: 'slow.local',
        path: '/slow',
        count: o.count,
        batch: 100,
        ...(o.connectRate === undefined ? {} : { connectRate: o.connectRate }),
        go: true,
      },
      nsPrefix(net.ns?.load),
      nofile,
    );
    load = started;
    const readyLine = new Promise<Record<string, unknown>>((resolve, reject) => {
      started.onLine((line) => {
        if (line.ready) resolve(line);
      });
      started.child.once('exit', (code) =>
        reject(new Error(`slow-clients-load exited with ${code}`)),
      );
    });
    readyLine.catch(() => {});
    // Its {"started":true} line: node and tsx loaded, nothing opened yet. The load's clock
    // starts with the go line, so the process's own startup is not in the first window.
    await started.first;
    const loadNice = o.loadNice ?? 10;
    if (loadNice !== 0 && started.child.pid !== undefined) {
      // bash and `ip netns exec` exec into node: the child's pid is the load's.
      setPriority(started.child.pid, loadNice);
      setPriority(process.pid, loadNice);
    }
    if (o.loadPolicy === 'idle' && started.child.pid !== undefined) {
      for (const pid of [started.child.pid, process.pid]) {
        const failed = idleAll(pid);
        if (failed !== undefined) throw new Error(`SLOW_LOAD_POLICY=idle: pid ${pid}: ${failed}`);
      }
    }
    loadStartedAt = Date.now();
    started.child.stdin?.write('go\n');
    // bash and `ip netns exec` exec into node: the same process.
    if (started.child.pid !== undefined) procs.load = started.child.pid;
    // The transient: normal-client measurements one after the other from the load's start
    // until `settleMs` after the answers, through the connects and the park wave.
    const series: NormalWindow[] = [];
    let seriesDone = false;
    // And a per-second timeline of the same span.
    const timeline: number[][] = [];
    const rowEnds: number[] = [];
    /** Per row: the entry's main thread's cores (appended last, after the gate's columns). */
    const mainRows: number[] = [];
    /**
     * Per row, after the GC columns: seconds per second run and waited for a CPU by the
     * entry's main thread, its other threads, and the main threads of the normal client's
     * process, the origin's (this one), the load's, the entry's acceptor's and its lane's.
     */
    const schedRows: number[][] = [];
    // The processes of the columns (the load's once it runs; not the sink's or the split's,
    // which have none); only the entry's other threads.
    const SCHED = ['entry', 'normal', 'origin', 'load', 'acceptor', 'lane'] as const;
    const schedNow = () =>
      Object.fromEntries(
        SCHED.flatMap((k) => {
          const p = procs[k];
          return typeof p === 'number' ? [[k, schedSeconds(p, k === 'entry')]] : [];
        }),
      );
    let row = {
      at: Date.now(),
      parks: 0,
      cpu: Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuSeconds(p)])),
      normalBytes: normalProgress,
      host: hostCpu(),
      sched: schedNow(),
    };
    /** Per row: the host's busy cores and its softirq share (all processes, this run's and others'). */
    const hostRows: number[][] = [];
    const tick = setInterval(() => {
      const at = Date.now();
      const cpu = Object.fromEntries(Object.entries(procs).map(([k, p]) => [k, cpuSeconds(p)]));
      const s = (at - row.at) / 1000;
      const cores = (k: string) => Number((((cpu[k] ?? 0) - (row.cpu[k] ?? 0)) / s).toFixed(2));
      const parks = origin.stats.slowAbortedAt.length;
      timeline.push([
        Number(((at - loadStartedAt) / 1000).toFixed(1)),
        Number(((normalProgress - row.normalBytes) / 1e6 / s).toFixed(1)),
        parks - row.parks,
        Math.round(mib(tcpMemPages())),
        cores('entry'),
        cores('origin'),
        cores('load'),
      ]);
      mainRows.push(cores('entryMain'));
      const sched = schedNow();
      const per = (k: string, part: 'main' | 'rest') => {
        const a = sched[k]?.[part];
        const b = row.sched[k]?.[part];
        const d = [0, 1].map((i) => ((a?.[i] ?? Number.NaN) - (b?.[i] ?? Number.NaN)) / s);
        return d.map((x) => (Number.isFinite(x) ? Number(x.toFixed(3)) : -1));
      };
      schedRows.push([
        ...per('entry', 'main'),
        ...per('entry', 'rest'),
        ...SCHED.slice(1).flatMap((k) => per(k, 'main')),
      ]);
      rowEnds.push(at);
      const host = hostCpu();
      hostRows.push(
        [host.busy - row.host.busy, host.softirq - row.host.softirq].map((x) =>
          Number((x / s).toFixed(2)),
        ),
      );
      row = { at, parks, cpu, normalBytes: normalProgress, host, sched };
    }, 1000);
    // Established: back to back (the window's bookkeeping, up to ~2 s, is the only gap),
    // so the entry's 5 s keep-alive idle close does not end the connection.
    const seriesRun = (async () => {
      while (!seriesDone) {
        const w = await measure(RUNS, mode);
        series.push(w);
        if (w.connection?.closed) {
          note(`established connection closed: ${w.connection.closed}`);
          break;
        }
        if (mode === 'fresh') await sleep(500);
      }
    })();
    const loaded = await readyLine;
    pids.push(Number(loaded.pid));
    procs.load = Number(loaded.pid);
    note(`load: ${JSON.stringify(loaded)}`);
    // Requests beyond the pool wait for an origin connection: no answer expected for them.
    // (The sink answers nobody: the load is done once every client has connected.)
    const expected = sink ? 0 : Math.min(o.count, limits.pool);
    const deadline = Date.now() + (o.loadDeadlineMs ?? 60_000);
    let peak = entryRssMiB();
    const sample = () => {
      peak = Math.max(peak, entryRssMiB());
      tcpMemPeak = Math.max(tcpMemPeak, tcpMemPages());
      fdsPeak = Math.max(fdsPeak, fdCount(holder.pid));
    };
    for (let i = 0; i < 100_000 && Date.now() < deadline; i++) {
      sample();
      // Done when every client got response bytes or its connection closed (an error).
      const p = load.last();
      if (p && Number(p.answered) + Number(p.closed ?? 0) >= expected) break;
      await sleep(250);
    }
    const answeredAt = Date.now();
    for (let t = Date.now() + (o.settleMs ?? 3000); Date.now() < t; ) {
      sample();
      await sleep(250);
    }
    while (Date.now() < loadStartedAt + (o.seriesMinMs ?? 0)) {
      sample();
      await sleep(250);
    }
    seriesDone = true;
    await seriesRun;
    clearInterval(tick);
    // The entry's loop delay per row, once its reports have arrived (this process can read
    // them late while it is busy): the largest report stamped within the row's second.
    timeline.forEach((r, i) => {
      const from = i > 0 ? (rowEnds[i - 1] ?? 0) : loadStartedAt;
      const to = rowEnds[i] ?? 0;
      const reports = eld.filter((e) => e.t > from && e.t <= to);
      const max = Math.max(-1, ...reports.map((e) => e.maxMs));
      r.push(max < 0 ? -1 : Math.round(max));
      // The entry's own count of stalled responses held and parked (its last report of the row).
      const last = reports[reports.length - 1];
      const before = eld.filter((e) => e.t <= from).pop();
      r.push(last?.held ?? -1, last ? (last.parked ?? 0) - (before?.parked ?? 0) : -1);
      r.push(last ? (last.accepted ?? 0) - (before?.accepted ?? 0) : -1);
      r.push(...(hostRows[i] ?? [-1, -1]));
      // The entry's admission gate (-1 each when it is off).
      r.push(
        last?.admitted === undefined ? -1 : last.admitted - (before?.admitted ?? 0),
        last?.waiting ?? -1,
        last?.admitRate ?? -1,
      );
      r.push(mainRows[i] ?? -1, ...gcOver(reports));
      r.push(...(schedRows[i] ?? []));
      r.push(last?.arrayBuffersMiB ?? -1);
      // SLOW_LANE=1: connections handed to the slow lane so far, and open there (-1: off).
      r.push(last?.lane?.handed ?? -1, last?.lane?.clients ?? -1);
      r.push(last?.newSpaceMiB ?? -1);
    });
    const entryAccepts = acceptRates(eld, loadStartedAt, Number(loaded.connected));
    const entryLegsAtPeak = legsNow();
    const nsMiB = (name: string) => (nsSocketBytes(name) ?? Number.NaN) / 1048576;
    const namespacesAtPeakMiB = net.ns && {
      load: nsMiB(net.ns.load),
      entry: nsMiB(net.ns.entry),
      origin: nsMiB(net.ns.origin),
    };
    note(
      `slow clients: ${JSON.stringify(load.last())}, entry RSS peak ${peak.toFixed(0)} MiB, ` +
        `host TCP memory ${mib(tcpMemBefore).toFixed(0)} -> ${mib(tcpMemPeak).toFixed(0)} MiB, ` +
        `entry legs ${JSON.stringify(entryLegsAtPeak)}, parked now ${eld.at(-1)?.parkedNow ?? '?'} ` +
        `from ${eld.at(-1)?.parkedSources ?? '?'} client addresses (the entry's last report)` +
        laneNote(eld, loadStartedAt),
    );
    const tcpMemAtNormal = tcpMemPages();
    const entryLegsAtNormal = legsNow();
    const atNormal = load.last() ?? {};
    // Established mode: the series' last window stands for it (no new fresh connection).
    const transient = mode === 'fresh' ? await measure(RUNS) : series[series.length - 1];
    if (!transient) throw new Error('no normal-client measurement under load');
    if (mode === 'fresh') series.push(transient);
    const normalUnderLoadMBps = transient.mbps;
    const normalError = transient.error;
    if (normalError) note(`normal download under load failed: ${normalError}`);
    note(`transient: ${JSON.stringify(transient)}`);
    sample();
    const progress = load.last() ?? {};
    let steady: SlowClientsResult['steady'];
    if ((o.steadyAfterMs ?? 0) > 0) {
      for (let t = answeredAt + (o.steadyAfterMs ?? 0); Date.now() < t; ) {
        sample();
        await sleep(250);
      }
      const kernelTcpMemMiB = mib(tcpMemPages());
      const legs = legsNow();
      const w = await measure(RUNS);
      steady = {
        ...w,
        ratio: w.mbps / normalBaselineMBps,
        kernelTcpMemMiB,
        msAfterAnswered: Date.now() - answeredAt,
        ...(legs ? { legs } : {}),
      };
      note(`steady: ${JSON.stringify(steady)}`);
    }
    let after: SlowClientsResult['after'];
    if ((o.afterMs ?? 0) > 0) {
      for (let t = answeredAt + (o.afterMs ?? 0); Date.now() < t; ) {
        sample();
        await sleep(250);
      }
      const kernelTcpMemMiB = mib(tcpMemPages());
      const legs = legsNow();
      const w = await measure(RUNS);
      after = {
        normalMBps: w.mbps,
        ratio: w.mbps / normalBaselineMBps,
        ...(w.error === undefined ? {} : { error: w.error }),
        window: w,
        kernelTcpMemMiB,
        msAfterAnswered: Date.now() - answeredAt,
        ...(legs ? { legs } : {}),
      };
      note(`after ${o.afterMs} ms: ${JSON.stringify(after)}`);
    }
    // A private network namespace does not show tcp_mem (it is host-wide): o.tcpMem then.
    const limitsTcp = sysctlNumbers('tcp_mem');
    const [, pressure = Number.NaN, max = Number.NaN] =
      limitsTcp.length === 3 ? limitsTcp : (o.tcpMem ?? []);
    return {
      count: o.count,
      via: o.via,
      connected: Number(loaded.connected),
      answered: Number(progress.answered ?? 0),
      closedEarly: Number(progress.closed ?? 0) + Number(loaded.failed ?? 0),
      statuses: (progress.statuses ?? {}) as Record<string, number>,
      rssBeforeMiB,
      rssPeakMiB: peak,
      rssGrowthMiB: peak - rssBeforeMiB,
      perClientKiB: ((peak - rssBeforeMiB) * 1024) / o.count,
      normalBaselineMBps,
      normalUnderLoadMBps,
      normalRatio: normalUnderLoadMBps / normalBaselineMBps,
      baselineWindow: baseline,
      normalMode: mode,
      loadNice,
      loadPolicy: o.loadPolicy ?? 'nice',
      loadTarget: sink ? 'sink' : split ? 'split' : 'entry',
      ...(establishedBaseline ? { establishedBaselineWindow: establishedBaseline } : {}),
      load: {
        ...(o.connectRate === undefined ? {} : { connectRate: o.connectRate }),
        connectsPerS: Number(loaded.connected) / (Number(loaded.ms) / 1000),
        connectMs: Number(loaded.ms),
      },
      ...(entryAccepts ? { entryAccepts } : {}),
      transientWindow: transient,
      timeline,
      transientSeries: series.map((w) => ({
        ...w,
        parks: origin.stats.slowAbortedAt.filter(
          (t) => t >= loadStartedAt + w.startS * 1000 - 1000 && t <= loadStartedAt + w.endS * 1000,
        ).length,
      })),
      parkWave: wave(origin.stats.slowAbortedAt, loadStartedAt),
      originStats: {
        connections: origin.stats.connections,
        slowRequests: origin.stats.slowRequests,
        slowKiBPerRequest: Math.round(
          origin.stats.slowBytes / 1024 / Math.max(1, origin.stats.slowRequests),
        ),
        slowAborted: origin.stats.slowAbortedAt.length,
      },
      ...(steady ? { steady } : {}),
      ...(normalError === undefined ? {} : { normalError }),
      kernelAbortsOnMemory: counter('TCPAbortOnMemory') - abortsBefore,
      kernelMemoryPressures: counter('TCPMemoryPressures') - pressuresBefore,
      kernelListenOverflows: counter('ListenOverflows') - overflowsBefore,
      kernelTcpMemBeforeMiB: mib(tcpMemBefore),
      kernelTcpMemPeakMiB: mib(tcpMemPeak),
      kernelTcpMemAtNormalMiB: mib(tcpMemAtNormal),
      openAtNormal: entryLegsAtNormal?.client.sockets ?? Number(atNormal.open ?? 0),
      kernelPerClientKiB: ((tcpMemPeak - tcpMemBefore) * PAGE) / 1024 / o.count,
      kernelTcpMemLimitsMiB: [mib(pressure), mib(max)],
      // The entry's namespace: the bench's own, or the one set up in netns mode.
      tcpNotsentLowat: net.ns
        ? Number(net.sysctls?.[net.ns.entry]?.['net.ipv4.tcp_notsent_lowat'] ?? 4294967295)
        : (sysctlNumbers('tcp_notsent_lowat')[0] ?? Number.NaN),
      net,
      limits,
      entryFdsPeak: fdsPeak,
      ...(entryLegsAtPeak ? { entryLegsAtPeak } : {}),
      ...(entryLegsAtNormal ? { entryLegsAtNormal } : {}),
      ...(namespacesAtPeakMiB ? { namespacesAtPeakMiB } : {}),
      ...(after ? { after } : {}),
    };
  } finally {
    await load?.stop();
    await sink?.stop();
    await split?.stop();
    await entry.stop();
    await normal.stop();
    await origin.close();
  }
}
