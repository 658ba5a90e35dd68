import type { AddressInfo } from 'node:net';
import {
  type BackoffOptions,
  type Clock,
  createDialer,
  type Dialer,
  F,
  type Logger,
  RelayError,
  silentLogger,
  systemClock,
  type TimerHandle,
} from '@relaymesh/shared';
import { CoordinatorClient } from '../control/coordinator-client.ts';
import { OriginProber } from '../control/origin-prober.ts';
import type { MembershipSnapshot, RouteTableSnapshot } from '../control/snapshots.ts';
import type { MuxConfig } from '../mux/config.ts';
import { DataPlane } from '../proxy/data-plane.ts';
import type { ForwardRule } from '../proxy/tcp/forward-server.ts';
import type { HopStream } from '../proxy/types.ts';
import { OriginTable } from '../routing/origin-catalog.ts';
import { RouteTable } from '../routing/route-table.ts';
import { TunnelDialer } from '../tunnel/dialer.ts';
import { TunnelListener } from '../tunnel/listener.ts';
import { CapacityProber } from './capacity-prober.ts';
import type { LinkCapacityOptions } from './link-capacity.ts';
import { NodeMeasurements } from './node-measurements.ts';
import { PeerManager } from './peer-manager.ts';

/** Announced to the coordinator as the node's software version. */
export const RELAYMESH_VERSION = '0.1.0';
/** How long close() lets requests and streams finish before destroying. */
export const DEFAULT_CLOSE_GRACE_MS = 10_000;

export interface HostPort {
  host: string;
  port: number;
}

/** Timers and limits; the defaults suit production, tests shrink them. */
export interface RelayNodeTimers {
  /** Redial backoff of peer tunnels. @default 200 ms x1.6 up to 30 s */
  tunnelBackoff?: BackoffOptions;
  /** A peer missing from the membership this long loses its tunnel. @default 15000 */
  peerForgetMs?: number;
  /** Re-registration backoff. @default 200 ms up to 5 s */
  coordinatorBackoff?: BackoffOptions;
  /** Origin probe period. @default 5000 */
  probeIntervalMs?: number;
  /** Origin probe connect timeout. @default 2000 */
  probeTimeoutMs?: number;
  /** A peer link is reported reachable while its newest RTT sample is this fresh. @default 15000 */
  freshRttMs?: number;
  /**
   * Capacity probes of peer links (see LinkCapacity): `intervalMs` 0 disables them.
   * @default 30 s period, 1 s after a tunnel comes up, 3 s while degraded
   */
  capacitySchedule?: Partial<LinkCapacityOptions>;
  /** Bytes a peer sends per capacity probe. @default 65536 */
  capacityProbeBytes?: number;
  /** Mux settings of every tunnel (keepalive, windows). @default DEFAULT_MUX_CONFIG */
  mux?: Partial<MuxConfig>;
}

export interface RelayNodeOptions {
  id: string;
  region: string;
  /** Coordinator gRPC address HOST:PORT. */
  coordinator: string;
  /** The cluster token (tunnels and coordinator). Never logged. */
  token: string;
  /** Where peers' tunnels arrive; port 0 picks a free port. */
  tunnelListen: HostPort;
  /** `ws://HOST:PORT` peers dial. @default derived from the bound tunnel address */
  advertise?: string;
  /** `http://HOST:PORT` of an HTTP CONNECT egress proxy for every outbound connection. */
  egressProxy?: string;
  /** Replaces the dialer built from `egressProxy` (tests, embedding). */
  dialer?: Dialer;
  /** HTTP entry for clients; no entry when absent. */
  httpListen?: HostPort;
  /**
   * Who accepts the entry's client connections (EntryServerOptions.acceptor): an acceptor
   * process of its own, or this process. `relaymesh node` defaults to `process`.
   * @default 'inline'
   */
  entryAcceptor?: 'process' | 'inline';
  /**
   * The acceptor process's nice value (EntryServerOptions.acceptorNice), 0-19; with
   * `entryAcceptor: 'process'`. @default 5
   */
  entryAcceptorNice?: number;
  /**
   * The entry's slow lane (EntryServerOptions.slowLane): needs `entryAcceptor: 'process'`.
   * `relaymesh node` turns it on with the acceptor process. `eager`: its process starts
   * with the entry (EntryServerOptions.slowLaneStart `listen`), not at the first burst.
   * @default false
   */
  slowLane?: boolean | 'eager';
  /**
   * The slow lane's scheduling (SlowLaneOptions.policy): `idle`, Linux's SCHED_IDLE on top
   * of nice 10, or `nice`, nice 10 alone. @default 'idle'
   */
  slowLanePolicy?: 'idle' | 'nice';
  /**
   * The CPUs the slow lane runs on, a Linux CPU list (SlowLaneOptions.cpus): on a host with
   * cores to spare, one the node's busy threads do not use. @default the node's
   */
  slowLaneCpus?: string;
  /** `http://HOST:PORT` clients are told. @default derived from the bound HTTP address */
  httpAdvertise?: string;
  /** Raw TCP forwards (`--forward`). @default [] */
  forwards?: ForwardRule[];
  /** Path and timing headers on responses. @default false */
  debugHeaders?: boolean;
  /** Bound of close() when called without one. @default 10000 */
  closeGraceMs?: number;
  timers?: RelayNodeTimers;
  logger?: Logger;
  clock?: Clock;
}

