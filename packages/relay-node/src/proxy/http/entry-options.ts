import type { Logger } from '@relaymesh/shared';
import type { EntryConnector } from '../entry-connector.ts';
import type { SlowLane } from '../lane/slow-lane.ts';
import type { OriginCatalog } from '../types.ts';

/** What an entry (`EntryServer`, entry-server.ts) is built with. */
export interface EntryServerOptions {
  nodeId: string;
  catalog: OriginCatalog;
  connector: EntryConnector;
  logger?: Logger;
  /** Add `x-relaymesh-path` to responses. @default false */
  debugHeaders?: boolean;
  /** Largest request head. @default 16384 */
  maxHeaderSize?: number;
  /** Time to receive a request head. @default 20000 */
  headersTimeoutMs?: number;
  /** Time to receive a whole request (head and body). @default 300000 */
  requestTimeoutMs?: number;
  /** Idle keep-alive client connections close after this. @default 5000 */
  keepAliveTimeoutMs?: number;
  /** Most client connections at once. @default 4096 */
  maxConnections?: number;
  /**
   * Accept queue length passed to listen(2) (the kernel caps it at `net.core.somaxconn`).
   * Node's default, 511, drops connections (ListenOverflows) when thousands of clients
   * connect at once while the event loop is busy. @default 4096
   */
  listenBacklog?: number;
  /**
   * New client connections let in per second while the event loop is saturated
   * (utilisation ≥ 0.9 over 100 ms), the floor of an adaptive rate (src/proxy/http/admission.ts):
   * 10,000 clients connecting at once would otherwise take the loop from the connections
   * already open (docs/reliability.md "Slow clients"). Connections over the rate wait
   * accepted and unread, let in round-robin by source address. 0 turns the gate off.
   * Throws ERR_CONFIG_INVALID unless an integer >= 0. @default 100
   */
  busyConnectionRate?: number;
  /**
   * Who accepts client connections. `process`: a small acceptor process of its own
   * (src/proxy/http/acceptor-child.ts) owns the listener, keeps the connections the gate
   * holds back, and hands the others over; a connect burst then costs that process, not the
   * event loop the streams share (Node accepts on the loop's thread, ~25 us each, and cannot
   * pause accepting). Receiving a connection costs the entry more than accepting it (~65 us
   * against ~25 us), and the acceptor's work comes on top: bench entry-accept, per new
   * connection, the entry's CPU 1.18 x inline, connections a second 0.79 x, p50 1.16
   * against 0.93 ms (docs/performance.md). `inline`: the entry's own process accepts.
   * `lane`: the entry of a slow lane process (src/proxy/lane/lane-child.ts): nothing
   * listens, connections come through `EntryServer.adopt`.
   * @default 'inline'
   */
  acceptor?: 'process' | 'inline' | 'lane';
  /**
   * The acceptor process's nice value: it runs below the entry's priority, so that on a
   * busy host a connect burst takes its CPU from the acceptor, not from the streams open;
   * the lower the value, the sooner a new connection that came with a burst is accepted
   * (5 against 10: its response head in 90-592 ms against 449-834 with 10,000 connects in
   * 2-4 s, the open streams' first window 0.60-0.72 of their rate against 0.75-0.90;
   * docs/reliability.md "The acceptor's nice value"). 0 keeps the entry's. Throws
   * ERR_CONFIG_INVALID unless an integer 0-19. @default 5
   */
  acceptorNice?: number;
  /**
   * A response body whose client accepts no bytes for this long (its socket stays full)
   * is aborted and the connection reset (RST, so the kernel drops the unsent bytes), like
   * nginx `send_timeout` with `reset_timedout_connection`: a client that stops reading
   * otherwise keeps its socket buffers (user space and kernel) and its origin connection
   * for as long as it stays connected. 0 turns it off. CONNECT and WebSocket tunnels are
   * not covered. Throws ERR_CONFIG_INVALID unless an integer >= 0. @default 60000
   */
  sendTimeoutMs?: number;
  /**
   * A response whose client accepts no bytes for this long is parked: the entry lets go of
   * its stream (so the exit closes the origin connection, and the socket buffers on that
   * side are freed: with a local exit they are on this host, ~0.4-3 MB per stalled client
   * measured), keeps the client connection, and fetches the rest with a Range request
   * (If-Range) once the client reads again. Only a GET whose response can be resumed with a
   * validator (Content-Length and a strong ETag or Last-Modified) with body bytes still to
   * come; others are held until the send timeout. If the origin no longer serves the same bytes, the client's response
   * is aborted (never spliced). The send timeout still counts from the stall's start.
   * 0 turns it off. Throws ERR_CONFIG_INVALID unless an integer >= 0. @default 5000
   */
  parkAfterMs?: number;
  /**
   * Most stalled responses held before early parking: once more than this many responses
   * are stalled at once, the longest stalled are parked after `parkAfterMs / 100` when their
   * client has not drained its socket once during the response, `parkAfterMs / 10` when it
   * has, instead of `parkAfterMs`. Each held one keeps its origin connection, whose receive
   * queue the kernel grows to megabytes (~3.4 MB measured): 10,000 clients that connect at
   * once and never read would otherwise take the host's TCP memory past its pressure
   * threshold (docs/reliability.md "Slow clients"). Throws ERR_CONFIG_INVALID unless an
   * integer >= 0.
   * @default 64
   */
  maxHeldStalls?: number;
  /**
   * Logs a warning (`one client address holds many parked responses`, with `remote` and
   * `parked`) when one client address has this many parked responses at once, and again at
   * each doubling; 0: never. Throws ERR_CONFIG_INVALID unless an integer >= 0. @default 256
   */
  parkedPerSourceWarn?: number;
  /**
   * The slow lane (src/proxy/lane/): with an acceptor process, a client address holding at
   * least `slowLaneAfterParked` parked responses here has its new connections (and those
   * waiting in the acceptor) served by the lane, a process of its own at a lower priority,
   * so that the streams of other clients get the CPU first; so does an address with
   * `slowLaneAfterWaiting` connections waiting in the acceptor, or one that opens
   * `slowLaneAfterConnects` within a second. Started as
   * `slowLaneStart` says, closed with this entry.
   */
  slowLane?: SlowLane;
  /**
   * Parked responses of one client address that send its connections to the slow lane.
   * Throws ERR_CONFIG_INVALID unless an integer >= 1. @default 64
   */
  slowLaneAfterParked?: number;
  /**
   * Connections of one client address waiting in the acceptor for admission (the entry's
   * loop is saturated) that send its connections to the slow lane: a connect flood goes
   * there before its clients are answered, let alone parked. 0: never. Throws
   * ERR_CONFIG_INVALID unless an integer >= 0. @default 256
   */
  slowLaneAfterWaiting?: number;
  /**
   * Connections one client address opens within a second (counted in the acceptor, gate
   * open or not) that send its connections to the slow lane: a connect flood goes there
   * from its first tenth of a second, before the entry has let in and answered hundreds of
   * its clients. 0: never. Throws ERR_CONFIG_INVALID unless an integer >= 0. @default 256
   */
  slowLaneAfterConnects?: number;
  /**
   * When the slow lane's process starts: `burst`, when the admission gate first throttles
   * or an address first needs it (a node that never meets either runs none); `listen`,
   * with the entry, so that it is up before the first burst (loading it at its low
   * priority during one took 0.5-3 s). Throws ERR_CONFIG_INVALID otherwise.
   * @default 'burst'
   */
  slowLaneStart?: 'listen' | 'burst';
  /**
   * An address in the slow lane with no parked response (here or there) for this long comes
   * back. Throws ERR_CONFIG_INVALID unless an integer >= 0. @default 60000
   */
  slowLaneReleaseMs?: number;
  /** Requests in flight (pipelined) per client connection; more get 503. @default 8 */
  maxRequestsInFlightPerConnection?: number;
}
