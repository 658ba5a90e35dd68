import { type ChildProcess, fork } from 'node:child_process';
import type { Socket } from 'node:net';
import { setPriority } from 'node:os';
import { F, type Logger, RelayError, WireCode } from '@relaymesh/shared';
import { Session } from '../../mux/session.ts';
import { StreamTransport } from '../../mux/stream-transport.ts';
import { withMallocTuning } from '../../node/malloc-tuning.ts';
import type { OriginTable } from '../../routing/origin-catalog.ts';
import type { RouteTable } from '../../routing/route-table.ts';
import { childScript } from '../child-script.ts';
import { readPrefixed } from '../open-header.ts';
import { resetStream, splice } from '../splice.ts';
import type { HopStream, StreamOpener } from '../types.ts';
import {
  type FromLane,
  LANE_LINK_MUX,
  type LaneEntrySettings,
  type LaneExitSettings,
  MAX_PEER_ID_BYTES,
  type ToLane,
} from './lane-protocol.ts';
import { CPU_LIST } from './renice.ts';

export interface SlowLaneOptions {
  nodeId: string;
  /** The node's tables: the lane gets a copy now and after every change. */
  catalog: OriginTable;
  routes: RouteTable;
  /** The node's tunnels: the lane's streams to peers go out through them. */
  opener: StreamOpener;
  /** Every thread of the lane runs at this nice value (1-19). @default 10 */
  nice?: number;
  /**
   * 'idle': every thread of the lane also runs under Linux's SCHED_IDLE (`chrt`; the nice
   * value alone where that fails): it gets only what the node leaves of a core, and the
   * node's threads take the core back the moment they wake. 'nice': the nice value alone.
   * @default 'idle'
   */
  policy?: 'idle' | 'nice';
  /**
   * The CPUs the lane runs on, a Linux CPU list (`1`, `2-3`, `1,3`; `taskset`, before it
   * loads anything; where that fails it stays where the node runs, with a warning). On a
   * host with cores to spare, one the node's busy threads do not use: sharing the node's
   * core, 10,000 slow clients in the lane doubled the node's main-thread CPU per byte
   * streamed (0.60 against 0.30 ms per MB with no load), against 0.42 ms with the lane on
   * another core, with the node's core idle part of each window; where the node's core is
   * busy through its streams, the lane runs between them and moving it gained nothing
   * (docs/reliability.md, "The stream off the harness's core"). @default the node's own
   * (inherited)
   */
  cpus?: string;
  /** The lane's log level (its lines go to stderr, like the node's). @default 'info' */
  logLevel?: string;
  /** The lane's own exit dials origins through this proxy (the node's `--egress-proxy`). */
  egressProxy?: string | undefined;
  debugHeaders?: boolean;
  responseHeadTimeoutMs?: number | undefined;
  /** The entry's settings (limits, timeouts): the lane's entry takes the same. */
  entry?: LaneEntrySettings;
  /** The exit's settings (pool, balance, health checks): the lane's exit takes the same. */
  exit?: LaneExitSettings;
  /**
   * Most connections waiting here for the lane to take them (it acks them one by one, at
   * its low priority); more are closed unanswered, like those over the acceptor's own
   * limit. @default 4096
   */
  maxPending?: number;
  log: Logger;
}

/** Counters of the lane, as last reported (once a second). */
export interface SlowLaneStats {
  /** Whether a lane process is serving now. */
  up: boolean;
  pid: number | undefined;
  /**
   * Whether the lane's threads run under SCHED_IDLE (policy 'idle' where `chrt` could set
   * it; the lane's log says why not), as it said when ready. False while none serves.
   */
  idle: boolean;
  /** The CPUs the lane may run on (a CPU list), as it said when ready. */
  cpus: string | undefined;
  /** Connections handed to lanes so far (over restarts). */
  handed: number;
  /** Lane processes that died and were replaced. */
  restarts: number;
  /** Connections closed unhanded: `maxPending` waited here for the lane already. */
  refused: number;
  clients: number;
  parkedNow: number;
}

const RESTART_MS = 100;
const RESTART_MAX_MS = 5_000;
/** close(): the lane gets this long to drain before SIGKILL. */
const CLOSE_MS = 30_000;

