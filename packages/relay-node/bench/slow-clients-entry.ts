/**
 * The entry process of slow-clients.bench.ts and test/resilience/slow-clients.test.ts: one
 * HTTP entry (DataPlane `en`) whose RSS is measured. Two declared origins on the same
 * upstream, `slow` (host slow.local) for the slow clients and `fast` (host fast.local) for
 * the measured client, so the slow downloads do not take the fast one's upstream pool.
 *
 * One JSON argument: {"originPort":P,"fastOriginPort":F,"originHost":H,"listenHost":L,"via":"local"|"tunnel",
 * "poolConnections":N,"maxConnections":M,"sendTimeoutMs":T,"parkAfterMs":P,"maxHeldStalls":H,
 * "acceptor":"process"|"inline"} (hosts default to 127.0.0.1; parkAfterMs and maxHeldStalls to
 * the product defaults; acceptor to `relaymesh node`'s, process, unless SLOW_ACCEPTOR=inline).
 *  - via "local": the entry is also the exit (path [en], in-process stream pair);
 *  - via "tunnel": the exit `ex` lives in this process too, joined to `en` by a relaymux
 *    session over a loopback TCP connection (path [en, ex]): the entry then holds mux
 *    stream windows.
 * `poolConnections` (default 16384) lets every slow request reach the origin at once (the
 * worst case for buffering; the product default is 128 per upstream, the rest queue); the
 * bench sizes it and `maxConnections` (default 18000) to the descriptor limit.
 * `sendTimeoutMs` (default 0: off, so the slow clients stay connected however long the run
 * takes) is the entry's send timeout (product default 60000).
 * `fastOriginPort` (default `originPort`): the `fast` origin's port on the same host (the
 * normal client's own origin, slow-clients-normal.ts).
 * Prints {"ready":true,"port":P,"pid":PID,"acceptorPid":A} (A with an acceptor process), then once a second its event-loop delay over
 * that second and its stalled responses, {"eld":{"t":EPOCH_MS,"maxMs":M,"meanMs":A,
 * "gc":[MINOR,MAJOR,MS],"arrayBuffersMiB":B,"newSpaceMiB":Y,"held":H,"parked":P,"parkedEarly":E,"parkedNow":PN,"parkedSources":PS,"accepted":N,"admitted":A,"waiting":W,"admitRate":R,
 * "maxWaitMs":M}} (held now; parked so far; parked now, and the client addresses holding them; accepted: client connections the entry's
 * listener has taken out of the kernel's accept queue so far, counted on the
 * `net.server.socket` diagnostics channel, no product hook; gc: garbage collections on the
 * main thread over that second, minor and major, and the ms spent in them; admitted, waiting, admitRate (-1:
 * open) and maxWaitMs: its admission gate, EntryServer.admission, absent when the gate is off:
 * SLOW_BUSY_RATE=0); exits when stdin closes or on SIGTERM. SLOW_ENTRY_TRACE=FILE: see
 * trace() below. SLOW_ENTRY_LOG=FILE: the entry's log (info, JSON lines) goes there, not
 * nowhere: when the gate throttled, the lane started and took the load's address.
 */

import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import {
  constants,
  monitorEventLoopDelay,
  PerformanceObserver,
  performance,
} from 'node:perf_hooks';
import { getHeapSpaceStatistics } from 'node:v8';
import {
  DataPlane,
  type HopStream,
  OriginTable,
  RouteTable,
  Session,
  StreamTransport,
  tuneGcForStreaming,
  // By name: the source under the runner's `@relaymesh/source` condition, the compiled
  // dist/ without it (SLOW_ENTRY_BUILD=dist), and the children it forks (acceptor, lane) alike.
} from '@relaymesh/relay-node';
import { createRootLogger, DirectDialer } from '@relaymesh/shared';
import pino from 'pino';

interface EntryArgs {
  originPort: number;
  fastOriginPort?: number;
  originHost?: string;
  listenHost?: string;
  maxConnections?: number;
  via?: 'local' | 'tunnel';
  poolConnections?: number;
  sendTimeoutMs?: number;
  /** The entry's park delay (undefined: the product default). */
  parkAfterMs?: number;
  /** The entry's budget of stalled responses held for the whole park delay (undefined: the product default). */
  maxHeldStalls?: number;
  /** The entry's acceptor (undefined: SLOW_ACCEPTOR=inline, else `relaymesh node`'s, process). */
  acceptor?: 'process' | 'inline';
}

