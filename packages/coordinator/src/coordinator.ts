import * as grpc from '@grpc/grpc-js';
import {
  type Clock,
  type ClusterConfig,
  F,
  type GetRoutesRequest__Output,
  type GetRoutesResponse,
  type ListNodesResponse,
  type Logger,
  loadCoordinatorProto,
  type Membership,
  type RegisterRequest__Output,
  type RegisterResponse,
  RelayError,
  silentLogger,
  systemClock,
  type TimerHandle,
  toGrpcStatus,
} from '@relaymesh/shared';
import { LatencyMatrix, type MatrixOptions } from './matrix/latency-matrix.ts';
import { Registry } from './membership/registry.ts';
import {
  DEFAULT_HYSTERESIS,
  DEFAULT_PATH_OPTIONS,
  type HysteresisOptions,
  type PathOptions,
  type PlannedRoute,
  planRoutes,
  type RouteState,
} from './paths/index.ts';
import { tokenAuthInterceptor } from './service/auth.ts';
import { nodeToMessage, originToMessage, roundMs, routeToMessage } from './service/convert.ts';
import { SessionHandler } from './service/session-handler.ts';
import { toAnnouncement } from './service/validate.ts';

/** Coordinator settings; everything but `config` has a default. */
export interface CoordinatorOptions {
  config: ClusterConfig;
  /** gRPC listen address HOST:PORT (port 0 = any). @default '127.0.0.1:7400' */
  listen?: string;
  /** Heartbeat period told to nodes. @default 1000 */
  heartbeatIntervalMs?: number;
  /** Measurement report period told to nodes. @default 1000 */
  reportIntervalMs?: number;
  /** Lease: a node silent this long is down and leaves all routes. @default 6000 */
  leaseMs?: number;
  /**
   * Routes are recomputed at most this often after reports: a report that comes this long
   * after the last recomputation is acted on at once, an earlier one when the period is up
   * (a throttle: not `this long after the report`, which added up to a period to every
   * round of the hysteresis). @default 1000
   */
  recomputeIntervalMs?: number;
  /** Most nodes tracked. @default 1000 */
  maxNodes?: number;
  /**
   * After start, no routes are computed or pushed for this long, so that a restarted
   * coordinator hears from every node before it speaks: nodes keep their last tables
   * instead of getting ones built from the first few reports. Longer than the nodes'
   * re-registration backoff cap (5 s) so even a node deep in backoff makes it. @default 6000
   */
  warmupMs?: number;
  paths?: Partial<PathOptions>;
  hysteresis?: Partial<HysteresisOptions>;
  matrix?: Partial<MatrixOptions>;
  clock?: Clock;
  logger?: Logger;
}

/** What GetRoutes-style queries filter on. */
export interface RouteQuery {
  from?: string;
  origin?: string;
}

/**
 * The control plane: membership with leases, the smoothed latency matrix, route
 * computation and the gRPC service (Register, Session, ListNodes, GetRoutes), every call
 * authenticated with the cluster token.
 *
 * Lifecycle: `start()` binds and resolves with the bound address; `close()` ends sessions
 * and shuts down gracefully (force after 5 s); `destroy()` stops at once. Both idempotent.
 */
export class Coordinator {
  readonly #config: ClusterConfig;
  readonly #listen: string;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #registry: Registry;
  readonly #matrix: LatencyMatrix;
  readonly #sessions: SessionHandler;
  readonly #heartbeatMs: number;
  readonly #reportMs: number;
  readonly #recomputeMs: number;
  readonly #warmupMs: number;
  #warmUntil = Number.POSITIVE_INFINITY;
  readonly #planOptions: PathOptions & HysteresisOptions;
  readonly #server: grpc.Server;
  #address: string | undefined;
  #state: 'new' | 'starting' | 'running' | 'closed' = 'new';
  #routeStates = new Map<string, RouteState>();
  #routes: PlannedRoute[] = [];
  #routeVersion = 0;
  #slices = new Map<string, string>();
  /** Nodes that reported since they registered: only they get route tables. */
  readonly #reported = new Set<string>();
  #membershipVersion = 0;
  #membershipSig = '';
  #recomputeTimer: TimerHandle | undefined;
  #recomputeDue = 0;
  #lastRecomputeAt = Number.NEGATIVE_INFINITY;

