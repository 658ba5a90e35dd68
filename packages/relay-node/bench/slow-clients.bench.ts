/**
 * Issue 6, bounded memory under abuse: 10,000 slow clients (1 B/s each, from their own
 * process) on one entry. Reports the entry's RSS growth per slow client against the bound
 * documented in docs/reliability.md ("Slow clients") and a normal client's download rate
 * while they hold their connections, against the same download without them (baseline).
 *
 *   node --conditions=@relaymesh/source --import tsx packages/relay-node/bench/slow-clients.bench.ts
 *
 * SLOW_CLIENTS=N (default 10000), SLOW_NORMAL_MIB (default 32) and SLOW_VIA=local|tunnel (default local: the entry is
 * its own exit; tunnel: entry and exit joined by a relaymux session, both in the measured
 * process, at most 1024 streams per session). SLOW_SEND_TIMEOUT_MS: the entry's send timeout
 * (default 0, off: every slow client stays connected). SLOW_SERIES_MIN_S=S: the normal
 * client's windows go on at least S seconds after the load's start; with SLOW_CLIENTS=1,
 * a no-load control as long as a 10,000-client run (how often an unloaded stream's window
 * falls below 0.5 of its baseline on this host).
 *
 * SLOW_PARK_AFTER_MS: the entry's park delay (default: the product's, 5000; 0 off: every
 * stalled response keeps its origin connection until the send timeout).
 * SLOW_AFTER_MS: a second normal-client measurement this long after the slow clients were
 * answered (default: the send timeout + 10 s when it is on, so after it fired; else none).
 * SLOW_STEADY_MS: a steady-state measurement this long after the answers, every stall
 * parked and none reset yet (default 20000 when the send timeout is off or above 30 s;
 * 0: none).
 * SLOW_NORMAL_MODE=fresh|established (default fresh): how the normal client connects for the
 * transient series. fresh: a new connection per download ("slow-clients-normal-rate"
 * line); established: one keep-alive connection opened before the load, its own baseline
 * on it, then downloads back to back on it through the connects and the park wave
 * ("slow-clients-normal-rate-established" line; a connection the entry closes is reported,
 * not reopened). One mode per run: each 32 MiB download stream costs the entry 0.7-1.2 of
 * a core, so two at once would each measure the other on this 2-core host.
 * SLOW_CONNECT_RATE=N: the load opens N connections a second (default: as fast as they
 * connect, in batches of 100); the whole schedule must fit in 100 s.
 * SLOW_NICE=N (default 10; 0 off): the nice value of the slow clients' process and of this
 * one (the /slow origin) from the load's start, so that on this 2-core host they do not take
 * the CPU the entry and the normal client need, as on a deployment where they are other
 * hosts. SLOW_LOAD_POLICY=idle: both under SCHED_IDLE as well (`chrt`; default nice: the
 * nice value alone), so that they run only on a core neither the entry nor the normal client
 * wants. SLOW_BUSY_RATE=N: the entry's busyConnectionRate (default: the product's, 100; 0:
 * no admission gate). SLOW_ACCEPTOR=inline: the entry accepts itself (default: an acceptor
 * process, as `relaymesh node` runs it; its RSS and CPU count as the entry's);
 * SLOW_ACCEPTOR_NICE=N: its nice value (default the product's, 5; 10 until session 22). SLOW_PIN=1: the entry and
 * its acceptor on CPU 0, everything else on CPU 1 (`taskset`), baseline included: the entry's
 * host with a core of its own. SLOW_PIN=stream: the same, but the normal client's process
 * (client and its origin) on CPU 0 with the entry: the stream's whole path on one core, the
 * abuse (the load, the /slow origin, a lane given SLOW_LANE_CPUS=1) on the other, so that
 * what the load costs the stream is what it costs the entry's core, not the bench's
 * processes competing for CPU 1 with the normal client (on a deployment the slow clients
 * and the origin are other hosts). SLOW_ENTRY_NODE_FLAGS="..." : node flags for the entry's
 * process (e.g. --trace-gc; its lines that are not JSON go to stderr, prefixed).
 * SLOW_ENTRY_BUILD=dist: the entry's relaymesh code, and that of the acceptor and lane it
 * forks, from the compiled dist/ (what `relaymesh node` runs; `pnpm build` first) instead
 * of the source under tsx (measured: the lane took the address as late either way,
 * docs/reliability.md "The old generation's floor").
 * SLOW_HEAP_FLOOR=0: the entry without the old generation's floor that docs/operations.md
 * has nodes started with (`--initial-old-space-size=128`, default: with it unless
 * SLOW_ENTRY_NODE_FLAGS gives one; docs/performance.md, "The old generation's floor").
 * SLOW_LOWAT=N: tcp_notsent_lowat of the entry's and the origin's namespaces (default 16384,
 * the operator setting docs/operations.md recommends; `off`: the kernel's, no limit).
 * SLOW_ENTRY_TCP_RMEM="MIN DEFAULT MAX": net.ipv4.tcp_rmem of the entry's namespace (default:
 * the kernel's), which caps what an origin sends ahead for a request the entry stopped
 * reading (docs/operations.md).
 * SLOW_MALLOC_TUNING=0: the bench's processes without glibc's trim threshold that
 * docs/operations.md has nodes started with (default: with it; docs/performance.md, "glibc
 * gives the socket buffers back").
 * SLOW_BODY_BYTES=N: the length of the /slow response (default 1 GiB; e.g. 8192, a control
 * whose answers fit the slow clients' socket buffers: nothing stalls, nothing is parked, and
 * the normal-rate line shows what admitting and answering the connections costs alone).
 * SLOW_LOAD_TARGET=sink: the control run. The slow clients connect to a listener in the
 * entry's namespace that holds their connections and answers nothing (slow-clients-sink.ts)
 * instead of to the entry, which serves only the normal client; the normal-rate line
 * (suffix "-control-sink", no memory lines) is what the load alone costs this host: the
 * load's connects, the kernel's handshakes and the accepts, against the same baseline.
 * SLOW_LOAD_TARGET=split: the isolation experiment. A second entry (same script and options,
 * the entry's namespace and CPU) serves the slow clients with every thread at nice
 * SLOW_SPLIT_NICE (default 10, 0-19), and the first serves only the normal client: the best
 * case of a node that serves the sources holding its stalled connections from a process of
 * their own at a lower priority. Lines get the suffix "-split"; the memory lines are the
 * second entry's, the timeline's entry columns (loop delay, GC, held, parked) the first's.
 * SLOW_LANE=1: the entry's slow lane (the product's, src/proxy/lane/; `relaymesh node`'s
 * default) serves the addresses holding SLOW_LANE_AFTER (default the product's, 64) parked
 * responses, or SLOW_LANE_AFTER_WAITING (default the product's, 256) connections waiting in
 * the acceptor, or that open SLOW_LANE_AFTER_CONNECTS (default the product's, 256) within a
 * second, at nice SLOW_LANE_NICE (default 10) and under SCHED_IDLE unless
 * SLOW_LANE_POLICY=nice, on the entry's CPU unless SLOW_LANE_CPUS=LIST (`--slow-lane-cpus`;
 * with SLOW_PIN=1, SLOW_LANE_CPUS=1 puts it with the load and the origins on CPU 1, off the
 * entry's core); its RSS and CPU count as the entry's,
 * and the timeline gets its main thread's run and wait, the connections handed to it and
 * open there. SLOW_LANE_START=listen: the lane's process starts with the entry
 * (`--slow-lane eager`), not at the first burst. SLOW_ENTRY_LOG=FILE: the entry's log.
 *
 * The normal client and its origin run in their own process (slow-clients-normal.ts). Each
 * normal-client line carries its window (seconds after the slow clients' process started),
 * the CPU each process used meanwhile (cores: entry, its main thread alone as entryMain (the
 * rest is V8's GC helper threads and libuv's pool), load, origin = this process, which
 * serves the slow requests, normal), the entry's event-loop delay, its main thread's garbage
 * collections (entryGc: minor, major, ms), and the park wave (when the origin's /slow
 * responses were cut short).
 *
 * Network (slow-clients-net.ts): as root with iproute2 the bench creates three network
 * namespaces joined by veth pairs (slow clients | entry | origin and normal client), the
 * entry's carrying only the operator setting docs/reliability.md recommends
 * (tcp_notsent_lowat=16384), the slow clients' a small receive buffer, and deletes them at
 * the end (also on SIGINT/SIGTERM). SLOW_NETNS=0, or no root, or no `ip`: everything on
 * 127.0.0.1 in this namespace, with the host's settings ("net":{"mode":"loopback"} in the
 * JSON lines, with the reason).
 *
 * The kernel line is the host's TCP socket memory (/proc/net/sockstat, one budget for all
 * namespaces) and the entry's two legs from `ss -tm` (its sockets to clients, its sockets
 * to the origin): the entry host's kernel share per slow client.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { emit, note } from './common.ts';
import { type EntryLegs, loopbackPlan, type NetPlan, setupNetns } from './slow-clients-net.ts';
import { type NormalMode, type NormalWindow, runSlowClients } from './slow-clients-run.ts';

/** docs/reliability.md: entry RSS growth ≤ 32 MiB + 320 KiB per slow client (local exit). */
const BOUND_FIXED_MIB = 32;
const BOUND_KIB_PER_CLIENT = 320;
/** The normal client keeps at least half its rate. */
const MIN_RATIO = 0.5;