const args = JSON.parse(process.argv[2] ?? '{}') as EntryArgs;
const via = args.via ?? 'local';

async function socketPair(): Promise<[net.Socket, net.Socket]> {
  const server = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect((server.address() as AddressInfo).port, '127.0.0.1');
  await new Promise((r) => client.once('connect', r));
  const s = await accepted;
  server.close();
  return [client, s];
}

function plane(id: string, catalog: OriginTable, sessions: Map<string, Session>): DataPlane {
  const routes = new RouteTable({ nodeId: id });
  const path = via === 'local' ? ['en'] : ['en', 'ex'];
  routes.update([
    { from: 'en', origin: 'slow', path, rttMs: 1, alternates: [] },
    { from: 'en', origin: 'fast', path, rttMs: 1, alternates: [] },
  ]);
  return new DataPlane({
    nodeId: id,
    catalog,
    routes,
    opener: {
      open(peer) {
        const s = sessions.get(peer);
        if (!s) throw new Error(`no session to ${peer}`);
        return s.open() as HopStream;
      },
    },
    dialer: new DirectDialer(),
    ...(process.env.SLOW_ENTRY_LOG
      ? {
          logger: createRootLogger({
            name: id,
            level: 'info',
            // Synchronous: a few lines a second, none lost when the process exits.
            destination: pino.destination({ dest: process.env.SLOW_ENTRY_LOG, sync: true }),
          }),
        }
      : {}),
    httpListen: { host: args.listenHost ?? '127.0.0.1', port: 0 },
    // The descriptor limit (20,000 per process) is the real cap here, not the default 4096.
    entry: {
      maxConnections: args.maxConnections ?? 18_000,
      sendTimeoutMs: args.sendTimeoutMs ?? 0,
      ...(args.parkAfterMs === undefined ? {} : { parkAfterMs: args.parkAfterMs }),
      ...(args.maxHeldStalls === undefined ? {} : { maxHeldStalls: args.maxHeldStalls }),
      ...(process.env.SLOW_BACKLOG ? { listenBacklog: Number(process.env.SLOW_BACKLOG) } : {}),
      // `relaymesh node`'s default: an acceptor process.
      acceptor: args.acceptor ?? (process.env.SLOW_ACCEPTOR === 'inline' ? 'inline' : 'process'),
      ...(process.env.SLOW_ACCEPTOR_NICE
        ? { acceptorNice: Number(process.env.SLOW_ACCEPTOR_NICE) }
        : {}),
      ...(process.env.SLOW_BUSY_RATE
        ? { busyConnectionRate: Number(process.env.SLOW_BUSY_RATE) }
        : {}),
      ...(process.env.SLOW_LANE_AFTER
        ? { slowLaneAfterParked: Number(process.env.SLOW_LANE_AFTER) }
        : {}),
      ...(process.env.SLOW_LANE_AFTER_WAITING
        ? { slowLaneAfterWaiting: Number(process.env.SLOW_LANE_AFTER_WAITING) }
        : {}),
      ...(process.env.SLOW_LANE_AFTER_CONNECTS
        ? { slowLaneAfterConnects: Number(process.env.SLOW_LANE_AFTER_CONNECTS) }
        : {}),
      // SLOW_LANE_START=listen: the lane starts with the entry (`relaymesh node --slow-lane
      // eager`); default the product's, at the first burst.
      ...(process.env.SLOW_LANE_START
        ? { slowLaneStart: process.env.SLOW_LANE_START as 'listen' | 'burst' }
        : {}),
    },
    exit: { pool: { connections: args.poolConnections ?? 16_384 }, healthChecks: false },
    // SLOW_LANE=1: the entry's slow lane (the entry's only: `ex` has no HTTP entry).
    ...(process.env.SLOW_LANE === '1' && id === 'en'
      ? {
          slowLane: {
            nice: Number(process.env.SLOW_LANE_NICE ?? 10),
            ...(process.env.SLOW_LANE_POLICY
              ? { policy: process.env.SLOW_LANE_POLICY as 'idle' | 'nice' }
              : {}),
            // SLOW_LANE_CPUS=LIST: the lane's CPUs (`--slow-lane-cpus`); default the entry's.
            ...(process.env.SLOW_LANE_CPUS ? { cpus: process.env.SLOW_LANE_CPUS } : {}),
          },
        }
      : {}),
  });
}