/** A raw TCP handle (libuv's tcp_wrap), as received over IPC for `net.Native`. */
interface RawHandle {
  close(cb?: () => void): void;
}

interface PendingHandle {
  handle: RawHandle;
  fallback: (handle: RawHandle) => void;
}

/** Handles sent to the lane and not yet written to the channel (see #pump). */
const MAX_SENDING = 8;

/**
 * The entry's slow lane (lane-child.ts explains it): starts the process, keeps its copy of
 * the origins and routes current, hands it client connections as raw handles, relays its
 * streams to peers through the node's tunnels, and replaces it when it dies (connections
 * it held are lost, logged; new ones are served by the node until the replacement is up).
 */
export class SlowLane {
  readonly #o: SlowLaneOptions;
  readonly #log: Logger;
  readonly #nice: number;
  readonly #policy: 'idle' | 'nice';
  readonly #cpus: string | undefined;
  readonly #maxPending: number;
  #child: ChildProcess | undefined;
  #session: Session | undefined;
  #ready = false;
  #closed = false;
  #restartMs = RESTART_MS;
  #restartTimer: NodeJS.Timeout | undefined;
  readonly #unsubscribe: Array<() => void> = [];
  readonly #relayed = new Set<HopStream>();
  /** Handles waiting to be sent to the lane, and how many are on their way. */
  readonly #pending: PendingHandle[] = [];
  #inFlight = 0;
  /** The addresses the entry sent here: the lane reports their parked responses. */
  #watched: string[] = [];
  #sources = new Map<string, number>();
  #stats: SlowLaneStats = {
    up: false,
    pid: undefined,
    idle: false,
    cpus: undefined,
    handed: 0,
    restarts: 0,
    refused: 0,
    clients: 0,
    parkedNow: 0,
  };

  /** @throws RelayError ERR_CONFIG_INVALID for a nice value outside 1-19. */
  constructor(o: SlowLaneOptions) {
    const nice = o.nice ?? 10;
    if (!Number.isInteger(nice) || nice < 1 || nice > 19)
      throw new RelayError('ERR_CONFIG_INVALID', `slow lane nice: ${nice} is not 1-19`);
    this.#o = o;
    this.#nice = nice;
    const policy = o.policy ?? 'idle';
    if (policy !== 'idle' && policy !== 'nice')
      throw new RelayError('ERR_CONFIG_INVALID', `slow lane policy: ${policy} is not idle or nice`);
    this.#policy = policy;
    if (o.cpus !== undefined && !CPU_LIST.test(o.cpus))
      throw new RelayError(
        'ERR_CONFIG_INVALID',
        `slow lane CPUs: ${JSON.stringify(o.cpus)} is not a CPU list (e.g. 1, 2-3, 1,3)`,
      );
    this.#cpus = o.cpus;
    this.#maxPending = o.maxPending ?? 4096;
    this.#log = o.log;
  }

  get stats(): SlowLaneStats {
    return {
      ...this.#stats,
      up: this.#ready,
      idle: this.#ready && this.#stats.idle,
      cpus: this.#ready ? this.#stats.cpus : undefined,
      pid: this.#child?.pid,
    };
  }

  /**
   * The addresses the entry has sent to the lane now: its reports give their parked
   * responses (and only theirs: a report stays as small as that list).
   */
  watch(sources: string[]): void {
    this.#watched = sources;
    this.#send({ t: 'watch', sources });
  }

  /** Parked responses in the lane now from a watched `source` (as of its last report). */
  parkedFrom(source: string): number {
    return this.#sources.get(source) ?? 0;
  }

  /** Whether start() was called (and did not fail), until close(). */
  get started(): boolean {
    return this.#unsubscribe.length > 0;
  }

  /**
   * Starts the lane; resolves once it serves. Rejects if it cannot start (then start() may
   * be called again).
   */
  start(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error('slow lane closed'));
    if (this.#unsubscribe.length === 0)
      this.#unsubscribe.push(
        this.#o.catalog.onChange(() =>
          this.#send({ t: 'origins', origins: this.#o.catalog.origins }),
        ),
        this.#o.routes.onChange(() =>
          this.#send({ t: 'routes', routes: this.#o.routes.snapshot() }),
        ),
      );
    return this.#spawn().catch((err: unknown) => {
      for (const u of this.#unsubscribe.splice(0)) u();
      throw err;
    });
  }

  /**
   * Hands a client connection (a raw handle, unread) to the lane, and closes this process's
   * copy once sent. False when no lane serves now: the caller keeps it. If it cannot be
   * sent after all (the lane died in between), `fallback` gets the handle.
   */
  hand(handle: RawHandle, fallback: (handle: RawHandle) => void): boolean {
    if (!this.#ready || !this.#child?.connected || this.#closed) return false;
    if (this.#pending.length >= this.#maxPending) {
      // The lane acks slower than they come: more would only hold descriptors here.
      handle.close();
      this.#stats.refused++;
      return true;
    }
    this.#stats.handed++;
    this.#pending.push({ handle, fallback });
    this.#pump();
    return true;
  }

  /**
   * A few handles in flight at a time: Node queues a message sent while a handle waits for
   * its ack, and on each ack re-queues all the others (quadratic in their number), and a
   * lane at a low priority acks slowly.
   */
  #pump(): void {
    while (this.#inFlight < MAX_SENDING && this.#pending.length > 0) {
      const { handle, fallback } = this.#pending.shift() as PendingHandle;
      const child = this.#child;
      if (!this.#ready || !child?.connected) {
        this.#stats.handed--;
        fallback(handle);
        continue;
      }
      this.#inFlight++;
      child.send({ t: 'socket' } satisfies ToLane, handle as unknown as Socket, (err) => {
        this.#inFlight--;
        if (!err) handle.close();
        else {
          this.#stats.handed--;
          this.#log.debug({ err }, 'slow lane: connection not handed over: served here');
          fallback(handle);
        }
        this.#pump();
      });
    }
  }

  /** Drain: the lane answers what is in flight with `Connection: close`, then exits. */
  close(): Promise<void> {
    this.#closed = true;
    this.#stop();
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.#session?.destroy();
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), CLOSE_MS);
      child.once('exit', () => {
        clearTimeout(kill);
        this.#session?.destroy();
        resolve();
      });
      if (child.connected) child.send({ t: 'drain' } satisfies ToLane);
      else child.kill('SIGKILL');
    });
  }

  /** Kills the lane at once (its client connections close). */
  destroy(): void {
    this.#closed = true;
    this.#stop();
    this.#child?.kill('SIGKILL');
    this.#session?.destroy();
    for (const s of this.#relayed) s.destroy();
  }

  #stop(): void {
    clearTimeout(this.#restartTimer);
    // Closing: connections not handed over yet are closed (their clients may retry).
    for (const p of this.#pending.splice(0)) p.handle.close();
    for (const u of this.#unsubscribe.splice(0)) u();
  }

  #send(m: ToLane): void {
    const child = this.#child;
    if (this.#ready && child?.connected) child.send(m);
  }

  #spawn(): Promise<void> {
    const { path, execArgv } = childScript('lane-main', import.meta.url);
    const child = fork(path, [], {
      execArgv,
      env: {
        ...withMallocTuning(),
        RELAYMESH_LANE_NICE: String(this.#nice),
        RELAYMESH_LANE_POLICY: this.#policy,
        ...(this.#cpus === undefined ? {} : { RELAYMESH_LANE_CPUS: this.#cpus }),
      },
      serialization: 'json',
      // fd 3: the link (a socketpair) for the lane's streams to peers.
      stdio: ['ignore', 'ignore', 'inherit', 'pipe', 'ipc'],
    });
    // The lowered priority from the start: lane-main.ts renices every thread first thing,
    // but Node's own start (and tsx's, under source) comes before it, and a lane started
    // during a burst would take that CPU from the node at its priority.
    if (child.pid !== undefined) {
      try {
        setPriority(child.pid, this.#nice);
      } catch {
        // gone already, or not allowed here: lane-main.ts tries again and says so
      }
    }
    this.#child = child;
    this.#ready = false;
    const link = child.stdio[3] as Socket;
    const session = new Session({
      transport: new StreamTransport(link),
      role: 'server',
      logger: this.#log,
      config: LANE_LINK_MUX,
    });
    this.#session = session;
    session.on('error', (err: Error) => this.#log.debug({ err }, 'slow lane: link failed'));
    session.on('stream', (s: HopStream) => this.#relay(s));
    const o = this.#o;
    return new Promise((resolve, reject) => {
      child.on('message', (m: FromLane) => {
        switch (m.t) {
          case 'ready':
            this.#ready = true;
            this.#stats.idle = m.idle;
            this.#stats.cpus = m.cpus;
            this.#restartMs = RESTART_MS;
            if (this.#watched.length > 0) this.#send({ t: 'watch', sources: this.#watched });
            resolve();
            break;
          case 'stats':
            this.#stats.clients = m.clients;
            this.#stats.parkedNow = m.parkedNow;
            this.#sources = new Map(m.sources.map((s) => [s.source, s.parked]));
            break;
          case 'peerDown':
            o.routes.markPeerDown(m.peer);
            break;
        }
      });
      child.on('error', (err) => {
        if (!this.#ready) reject(err);
        else this.#log.error({ err }, 'slow lane process failed');
      });
      child.once('exit', (code, signal) => {
        session.destroy();
        if (this.#child !== child) return;
        const wasReady = this.#ready;
        this.#ready = false;
        // Not sent yet: served by the node after all.
        this.#pump();
        this.#sources = new Map();
        this.#stats.clients = 0;
        this.#stats.parkedNow = 0;
        // Never served: start() (or the restart below) rejects and decides what next.
        if (!wasReady) {
          reject(new Error(`slow lane exited before serving (code ${code}, signal ${signal})`));
          return;
        }
        if (this.#closed) return;
        this.#stats.restarts++;
        this.#log.error(
          { code, signal, restartInMs: this.#restartMs },
          'slow lane process died: its client connections are lost; the entry serves new ones until it is replaced',
        );
        this.#restart();
      });
      child.send({
        t: 'start',
        nodeId: o.nodeId,
        logLevel: o.logLevel ?? 'info',
        egressProxy: o.egressProxy,
        debugHeaders: o.debugHeaders ?? false,
        responseHeadTimeoutMs: o.responseHeadTimeoutMs,
        entry: o.entry ?? {},
        exit: o.exit ?? {},
        origins: o.catalog.origins,
        routes: o.routes.snapshot(),
      } satisfies ToLane);
    });
  }

  #restart(): void {
    this.#restartTimer = setTimeout(() => {
      if (this.#closed) return;
      this.#spawn().then(
        () => this.#log.info({ pid: this.#child?.pid }, 'slow lane process replaced'),
        (err) => {
          this.#log.error({ err, retryInMs: this.#restartMs }, 'slow lane restart failed');
          this.#restart();
        },
      );
      this.#restartMs = Math.min(RESTART_MAX_MS, this.#restartMs * 2);
    }, this.#restartMs);
  }

  /**
   * A stream the lane opened: its preamble names the first hop; the stream is opened there
   * on the node's tunnel and the two are spliced (FIN follows FIN, RST follows RST). No
   * tunnel: the lane's stream is reset with NO_ROUTE, as a relay would answer.
   */
  #relay(lane: HopStream): void {
    this.#relayed.add(lane);
    lane.once('close', () => this.#relayed.delete(lane));
    lane.on('error', () => {});
    readPrefixed(lane, MAX_PEER_ID_BYTES, 10_000).then(
      (id) => {
        const peer = id.toString('utf8');
        let out: HopStream;
        try {
          out = this.#o.opener.open(peer);
        } catch (err) {
          this.#log.debug({ err, [F.PEER_NODE_ID]: peer }, 'slow lane: no stream to the first hop');
          resetStream(lane, WireCode.NO_ROUTE);
          return;
        }
        if (lane.destroyed) {
          resetStream(out, WireCode.CANCEL);
          return;
        }
        void splice(lane, out);
      },
      (err) => {
        // Reset by the lane before its preamble came (its client went): nothing to say.
        if (lane.destroyed) return;
        this.#log.warn({ err }, 'slow lane: stream without a valid preamble');
        resetStream(lane, WireCode.BAD_OPEN_HEADER);
      },
    );
  }
}