/** What start() bound and announced. */
export interface RelayNodeAddresses {
  tunnel: AddressInfo;
  advertise: string;
  http: AddressInfo | undefined;
  httpAdvertise: string | undefined;
  forwards: AddressInfo[];
}

type State = 'new' | 'starting' | 'running' | 'closed';

/**
 * One relay node: the tunnel listener and the peer tunnels (one per pair, see
 * {@link PeerManager}), the coordinator client (register, report, receive routes), the
 * origin prober and the data plane (entry, relay, exit), wired together.
 *
 * ```
 *  coordinator ──membership──> peers.setPeers, catalog.replace, prober.setOrigins
 *              ──routes──────> routeTable.update
 *              <──reports───── NodeMeasurements (tunnel RTTs, origin probes)
 *  tunnels ──'stream'──> dataPlane.handleStream;  dataPlane.opener ──> peers.open(peer)
 * ```
 *
 * Lifecycle: start() binds and registers (throws ERR_CONFIG_INVALID, or the listener's
 * bind error); close(graceMs) leaves the mesh gracefully within the grace, then destroys;
 * destroy() drops everything at once. Both idempotent.
 */
export class RelayNode {
  readonly id: string;
  readonly routes: RouteTable;
  readonly catalog = new OriginTable();
  readonly dataPlane: DataPlane;
  readonly peers: PeerManager;
  readonly listener: TunnelListener;
  readonly prober: OriginProber;
  readonly capacity: CapacityProber;
  readonly #o: RelayNodeOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #measurements: NodeMeasurements;
  #client: CoordinatorClient | undefined;
  #addresses: RelayNodeAddresses | undefined;
  #originsSig = '';
  #state: State = 'new';
  #closing: Promise<void> | undefined;