async function main(): Promise<void> {
  // As `relaymesh node` does (gc-tuning.ts); SLOW_GC_TUNING=0: V8's defaults.
  if (process.env.SLOW_GC_TUNING !== '0') tuneGcForStreaming();
  const originHost = args.originHost ?? '127.0.0.1';
  const upstream = `http://${originHost}:${args.originPort}`;
  const fast = `http://${originHost}:${args.fastOriginPort ?? args.originPort}`;
  const catalog = new OriginTable([
    { name: 'slow', hosts: ['slow.local'], upstreams: [upstream] },
    { name: 'fast', hosts: ['fast.local'], upstreams: [fast] },
  ]);
  const sessions = new Map<string, Session>();
  const en = plane('en', catalog, sessions);
  const planes = [en];
  if (via === 'tunnel') {
    const ex = plane('ex', catalog, new Map());
    planes.push(ex);
    const [a, b] = await socketPair();
    const sa = new Session({ transport: new StreamTransport(a), role: 'client' });
    const sb = new Session({ transport: new StreamTransport(b), role: 'server' });
    sa.on('error', () => {});
    sb.on('error', () => {});
    sb.on('stream', (s) => ex.handleStream(s as HopStream));
    sessions.set('ex', sa);
  }
  const { http } = await en.start();
  const httpPort = (http as AddressInfo).port;
  // Node publishes each socket a net.Server accepts; only the entry's listener counts.
  let accepted = 0;
  // Whether a listener is the entry's, asked once per listener: `socket.localPort` on every
  // accepted socket is a getsockname() call, 2-8 us more per accept on the entry's loop
  // (Node's own accept costs ~25 us) all through a 10,000-connection burst.
  const isEntry = new WeakMap<object, boolean>();
  subscribe('net.server.socket', (m) => {
    const server = (m as { socket: net.Socket & { server?: net.Server } }).socket.server;
    if (!server) return;
    let mine = isEntry.get(server);
    if (mine === undefined) {
      mine = (server.address() as AddressInfo | null)?.port === httpPort;
      isEntry.set(server, mine);
    }
    if (mine) accepted++;
  });
  // With an acceptor process the accepts happen there: its count comes with the gate's.
  const acceptedNow = () => Math.max(accepted, en.entry?.admission?.accepted ?? 0);
  const acceptorPid = en.entry?.acceptorPid;
  const lanePid = en.entry?.slowLane?.pid;
  process.stdout.write(
    `${JSON.stringify({ ready: true, port: httpPort, pid: process.pid, acceptorPid, lanePid })}\n`,
  );
  if (process.env.SLOW_ENTRY_TRACE)
    trace(process.env.SLOW_ENTRY_TRACE, acceptedNow, () => en.entry?.admission);
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  // Garbage collections on the main thread since the last line: [minor, major, ms in them].
  const gc = { minor: 0, major: 0, ms: 0 };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as { detail?: { kind?: number } }).detail?.kind ?? 0;
      // perf_hooks.constants: NODE_PERFORMANCE_GC_MINOR 1, NODE_PERFORMANCE_GC_MAJOR 4
      // (a mark-compact; until session 14 this counted kind 2, which node never reports).
      if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gc.minor++;
      else if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gc.major++;
      gc.ms += e.duration;
    }
  }).observe({ entryTypes: ['gc'] });
  const eldTick = setInterval(() => {
    // The entry's stalled responses held now, and parked so far (early: over the budget).
    const stalls = en.entry?.stalls;
    const gate = en.entry?.admission;
    const lane = en.entry?.slowLane;
    const line = {
      t: Date.now(),
      maxMs: eld.max / 1e6,
      meanMs: eld.mean / 1e6,
      gc: [gc.minor, gc.major, Math.round(gc.ms)],
      // Buffers' memory outside V8's heap, MiB: its growth is what starts V8's marking
      // through the admissions (docs/reliability.md, sessions 12 and 14).
      arrayBuffersMiB: Math.round(process.memoryUsage().arrayBuffers / 1048576),
      // The young generation's size now (V8 grows it up to 16 MiB a semi-space), MiB: how
      // often scavenges free the stream's buffers (docs/reliability.md, "The slow lane").
      newSpaceMiB: newSpaceMiB(),
      ...stalls,
      accepted: acceptedNow(),
      // The admission gate: let in so far, waiting now, its rate in force (-1: open).
      ...(gate
        ? {
            admitted: gate.admitted,
            waiting: gate.queued,
            admitRate: Number.isFinite(gate.rate) ? Math.round(gate.rate) : -1,
            maxWaitMs: Math.round(gate.maxWaitMs),
          }
        : {}),
      // SLOW_LANE=1: connections handed to the lane so far, open there, parked there now,
      // and the addresses sent there.
      ...(lane
        ? {
            lane: {
              // It starts when an address first needs it: the bench learns its pid here.
              pid: lane.pid ?? -1,
              idle: lane.idle,
              handed: lane.handed,
              clients: lane.clients,
              parkedNow: lane.parkedNow,
              sources: lane.sources.length,
              up: lane.up,
            },
          }
        : {}),
    };
    eld.reset();
    Object.assign(gc, { minor: 0, major: 0, ms: 0 });
    process.stdout.write(`${JSON.stringify({ eld: line })}\n`);
  }, 1000);
  const stop = () => {
    clearInterval(eldTick);
    for (const p of planes) void p.destroy();
    process.exit(0);
  };
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.resume();
  process.on('SIGTERM', stop);
}

