/** Messages between the entry and its slow lane process (slow-lane.ts, lane-child.ts). */
import type { RouteTableSnapshot } from '../../routing/route-table.ts';
import type { ExitHandlerOptions } from '../exit/exit-handler.ts';
import type { EntryServerOptions } from '../http/entry-server.ts';
import type { Origin } from '../types.ts';

/** The entry settings the lane takes over from the node's entry (all plain data). */
export type LaneEntrySettings = Omit<
  EntryServerOptions,
  'nodeId' | 'catalog' | 'connector' | 'logger' | 'acceptor' | 'acceptorNice' | 'slowLane'
>;

/** The exit settings of the lane's own exit (local-exit routes), plain data. */
export type LaneExitSettings = Omit<ExitHandlerOptions, 'catalog' | 'dialer' | 'logger' | 'clock'>;

export type ToLane =
  /** Everything the lane needs to serve: sent once, first. */
  | {
      t: 'start';
      nodeId: string;
      logLevel: string;
      egressProxy?: string | undefined;
      debugHeaders: boolean;
      responseHeadTimeoutMs?: number | undefined;
      entry: LaneEntrySettings;
      exit: LaneExitSettings;
      origins: Origin[];
      routes: RouteTableSnapshot;
    }
  /** The node's origins changed. */
  | { t: 'origins'; origins: Origin[] }
  /** The node's route table changed (new routes, a tunnel down or up). */
  | { t: 'routes'; routes: RouteTableSnapshot }
  /** The addresses the entry has sent here now: report their parked responses. */
  | { t: 'watch'; sources: string[] }
  /** A client connection (the raw TCP handle comes with the message), still unread. */
  | { t: 'socket' }
  /** Drain: answer what is in flight with `Connection: close`, then exit. */
  | { t: 'drain' };

export type FromLane =
  /**
   * Serving: connections can come. `idle`: every thread runs under SCHED_IDLE. `cpus`: the
   * CPUs it may run on (a CPU list; absent where /proc does not say).
   */
  | { t: 'ready'; idle: boolean; cpus?: string }
  /**
   * Once a second: client connections open in the lane, its parked responses now, and those
   * of each watched address.
   */
  | {
      t: 'stats';
      clients: number;
      parkedNow: number;
      sources: Array<{ source: string; parked: number }>;
    }
  /** The lane could not open a stream to this first hop: the node's table hears it too. */
  | { t: 'peerDown'; peer: string };

/**
 * Mux settings of the link between the node and its lane (one socketpair on the same host):
 * its end is seen at once (the socketpair closes), so no keepalive is needed, and a lane
 * starved of CPU by its low priority for seconds must not be declared dead. It carries the
 * lane's streams to every peer, so its stream cap is the sum of theirs.
 */
export const LANE_LINK_MUX = {
  keepAliveIntervalMs: 60_000,
  deadTimeoutMs: 3_600_000,
  maxConcurrentStreams: 65_536,
} as const;

/** Longest first-hop name a lane stream may carry in its preamble. */
export const MAX_PEER_ID_BYTES = 256;