/** A normal-client rate against its baseline: the fields every normal-rate line shares. */
function againstBaseline(mbps: number, baselineName: string, baselineMBps: number, ratio: number) {
  return {
    value: mbps,
    unit: 'MB/s',
    baseline: { name: baselineName, value: baselineMBps, unit: 'MB/s' },
    ratio,
    target: `>= ${MIN_RATIO} of the baseline`,
    pass: ratio >= MIN_RATIO,
  };
}

/**
 * Outside the namespaces: creates them, runs this script again in the origin namespace
 * and deletes them when it exits. Returns the plan to run with (loopback when no namespaces).
 */
async function network(): Promise<NetPlan> {
  if (process.env.SLOW_NET) return JSON.parse(process.env.SLOW_NET) as NetPlan;
  const { plan, cleanup } =
    process.env.SLOW_NETNS === '0'
      ? { plan: loopbackPlan('SLOW_NETNS=0'), cleanup: () => {} }
      : setupNetns(String(process.pid));
  if (plan.mode !== 'netns' || !plan.ns) return plan;
  let code = 1;
  try {
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        plan.ns.origin,
        process.execPath,
        ...process.execArgv,
        ...process.argv.slice(1),
      ],
      {
        stdio: 'inherit',
        env: {
          ...process.env,
          SLOW_NET: JSON.stringify(plan),
          // The namespace cannot read the host-wide tcp_mem.
          SLOW_TCP_MEM: readFileSync('/proc/sys/net/ipv4/tcp_mem', 'utf8').trim(),
        },
      },
    );
    // A signal stops the run inside first (its entry and load processes end with it),
    // then the namespaces go in `finally`.
    const forward = (signal: NodeJS.Signals) => () => child.kill(signal);
    process.once('SIGINT', forward('SIGINT'));
    process.once('SIGTERM', forward('SIGTERM'));
    code = await new Promise<number>((r) => child.once('exit', (c) => r(c ?? 1)));
  } finally {
    cleanup();
  }
  process.exit(code);
}