  constructor(options: CoordinatorOptions) {
    this.#config = options.config;
    this.#listen = options.listen ?? '127.0.0.1:7400';
    this.#clock = options.clock ?? systemClock;
    this.#logger = (options.logger ?? silentLogger()).child({ [F.COMPONENT]: 'coordinator' });
    this.#heartbeatMs = options.heartbeatIntervalMs ?? 1000;
    this.#reportMs = options.reportIntervalMs ?? 1000;
    this.#recomputeMs = options.recomputeIntervalMs ?? 1000;
    this.#warmupMs = options.warmupMs ?? 6000;
    this.#planOptions = {
      ...DEFAULT_PATH_OPTIONS,
      ...DEFAULT_HYSTERESIS,
      ...options.paths,
      ...options.hysteresis,
    };
    this.#matrix = new LatencyMatrix(options.matrix);
    this.#registry = new Registry({
      leaseMs: options.leaseMs ?? 6000,
      clock: this.#clock,
      ...(options.maxNodes === undefined ? {} : { maxNodes: options.maxNodes }),
    });
    this.#registry.on('down', (id: string, reason: 'lease' | 'left') =>
      this.#onNodeDown(id, reason),
    );
    this.#registry.on('change', () => this.#onMembershipChange());
    this.#sessions = new SessionHandler({
      registry: this.#registry,
      logger: this.#logger,
      clock: this.#clock,
      onReport: (id, peers, origins) => {
        this.#matrix.applyReport(id, peers, origins);
        // First report of this registration: push its table promptly.
        const first = !this.#reported.has(id);
        this.#reported.add(id);
        this.#scheduleRecompute(first ? 0 : this.#throttledDelay());
      },
      onAttach: (s) => {
        s.sendMembership(this.#membershipFor(s.nodeId));
        // Version 0 = nothing computed yet (warm-up): the node keeps the table it has.
        if (this.#routeVersion > 0 && this.#reported.has(s.nodeId)) {
          s.sendRoutes({
            version: this.#routeVersion,
            routes: this.#routesFor({ from: s.nodeId }),
          });
        }
      },
    });
    this.#server = this.#createServer();
  }

  #createServer(): grpc.Server {
    const server = new grpc.Server({
      interceptors: [tokenAuthInterceptor(this.#config.token, this.#logger)],
      'grpc.keepalive_time_ms': 60_000,
      'grpc.keepalive_timeout_ms': 20_000,
      'grpc.keepalive_permit_without_calls': 1,
      // Nodes ping every 10 s to notice a vanished coordinator: allow it.
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    });
    server.addService(loadCoordinatorProto().Coordinator.service, {
      Register: this.#unary((req: RegisterRequest__Output) => this.#register(req)),
      Session: (call: Parameters<SessionHandler['handle']>[0]) => this.#sessions.handle(call),
      ListNodes: this.#unary(() => this.#listNodes()),
      GetRoutes: this.#unary((req: GetRoutesRequest__Output) => this.#getRoutes(req)),
    });
    return server;
  }

  /** The bound address (HOST:PORT) once started. */
  get address(): string | undefined {
    return this.#address;
  }

  /** Current route table version (increases whenever any node's routes change). */
  get routeVersion(): number {
    return this.#routeVersion;
  }

  /**
   * Binds the gRPC server. Resolves with the bound HOST:PORT. Throws ERR_CONFIG_INVALID for
   * a malformed address, ERR_CLOSED after close, or the bind error.
   */
  async start(): Promise<string> {
    if (this.#state !== 'new')
      throw new RelayError('ERR_CLOSED', 'coordinator already started or closed');
    this.#state = 'starting';
    const { host, port } = splitHostPort(this.#listen);
    const bound = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync(
        `${host.includes(':') ? `[${host}]` : host}:${port}`,
        grpc.ServerCredentials.createInsecure(),
        (err, p) => (err ? reject(err) : resolve(p)),
      );
    });
    if (this.#state !== 'starting') {
      this.#server.forceShutdown();
      throw new RelayError('ERR_CLOSED', 'coordinator closed while starting');
    }
    this.#state = 'running';
    this.#warmUntil = this.#clock.now() + this.#warmupMs;
    this.#scheduleRecompute(this.#warmupMs);
    this.#address = `${host.includes(':') ? `[${host}]` : host}:${bound}`;
    this.#logger.info(
      { address: this.#address, origins: this.#config.origins.length },
      'coordinator listening',
    );
    return this.#address;
  }

  /** Ends all sessions and shuts the server down, forcing after `graceMs`. Idempotent. */
  async close(graceMs = 5000): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#stopTimers();
    this.#sessions.endAll();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        this.#server.forceShutdown();
        resolve();
      }, graceMs);
      t.unref();
      this.#server.tryShutdown(() => {
        clearTimeout(t);
        resolve();
      });
    });
    this.#logger.info('coordinator closed');
  }

  /** Stops at once: open calls fail with UNAVAILABLE/CANCELLED. Idempotent. */
  destroy(err?: Error): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#stopTimers();
    this.#sessions.detachAll();
    this.#server.forceShutdown();
    if (err) this.#logger.error({ err }, 'coordinator destroyed');
  }

  /**
   * Recomputes routes now (hysteresis applies, tables are pushed when changed) and returns
   * them. Normally this runs by itself after reports and membership changes.
   */
  computeRoutes(): PlannedRoute[] {
    this.#recompute(true);
    return this.#routes;
  }

  /** Routes from the last computation, filtered. Throws ERR_COORD_UNKNOWN_NODE / _ORIGIN. */
  routes(query: RouteQuery = {}): PlannedRoute[] {
    if (query.from !== undefined && this.#registry.get(query.from) === undefined) {
      throw new RelayError('ERR_COORD_UNKNOWN_NODE', `unknown node ${JSON.stringify(query.from)}`);
    }
    if (query.origin !== undefined && !this.#config.origins.some((o) => o.name === query.origin)) {
      throw new RelayError(
        'ERR_COORD_UNKNOWN_ORIGIN',
        `unknown origin ${JSON.stringify(query.origin)}`,
      );
    }
    return this.#routes.filter(
      (r) =>
        (query.from === undefined || r.from === query.from) &&
        (query.origin === undefined || r.origin === query.origin),
    );
  }

  #unary<Req, Res>(fn: (req: Req) => Res): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      try {
        callback(null, fn(call.request));
      } catch (err) {
        if (!(err instanceof RelayError)) this.#logger.error({ err }, 'unary handler failed');
        callback(toGrpcStatus(err));
      }
    };
  }

  #register(req: RegisterRequest__Output): RegisterResponse {
    const a = toAnnouncement(req);
    this.#sessions.supersede(a.id);
    this.#reported.delete(a.id);
    const rec = this.#registry.register(a);
    this.#logger.info(
      { [F.NODE_ID]: a.id, [F.REGION]: a.region, advertise: a.advertise },
      'node registered',
    );
    return {
      sessionId: rec.sessionId,
      heartbeatIntervalMs: this.#heartbeatMs,
      leaseMs: this.#registry.leaseMs,
      reportIntervalMs: this.#reportMs,
    };
  }

  #listNodes(): ListNodesResponse {
    const up = this.#registry.upIds();
    return {
      nodes: this.#registry.list().map(nodeToMessage),
      links: this.#matrix
        .links(up)
        .map((l) => ({ from: l.from, to: l.to, rttMs: roundMs(l.rttMs) })),
      origins: this.#matrix
        .legs(up)
        .map((g) => ({ node: g.node, origin: g.origin, rttMs: roundMs(g.rttMs) })),
    };
  }

  #getRoutes(req: GetRoutesRequest__Output): GetRoutesResponse {
    const query: RouteQuery = {};
    if (req.from !== '') query.from = req.from;
    if (req.origin !== '') query.origin = req.origin;
    return { version: this.#routeVersion, routes: this.routes(query).map(routeToMessage) };
  }

  #routesFor(query: RouteQuery) {
    return this.#routes.filter((r) => r.from === query.from).map(routeToMessage);
  }

  #membershipFor(nodeId: string): Membership {
    return {
      version: this.#membershipVersion,
      peers: this.#registry
        .list()
        .filter((r) => r.status === 'up' && r.id !== nodeId)
        .map(nodeToMessage),
      origins: this.#config.origins.map(originToMessage),
    };
  }

  #onNodeDown(id: string, reason: 'lease' | 'left'): void {
    if (reason === 'lease') this.#logger.warn({ [F.NODE_ID]: id }, 'node down: lease expired');
    else this.#logger.info({ [F.NODE_ID]: id }, 'node left');
    this.#matrix.removeNode(id);
    this.#reported.delete(id);
    this.#sessions.endNode(id);
    // A dead node must leave routes now, not after the report throttle.
    this.#scheduleRecompute(0);
  }

  #onMembershipChange(): void {
    if (this.#state === 'closed') return;
    const sig = JSON.stringify(
      this.#registry
        .list()
        .filter((r) => r.status === 'up')
        .map(nodeToMessage),
    );
    if (sig === this.#membershipSig) return;
    this.#membershipSig = sig;
    this.#membershipVersion++;
    for (const s of this.#sessions.all()) s.sendMembership(this.#membershipFor(s.nodeId));
    this.#scheduleRecompute(0);
  }

  /** Delay of a recomputation due to reports: none once a period has passed since the last one. */
  #throttledDelay(): number {
    return Math.max(0, this.#lastRecomputeAt + this.#recomputeMs - this.#clock.now());
  }

  #scheduleRecompute(delayMs: number): void {
    if (this.#state === 'closed') return;
    const due = this.#clock.now() + delayMs;
    if (this.#recomputeTimer !== undefined) {
      if (due >= this.#recomputeDue) return;
      this.#clock.clearTimeout(this.#recomputeTimer);
    }
    this.#recomputeDue = due;
    this.#recomputeTimer = this.#clock.setTimeout(() => {
      this.#recomputeTimer = undefined;
      try {
        this.#recompute();
      } catch (err) {
        this.#logger.error({ err }, 'route recomputation failed');
      }
    }, delayMs);
  }

  #recompute(force = false): void {
    const now = this.#clock.now();
    if (!force && now < this.#warmUntil) {
      this.#scheduleRecompute(this.#warmUntil - now);
      return;
    }
    this.#lastRecomputeAt = now;
    const started = performance.now();
    const up = this.#registry.upIds();
    const plan = planRoutes(
      {
        nodes: [...up],
        links: this.#matrix.links(up),
        legs: this.#matrix.legs(up),
        origins: this.#config.origins.map((o) => o.name),
      },
      this.#routeStates,
      this.#planOptions,
    );
    this.#routeStates = plan.states;
    this.#routes = plan.routes;
    const changed = this.#changedSlices(up);
    if (changed.length > 0) {
      this.#routeVersion++;
      for (const id of changed) {
        this.#sessions
          .get(id)
          ?.sendRoutes({ version: this.#routeVersion, routes: this.#routesFor({ from: id }) });
      }
      this.#logger.info(
        {
          version: this.#routeVersion,
          changedNodes: changed.length,
          [F.DURATION_MS]: roundMs(performance.now() - started),
        },
        'route table changed',
      );
    }
  }

  /**
   * Nodes whose routes (paths, not RTT estimates) differ from what they were last sent.
   * A node that has not reported yet is left out: a table computed without its own
   * measurements would be empty or wrong, and it still has its previous one.
   */
  #changedSlices(up: ReadonlySet<string>): string[] {
    const next = new Map<string, string>();
    for (const r of this.#routes) {
      if (!this.#reported.has(r.from)) continue;
      const s = `${next.get(r.from) ?? ''}|${r.origin}:${r.path.join('>')}/${r.alternates.map((a) => a.path.join('>')).join(',')}`;
      next.set(r.from, s);
    }
    for (const id of up) if (this.#reported.has(id) && !next.has(id)) next.set(id, '');
    const changed = [...next].filter(([id, s]) => this.#slices.get(id) !== s).map(([id]) => id);
    this.#slices = next;
    return changed;
  }

  #stopTimers(): void {
    if (this.#recomputeTimer !== undefined) this.#clock.clearTimeout(this.#recomputeTimer);
    this.#recomputeTimer = undefined;
    this.#registry.close();
  }
}

/** Splits HOST:PORT ([v6]:PORT allowed). Throws ERR_CONFIG_INVALID. */
export function splitHostPort(value: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[3]) : Number.NaN;
  if (m === null || port > 65535) {
    throw new RelayError(
      'ERR_CONFIG_INVALID',
      `listen address ${JSON.stringify(value)} is not HOST:PORT`,
    );
  }
  return { host: (m[1] ?? m[2])!, port };
}