  /** @throws RelayError ERR_CONFIG_INVALID for a missing field or a bad egress proxy URL. */
  constructor(options: RelayNodeOptions) {
    for (const field of ['id', 'region', 'coordinator', 'token'] as const) {
      if (!options[field]) throw new RelayError('ERR_CONFIG_INVALID', `${field}: required`);
    }
    this.#o = options;
    this.id = options.id;
    this.#clock = options.clock ?? systemClock;
    const logger = options.logger ?? silentLogger();
    this.#log = logger.child({ [F.COMPONENT]: 'relay-node', [F.NODE_ID]: options.id });
    const dialer = options.dialer ?? createDialer({ egressProxy: options.egressProxy });
    const t = options.timers ?? {};
    this.routes = new RouteTable({ nodeId: options.id, clock: this.#clock });
    const ends = tunnelEnds(options, dialer, logger, this.#clock);
    this.listener = ends.listener;
    this.peers = new PeerManager({
      nodeId: options.id,
      listener: this.listener,
      dialer: ends.dialer,
      onStream: (s) => this.dataPlane.handleStream(s as HopStream),
      logger,
      clock: this.#clock,
      ...(t.tunnelBackoff ? { backoff: t.tunnelBackoff } : {}),
      ...(t.peerForgetMs === undefined ? {} : { forgetAfterMs: t.peerForgetMs }),
    });
    this.prober = new OriginProber({
      dialer,
      logger,
      clock: this.#clock,
      ...(t.probeIntervalMs === undefined ? {} : { intervalMs: t.probeIntervalMs }),
      ...(t.probeTimeoutMs === undefined ? {} : { timeoutMs: t.probeTimeoutMs }),
    });
    this.capacity = new CapacityProber({
      nodeId: options.id,
      peers: this.peers,
      logger,
      clock: this.#clock,
      ...(t.capacitySchedule ? { schedule: t.capacitySchedule } : {}),
      ...(t.capacityProbeBytes === undefined ? {} : { probeBytes: t.capacityProbeBytes }),
    });
    this.#measurements = new NodeMeasurements({
      peers: this.peers,
      prober: this.prober,
      capacity: (peer) => this.capacity.capacity(peer),
      clock: this.#clock,
      ...(t.freshRttMs === undefined ? {} : { freshMs: t.freshRttMs }),
    });
    this.dataPlane = new DataPlane({
      nodeId: options.id,
      catalog: this.catalog,
      routes: this.routes,
      opener: { open: (peer) => this.peers.open(peer) as HopStream },
      dialer,
      logger,
      clock: this.#clock,
      debugHeaders: options.debugHeaders ?? false,
      forwards: options.forwards ?? [],
      ...(options.httpListen ? { httpListen: options.httpListen } : {}),
      ...(options.entryAcceptor
        ? {
            entry: {
              acceptor: options.entryAcceptor,
              ...(options.entryAcceptorNice === undefined
                ? {}
                : { acceptorNice: options.entryAcceptorNice }),
              ...(options.slowLane === 'eager' ? { slowLaneStart: 'listen' as const } : {}),
            },
          }
        : {}),
      // The lane's own exit cannot take a dialer object: it dials direct or via the proxy.
      ...(options.slowLane
        ? {
            slowLane: {
              egressProxy: options.egressProxy,
              ...(options.slowLanePolicy ? { policy: options.slowLanePolicy } : {}),
              ...(options.slowLaneCpus ? { cpus: options.slowLaneCpus } : {}),
            },
          }
        : {}),
    });
    this.peers.on('ready', (peer: string) => {
      this.routes.markPeerUp(peer);
      this.#client?.reportNow();
    });
    // A dead tunnel (closed, reset, or silent past the mux dead timeout) takes the peer
    // out of this entry's paths at once, without waiting for the coordinator; it stays out
    // until a tunnel to it answers again ('ready').
    this.peers.on('down', (peer: string) => {
      this.routes.markTunnelDown(peer);
      this.#client?.reportNow();
    });
    // A peer that sent GO_AWAY is leaving (or replacing its tunnel): paths through it,
    // as first hop or further on, go last until a tunnel to it answers again ('ready').
    // Before this, the entry kept sending streams to relays whose own tunnel to the
    // draining node was gone until the coordinator's next push (a relay answers NO_ROUTE).
    this.peers.on('draining', (peer: string) => {
      this.routes.markTunnelDown(peer);
    });
  }

  /** The addresses bound by start(). */
  get addresses(): RelayNodeAddresses | undefined {
    return this.#addresses;
  }

  /** The coordinator client (after start): routes and membership in force, `connected`. */
  get coordinator(): CoordinatorClient | undefined {
    return this.#client;
  }

  /**
   * Binds the tunnel listener and the data plane listeners, then registers with the
   * coordinator (which keeps retrying in the background if it is unreachable).
   * @throws RelayError ERR_CONFIG_INVALID when an address cannot be derived; ERR_CLOSED
   *   after close; the bind error (EADDRINUSE, ...) after destroying what was started.
   */
  async start(): Promise<RelayNodeAddresses> {
    if (this.#state !== 'new') {
      throw new RelayError('ERR_CLOSED', `relay node ${this.id} cannot start: ${this.#state}`);
    }
    this.#state = 'starting';
    try {
      const tunnel = await this.listener.listen();
      const planes = await this.dataPlane.start();
      const advertise = this.#o.advertise ?? advertiseOf('ws', tunnel, '--advertise');
      const httpAdvertise =
        this.#o.httpAdvertise ??
        (planes.http ? advertiseOf('http', planes.http, '--http-advertise') : undefined);
      this.#addresses = {
        tunnel,
        advertise,
        http: planes.http,
        httpAdvertise,
        forwards: planes.forwards,
      };
      if (this.#state !== 'starting') throw new RelayError('ERR_CLOSED', 'closed during start');
      this.#client = this.#makeClient(advertise, httpAdvertise);
      this.prober.start();
      this.capacity.start();
      this.#client.start();
      this.#state = 'running';
      this.#log.info(
        { region: this.#o.region, advertise, httpAdvertise, coordinator: this.#o.coordinator },
        'relay node started',
      );
      return this.#addresses;
    } catch (err) {
      this.destroy();
      throw err;
    }
  }

  /**
   * Leaves the mesh gracefully: tells the coordinator (routes move away at once), sends
   * GO_AWAY on every tunnel, stops accepting clients and lets live requests and streams
   * finish; whatever is left after `graceMs` is destroyed. Idempotent.
   */
  close(graceMs = this.#o.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS): Promise<void> {
    if (this.#closing) return this.#closing;
    const wasRunning = this.#state === 'running';
    this.#state = 'closed';
    this.#closing = this.#closeWithin(graceMs, wasRunning);
    return this.#closing;
  }

  /** Drops every tunnel, connection and the coordinator session at once. Idempotent. */
  destroy(err?: Error): void {
    this.#state = 'closed';
    this.#closing ??= Promise.resolve();
    this.#client?.destroy(err);
    this.capacity.stop();
    this.prober.destroy();
    this.peers.destroy(err);
    this.listener.destroy(err);
    void this.dataPlane.destroy(err).catch(() => {});
  }

  async #closeWithin(graceMs: number, graceful: boolean): Promise<void> {
    let timer: TimerHandle | undefined;
    const started = this.#clock.now();
    const expired = new Promise<'expired'>((resolve) => {
      timer = this.#clock.setTimeout(() => resolve('expired'), graceMs);
    });
    const outcome = graceful
      ? await Promise.race([
          this.#leave().then(
            () => 'done' as const,
            (err: unknown) => {
              // Whatever failed, destroy below still releases everything.
              this.#log.warn({ err }, 'graceful close failed: destroying');
              return 'done' as const;
            },
          ),
          expired,
        ])
      : 'done';
    if (timer !== undefined) this.#clock.clearTimeout(timer);
    const ms = Math.round(this.#clock.now() - started);
    if (outcome === 'expired') this.#log.warn({ graceMs }, 'close grace expired: destroying');
    this.destroy();
    this.#log.info({ [F.DURATION_MS]: ms }, 'relay node closed');
  }

  async #leave(): Promise<void> {
    this.peers.goAwayAll();
    this.capacity.stop();
    await this.#client?.close();
    await this.prober.close();
    await this.dataPlane.close();
    await Promise.all([this.peers.close(), this.listener.close()]);
  }