/** Validated before the namespaces are set up: a typo stops the run with a clear message. */
function options(): {
  normalMode: NormalMode;
  connectRate?: number;
  loadNice: number;
  loadPolicy: 'nice' | 'idle';
  loadTarget: 'entry' | 'sink' | 'split';
  splitNice: number;
  pin: boolean | 'stream';
} {
  const mode = process.env.SLOW_NORMAL_MODE ?? 'fresh';
  if (mode !== 'fresh' && mode !== 'established')
    throw new Error(`SLOW_NORMAL_MODE=${mode}: expected fresh or established`);
  const loadNice = Number(process.env.SLOW_NICE ?? 10);
  if (!Number.isInteger(loadNice) || loadNice < 0 || loadNice > 19)
    throw new Error(`SLOW_NICE=${process.env.SLOW_NICE}: expected an integer 0-19`);
  const loadPolicy = process.env.SLOW_LOAD_POLICY ?? 'nice';
  if (loadPolicy !== 'nice' && loadPolicy !== 'idle')
    throw new Error(`SLOW_LOAD_POLICY=${loadPolicy}: expected nice or idle`);
  const pinEnv = process.env.SLOW_PIN ?? '0';
  if (pinEnv !== '0' && pinEnv !== '1' && pinEnv !== 'stream')
    throw new Error(`SLOW_PIN=${pinEnv}: expected 0, 1 or stream`);
  const pin = pinEnv === 'stream' ? 'stream' : pinEnv === '1';
  if (pin !== false && availableParallelism() < 2)
    throw new Error(`SLOW_PIN=${pinEnv}: needs two CPUs`);
  const loadTarget = process.env.SLOW_LOAD_TARGET ?? 'entry';
  if (loadTarget !== 'entry' && loadTarget !== 'sink' && loadTarget !== 'split')
    throw new Error(`SLOW_LOAD_TARGET=${loadTarget}: expected entry, sink or split`);
  const splitNice = Number(process.env.SLOW_SPLIT_NICE ?? 10);
  if (!Number.isInteger(splitNice) || splitNice < 0 || splitNice > 19)
    throw new Error(`SLOW_SPLIT_NICE=${process.env.SLOW_SPLIT_NICE}: expected an integer 0-19`);
  const base = { normalMode: mode, loadNice, loadPolicy, loadTarget, splitNice, pin } as const;
  const rate = process.env.SLOW_CONNECT_RATE;
  if (rate === undefined || rate === '') return base;
  const n = Number(rate);
  const clients = Number(process.env.SLOW_CLIENTS ?? 10_000);
  if (!(n > 0) || clients / n > 100)
    throw new Error(
      `SLOW_CONNECT_RATE=${rate}: expected connections per second > 0 opening all ${clients} within 100 s`,
    );
  return { ...base, connectRate: n };
}
const opts = options();
/** The control run: the slow clients connect to a sink, not to the entry. */
const control = opts.loadTarget === 'sink';
const suffix = control ? '-control-sink' : opts.loadTarget === 'split' ? '-split' : '';
const net = await network();
const count = Number(process.env.SLOW_CLIENTS ?? 10_000);
const via = process.env.SLOW_VIA === 'tunnel' ? 'tunnel' : 'local';