/** The size of V8's new space now, MiB (both semi-spaces' capacity as V8 reports it). */
function newSpaceMiB(): number {
  const s = getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
  return s ? Math.round((s.space_size / 1048576) * 10) / 10 : -1;
}

/** Trace rows every {@link TRACE_STEP_MS} for {@link TRACE_MS} from the load's start. */
const TRACE_STEP_MS = 20;
const TRACE_MS = 4000;
/** The load has started once the entry has accepted this many (the normal client: a few). */
const TRACE_FROM_ACCEPTS = 50;

/**
 * SLOW_ENTRY_TRACE=FILE: the burst's first seconds in detail, written to FILE as JSON
 * {"columns":[...],"rows":[[ms, accepted, admitted, waiting, rate, loop utilisation]],
 * "gc":[[ms, duration ms, kind]]} (ms from the load's start; rate -1: open; gc kinds are
 * perf_hooks' NODE_PERFORMANCE_GC_*: 1 minor, 2 major, 4 incremental, 8 weak callbacks).
 */
function trace(
  file: string,
  accepted: () => number,
  gate: () => { admitted: number; queued: number; rate: number } | undefined,
): void {
  const rows: number[][] = [];
  const gcs: Array<[number, number, number]> = [];
  const gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries())
      gcs.push([e.startTime, e.duration, (e as { detail?: { kind?: number } }).detail?.kind ?? 0]);
  });
  gcObserver.observe({ entryTypes: ['gc'] });
  let started = 0;
  let elu = performance.eventLoopUtilization();
  const timer = setInterval(() => {
    const now = performance.now();
    if (accepted() < TRACE_FROM_ACCEPTS) {
      // Before the load: keep only the last second of GC events.
      while ((gcs[0]?.[0] ?? now) < now - 1000) gcs.shift();
      return;
    }
    if (!started) started = now;
    const u = performance.eventLoopUtilization(elu).utilization;
    elu = performance.eventLoopUtilization();
    const g = gate();
    rows.push([
      Math.round(now - started),
      accepted(),
      g?.admitted ?? -1,
      g?.queued ?? -1,
      g ? (Number.isFinite(g.rate) ? Math.round(g.rate) : -1) : -1,
      Number(u.toFixed(2)),
    ]);
    if (now - started < TRACE_MS) return;
    clearInterval(timer);
    gcObserver.disconnect();
    const gc = gcs.map(([at, ms, kind]) => [Math.round(at - started), Number(ms.toFixed(1)), kind]);
    const columns = ['ms', 'accepted', 'admitted', 'waiting', 'rate', 'loop utilisation'];
    writeFileSync(file, JSON.stringify({ columns, rows, gc }));
  }, TRACE_STEP_MS);
}

void main();