  #makeClient(advertise: string, httpAdvertise: string | undefined): CoordinatorClient {
    const o = this.#o;
    const client = new CoordinatorClient({
      address: o.coordinator,
      token: o.token,
      node: {
        id: o.id,
        region: o.region,
        advertise,
        version: RELAYMESH_VERSION,
        ...(httpAdvertise === undefined ? {} : { httpAdvertise }),
      },
      measurements: this.#measurements,
      logger: o.logger ?? silentLogger(),
      clock: this.#clock,
      ...(o.timers?.coordinatorBackoff ? { backoff: o.timers.coordinatorBackoff } : {}),
    });
    client.on('membership', (m: MembershipSnapshot) => this.#onMembership(m));
    client.on('routes', (r: RouteTableSnapshot) => this.routes.update(r.routes, r.version));
    return client;
  }

  #onMembership(m: MembershipSnapshot): void {
    if (this.#state === 'closed') return;
    try {
      this.catalog.replace(m.origins);
    } catch (err) {
      // Keep serving the last good set: the coordinator validated it, so this is a bug.
      this.#log.error({ err, version: m.version }, 'origins from the coordinator rejected');
    }
    this.peers.setPeers(m.peers);
    const sig = JSON.stringify(m.origins.map((o) => [o.name, o.upstreams]));
    if (sig === this.#originsSig) return;
    this.#originsSig = sig;
    this.prober.setOrigins(m.origins);
    // Origin legs in the very next report, not one probe period later.
    void this.prober.probeOnce().then(() => {
      if (this.#state === 'running') this.#client?.reportNow();
    });
  }
}

/** The node's two tunnel ends: the listener peers dial, the dialer for the peers we dial. */
function tunnelEnds(
  o: RelayNodeOptions,
  dialer: Dialer,
  logger: Logger,
  clock: Clock,
): { listener: TunnelListener; dialer: TunnelDialer } {
  const common = {
    nodeId: o.id,
    region: o.region,
    token: o.token,
    logger,
    clock,
    ...(o.timers?.mux ? { mux: o.timers.mux } : {}),
  };
  return {
    listener: new TunnelListener({
      ...common,
      host: o.tunnelListen.host,
      port: o.tunnelListen.port,
    }),
    dialer: new TunnelDialer({ ...common, dialer }),
  };
}

/** `ws://host:port` from a bound address; an unspecified host cannot be dialed. */
function advertiseOf(scheme: 'ws' | 'http', a: AddressInfo, flag: string): string {
  if (a.address === '0.0.0.0' || a.address === '::') {
    throw new RelayError(
      'ERR_CONFIG_INVALID',
      `${flag}: required when listening on all interfaces (${a.address})`,
    );
  }
  const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
  return `${scheme}://${host}:${a.port}`;
}