const normalMiB = Number(process.env.SLOW_NORMAL_MIB ?? 32);
const sendTimeoutMs = Number(process.env.SLOW_SEND_TIMEOUT_MS ?? 0);
// The control run has no slow clients on the entry: nothing to measure after them.
const afterMs = control
  ? 0
  : Number(process.env.SLOW_AFTER_MS ?? (sendTimeoutMs > 0 ? sendTimeoutMs + 10_000 : 0));
const steadyAfterMs = control
  ? 0
  : Number(
      process.env.SLOW_STEADY_MS ?? (sendTimeoutMs === 0 || sendTimeoutMs > 30_000 ? 20_000 : 0),
    );
const r = await runSlowClients({
  steadyAfterMs,
  net,
  afterMs,
  count,
  via,
  normalBytes: normalMiB * 1024 * 1024,
  settleMs: 5000,
  loadDeadlineMs: 120_000,
  seriesMinMs: Number(process.env.SLOW_SERIES_MIN_S ?? 0) * 1000,
  ...opts,
  note,
  sendTimeoutMs,
  ...(process.env.SLOW_PARK_AFTER_MS
    ? { parkAfterMs: Number(process.env.SLOW_PARK_AFTER_MS) }
    : {}),
  ...(process.env.SLOW_MAX_HELD ? { maxHeldStalls: Number(process.env.SLOW_MAX_HELD) } : {}),
  ...(process.env.SLOW_TCP_MEM
    ? { tcpMem: process.env.SLOW_TCP_MEM.split(/\s+/).map(Number) }
    : {}),
});
/** KiB per slow client of one leg: receive + send queues + memory reserved ahead. */
const legKiB = (legs: EntryLegs | undefined, leg: 'client' | 'origin') =>
  legs
    ? (legs[leg].recvBytes + legs[leg].sendBytes + legs[leg].reservedBytes) / 1024 / count
    : Number.NaN;
const legDetail = (legs: EntryLegs | undefined) =>
  legs && {
    clientLegKiBPerClient: legKiB(legs, 'client'),
    originLegKiBPerClient: legKiB(legs, 'origin'),
    clientSockets: legs.client.sockets,
    originSockets: legs.origin.sockets,
    clientSendMiB: legs.client.sendBytes / 1048576,
    clientRecvMiB: legs.client.recvBytes / 1048576,
    originRecvMiB: legs.origin.recvBytes / 1048576,
    originSendMiB: legs.origin.sendBytes / 1048576,
  };
const netField = { mode: net.mode, ...(net.reason ? { reason: net.reason } : {}) };
/** How the load connected and how fast the entry accepted (in every line that has the load). */
const loadField = {
  connectRate: opts.connectRate ?? 'as fast as they connect',
  connectsPerS: Math.round(r.load.connectsPerS),
  connectMs: r.load.connectMs,
  // Nice value of the load's process and of the /slow origin's (this one): 0 = the entry's.
  nice: r.loadNice,
  policy: r.loadPolicy,
  // SLOW_PIN=1: the entry on CPU 0, the rest on CPU 1; stream: the normal client's process too.
  pinned: opts.pin,
  // SLOW_LANE_CPUS: where the entry's lane runs (default the entry's CPUs).
  laneCpus: process.env.SLOW_LANE_CPUS ?? 'the entry',
  target: r.loadTarget,
  ...(r.entryAccepts
    ? {
        entryAcceptsPerS: {
          mean: Math.round(r.entryAccepts.meanPerS),
          peak: Math.round(r.entryAccepts.peakPerS),
        },
        entryAllAcceptedS: Number(r.entryAccepts.allAcceptedS.toFixed(1)),
      }
    : {}),
};
/**
 * The transient series (connects and park wave): median and worst ratio over its windows,
 * the worst window in detail, and each window as [start s, ratio, parks around it, its
 * slowest response head in ms (from the download's start: the wait in the entry's accept
 * queue for a fresh connection, the entry's own delay on an established one)].
 */
function transientSummary(baselineMBps: number) {
  const ratios = r.transientSeries.map((w) => w.mbps / baselineMBps);
  const sorted = ratios.slice().sort((a, b) => a - b);
  const worstAt = ratios.indexOf(sorted[0] ?? 0);
  const worst = r.transientSeries[worstAt];
  return {
    timelineColumns: [
      's',
      'normal MB/s',
      'parks',
      'host TCP MiB',
      'entry cores',
      'origin cores',
      'load cores',
      'entry loop delay max ms',
      'entry held stalls',
      'entry parks',
      'entry accepts',
      'host busy cores',
      'host softirq cores',
      'entry admitted',
      'entry waiting',
      'entry admit rate (-1: open)',
      'entry main thread cores',
      'entry minor GCs',
      'entry major GCs',
      'entry GC ms (main thread)',
      'entry main thread run s/s',
      'entry main thread CPU wait s/s',
      'entry other threads run s/s',
      'entry other threads CPU wait s/s',
      'normal main thread run s/s',
      'normal main thread CPU wait s/s',
      'origin main thread run s/s',
      'origin main thread CPU wait s/s',
      'load main thread run s/s',
      'load main thread CPU wait s/s',
      'acceptor main thread run s/s',
      'acceptor main thread CPU wait s/s',
      'lane main thread run s/s',
      'lane main thread CPU wait s/s',
      'entry ArrayBuffer MiB',
      'lane handed',
      'lane clients',
      'entry new space MiB',
    ],
    timeline: r.timeline,
    windows: ratios.length,
    medianRatio: Number((sorted[Math.floor(sorted.length / 2)] ?? 0).toFixed(3)),
    worstRatio: Number((sorted[0] ?? 0).toFixed(3)),
    ...(worst ? { worst: { ...windowDetail(worst), parks: worst.parks } } : {}),
    seriesColumns: [
      's',
      'ratio',
      'parks',
      'slowest response head ms',
      'entry cores',
      'entry main thread cores',
      'normal cores',
      'host busy cores',
      'entry loop delay max ms',
      'entry GC ms (main thread)',
    ],
    series: r.transientSeries.map((w, i) => {
      const cores = (k: string) => Number((w.cpuCores[k] ?? 0).toFixed(2));
      return [
        Number(w.startS.toFixed(1)),
        Number((ratios[i] ?? 0).toFixed(2)),
        w.parks,
        Math.max(-1, ...w.phasesMs.map((p) => p[1] ?? -1)),
        cores('entry'),
        cores('entryMain'),
        cores('normal'),
        cores('host'),
        Number(w.entryEld.maxMs.toFixed(1)),
        w.entryGc[2],
      ];
    }),
  };
}

/** Where a measurement ran and what else used the CPU meanwhile (3 significant digits). */
const windowDetail = (w: NormalWindow) => ({
  windowS: [w.startS, w.endS].map((x) => Number(x.toFixed(1))),
  rates: w.rates.map((x) => Number(x.toPrecision(3))),
  phasesMs: w.phasesMs,
  cpuCores: Object.fromEntries(
    Object.entries(w.cpuCores).map(([k, v]) => [k, Number(v.toFixed(2))]),
  ),
  tcpMemMiB: w.tcpMemMiB.map((x) => Math.round(x)),
  entryEldMs: {
    max: Number(w.entryEld.maxMs.toFixed(1)),
    mean: Number(w.entryEld.meanMs.toFixed(1)),
  },
  // Minor and major collections, ms in them: the entry's reports covering the window.
  entryGc: w.entryGc,
  ...(w.windowsMBps ? { baselineWindowsMBps: w.windowsMBps } : {}),
});
const boundMiB = BOUND_FIXED_MIB + (count * BOUND_KIB_PER_CLIENT) / 1024;
const [pressureMiB, maxMiB] = r.kernelTcpMemLimitsMiB;
// Memory lines only when the slow clients were the entry's.
if (!control) {
  emit({
    bench: 'slow-clients-entry-rss',
    metric: `entry RSS growth with ${count} slow clients (1 B/s), via ${via}`,
    value: r.rssGrowthMiB,
    unit: 'MiB',
    baseline: {
      name: `bound ${BOUND_FIXED_MIB} MiB + ${BOUND_KIB_PER_CLIENT} KiB x clients`,
      value: boundMiB,
      unit: 'MiB',
    },
    ratio: r.rssGrowthMiB / boundMiB,
    target: '<= bound (ratio <= 1)',
    pass: r.rssGrowthMiB <= boundMiB,
    perClientKiB: r.perClientKiB,
    rssBeforeMiB: r.rssBeforeMiB,
    rssPeakMiB: r.rssPeakMiB,
    connected: r.connected,
    answered: r.answered,
    closedEarly: r.closedEarly,
    statuses: r.statuses,
    kernelAbortsOnMemory: r.kernelAbortsOnMemory,
    kernelMemoryPressures: r.kernelMemoryPressures,
    kernelListenOverflows: r.kernelListenOverflows,
    entryFdsPeak: r.entryFdsPeak,
    limits: r.limits,
    load: loadField,
    net: netField,
  });
  emit({
    bench: 'slow-clients-kernel-tcp-mem',
    metric: `host TCP memory peak with ${count} slow clients (1 B/s), via ${via}`,
    value: r.kernelTcpMemPeakMiB,
    unit: 'MiB',
    baseline: { name: 'net.ipv4.tcp_mem pressure threshold', value: pressureMiB, unit: 'MiB' },
    ratio: r.kernelTcpMemPeakMiB / pressureMiB,
    target: '< pressure threshold (ratio < 1)',
    pass: r.kernelTcpMemPeakMiB < pressureMiB,
    beforeMiB: r.kernelTcpMemBeforeMiB,
    perClientKiB: r.kernelPerClientKiB,
    tcpMemMaxMiB: maxMiB,
    entryTcpNotsentLowat: r.tcpNotsentLowat,
    entryKiBPerClient: legKiB(r.entryLegsAtPeak, 'client') + legKiB(r.entryLegsAtPeak, 'origin'),
    entryLegs: legDetail(r.entryLegsAtPeak),
    ...(r.namespacesAtPeakMiB ? { namespacesMiB: r.namespacesAtPeakMiB } : {}),
    kernelAbortsOnMemory: r.kernelAbortsOnMemory,
    kernelMemoryPressures: r.kernelMemoryPressures,
    net: netField,
  });
}
if (r.normalMode === 'fresh') {
  emit({
    bench: `slow-clients-normal-rate${suffix}`,
    metric: `normal client download rate (${normalMiB} MiB) with ${count} slow clients, via ${via}`,
    ...againstBaseline(
      r.normalUnderLoadMBps,
      'same download without slow clients (median of 3 windows)',
      r.normalBaselineMBps,
      r.normalRatio,
    ),
    ...(r.normalError === undefined ? {} : { error: r.normalError }),
    phase: 'transient: 5 s after the answers',
    ...windowDetail(r.transientWindow),
    transient: transientSummary(r.normalBaselineMBps),
    baselineWindow: windowDetail(r.baselineWindow),
    parkWave: r.parkWave,
    originStats: r.originStats,
    slowOpenDuring: r.openAtNormal,
    kernelTcpMemDuringMiB: r.kernelTcpMemAtNormalMiB,
    sendTimeoutMs,
    parkAfterMs: process.env.SLOW_PARK_AFTER_MS ?? 'default',
    kernelAbortsOnMemory: r.kernelAbortsOnMemory,
    kernelMemoryPressures: r.kernelMemoryPressures,
    load: loadField,
    net: netField,
  });
}
if (r.normalMode === 'established' && r.establishedBaselineWindow) {
  const base = r.establishedBaselineWindow;
  const t = transientSummary(base.mbps);
  const last = r.transientSeries[r.transientSeries.length - 1];
  emit({
    bench: `slow-clients-normal-rate-established${suffix}`,
    metric: `worst window of a normal client's downloads (${normalMiB} MiB, 5 per window) on one keep-alive connection opened before ${count} slow clients (1 B/s) connect, via ${via}`,
    ...againstBaseline(
      t.worstRatio * base.mbps,
      'same downloads on the same connection before the load (median of 3 windows)',
      base.mbps,
      t.worstRatio,
    ),
    medianRatio: t.medianRatio,
    windows: t.windows,
    ...(r.normalError === undefined ? {} : { error: r.normalError }),
    // The connection's state after the last window: closed (and why) if the entry ended it.
    connection: last?.connection ?? {},
    worst: t.worst,
    seriesColumns: t.seriesColumns,
    series: t.series,
    timelineColumns: t.timelineColumns,
    timeline: t.timeline,
    baselineWindow: windowDetail(base),
    freshBaselineMBps: r.normalBaselineMBps,
    parkWave: r.parkWave,
    originStats: r.originStats,
    sendTimeoutMs,
    parkAfterMs: process.env.SLOW_PARK_AFTER_MS ?? 'default',
    load: loadField,
    net: netField,
  });
}
/** One later measurement of the normal client (steady state, after the send timeout). */
function emitLater(
  bench: string,
  when: string,
  m: {
    msAfterAnswered: number;
    mbps: number;
    ratio: number;
    error?: string | undefined;
    window: Parameters<typeof windowDetail>[0];
    kernelTcpMemMiB: number;
    legs?: Parameters<typeof legDetail>[0];
  },
): void {
  emit({
    bench,
    metric: `normal client download rate (${normalMiB} MiB), ${Math.round(m.msAfterAnswered / 1000)} s after ${count} slow clients were answered (${when}), via ${via}`,
    ...againstBaseline(
      m.mbps,
      'same download without slow clients (median of 3 windows)',
      r.normalBaselineMBps,
      m.ratio,
    ),
    ...(m.error === undefined ? {} : { error: m.error }),
    ...windowDetail(m.window),
    kernelTcpMemMiB: m.kernelTcpMemMiB,
    entryLegs: legDetail(m.legs),
    sendTimeoutMs,
    parkAfterMs: process.env.SLOW_PARK_AFTER_MS ?? 'default',
    net: netField,
  });
}
if (r.steady) {
  emitLater('slow-clients-normal-rate-steady', 'all connected, stalls parked', {
    ...r.steady,
    window: r.steady,
  });
}
if (r.after) {
  emitLater('slow-clients-normal-rate-after', `send timeout ${sendTimeoutMs} ms`, {
    ...r.after,
    mbps: r.after.normalMBps,
  });
}
process.exit(0);
