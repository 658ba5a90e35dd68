import { EventEmitter } from 'node:events';
import type * as grpc from '@grpc/grpc-js';
import {
  Backoff,
  type BackoffOptions,
  type Clock,
  type CoordinatorMessage__Output,
  type CoordinatorClient as CoordinatorStub,
  createCoordinatorStub,
  deadlineIn,
  F,
  fromGrpcError,
  type Logger,
  type NodeMessage,
  type RegisterResponse__Output,
  RelayError,
  silentLogger,
  systemClock,
  type TimerHandle,
} from '@relaymesh/shared';
import type { RouteEntry } from '../routing/route-table.ts';
import type { MeasurementSource } from './measurements.ts';
import {
  type MembershipSnapshot,
  type RouteTableSnapshot,
  toMembership,
  toRouteTable,
} from './snapshots.ts';

/** What the node announces. */
export interface NodeIdentity {
  id: string;
  region: string;
  /** Tunnel URL peers dial (ws://HOST:PORT). */
  advertise: string;
  /** HTTP entry URL for clients, when the node serves one. */
  httpAdvertise?: string;
  version: string;
}

export interface CoordinatorClientOptions {
  /** Coordinator HOST:PORT. */
  address: string;
  token: string;
  node: NodeIdentity;
  measurements: MeasurementSource;
  /** Deadline of the Register call. @default 5000 */
  callTimeoutMs?: number;
  /** Re-registration backoff. @default { initialMs: 200, maxMs: 5000 } */
  backoff?: BackoffOptions;
  clock?: Clock;
  logger?: Logger;
}

type SessionStream = grpc.ClientDuplexStream<NodeMessage, CoordinatorMessage__Output>;

interface Live {
  call: SessionStream;
  heartbeatMs: number;
  reportMs: number;
  timer: TimerHandle | undefined;
  lastReportAt: number;
  writable: boolean;
  seq: number;
  over: boolean;
}

/**
 * The node's link to the coordinator: registers, keeps ONE session stream (heartbeats and
 * measurement reports up; membership and versioned route tables down) and re-registers by
 * itself with backoff whenever the stream or the coordinator goes away. The last route
 * table stays in force meanwhile.
 *
 * Events: 'registered' (sessionId), 'membership' (MembershipSnapshot), 'routes'
 * (RouteTableSnapshot), 'disconnected' (RelayError). Handlers must not throw.
 *
 * Lifecycle: start(); close() leaves gracefully (half-closes the stream, so the coordinator
 * marks the node down at once); destroy() drops everything. Both idempotent.
 */
export class CoordinatorClient extends EventEmitter {
  readonly #opts: CoordinatorClientOptions;
  readonly #stub: CoordinatorStub;
  readonly #clock: Clock;
  readonly #logger: Logger;
  readonly #backoff: Backoff;
  #routes: RouteTableSnapshot | undefined;
  #membership: MembershipSnapshot | undefined;
  #live: Live | undefined;
  #retryTimer: TimerHandle | undefined;
  #state: 'new' | 'running' | 'closed' = 'new';

  constructor(options: CoordinatorClientOptions) {
    super();
    this.#opts = options;
    this.#clock = options.clock ?? systemClock;
    this.#logger = (options.logger ?? silentLogger()).child({
      [F.COMPONENT]: 'coordinator-client',
      [F.NODE_ID]: options.node.id,
    });
    this.#backoff = new Backoff({ initialMs: 200, maxMs: 5000, ...options.backoff });
    this.#stub = createCoordinatorStub(options.address, options.token, {
      maxReconnectBackoffMs: 2000,
    });
  }

  /** The route table in force (the last one received), if any. */
  get routes(): RouteTableSnapshot | undefined {
    return this.#routes;
  }

  get membership(): MembershipSnapshot | undefined {
    return this.#membership;
  }

  /** True while a session stream is open. */
  get connected(): boolean {
    return this.#live !== undefined;
  }

  /** This node's route to `origin` from the table in force. */
  route(origin: string): RouteEntry | undefined {
    return this.#routes?.routes.find((r) => r.origin === origin);
  }

  /**
   * Sends a measurement report now instead of at the next period, e.g. when a tunnel gave
   * its first RTT sample, so routes exist seconds after start. Meant for rare events (the
   * caller bounds how often); a no-op without a live session.
   */
  reportNow(): void {
    const live = this.#live;
    if (live === undefined || live.over) return;
    live.lastReportAt = this.#clock.now();
    this.#sendReport(live);
  }

  /** Starts registering. Throws ERR_CLOSED after close/destroy. */
  start(): void {
    if (this.#state === 'closed')
      throw new RelayError('ERR_CLOSED', 'coordinator client is closed');
    if (this.#state === 'running') return;
    this.#state = 'running';
    this.#register();
  }

  /** Leaves gracefully: half-closes the session and closes the channel. Idempotent. */
  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#clearRetry();
    const live = this.#live;
    if (live !== undefined) {
      this.#stopLive(live);
      await new Promise<void>((resolve) => {
        const t = this.#clock.setTimeout(resolve, 1000);
        const done = () => {
          this.#clock.clearTimeout(t);
          resolve();
        };
        live.call.once('status', done);
        live.call.once('error', done);
        // Say goodbye explicitly: a bare half-close looks the same as a crash to the server.
        live.call.write({ leave: {} });
        live.call.end();
      });
    }
    this.#stub.close();
  }

  /** Drops the stream and channel at once. Idempotent. */
  destroy(err?: Error): void {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    this.#clearRetry();
    if (this.#live !== undefined) {
      this.#live.call.cancel();
      this.#stopLive(this.#live);
    }
    this.#stub.close();
    if (err) this.#logger.warn({ err }, 'coordinator client destroyed');
  }

  #register(): void {
    const n = this.#opts.node;
    this.#stub.Register(
      {
        nodeId: n.id,
        region: n.region,
        advertise: n.advertise,
        httpAdvertise: n.httpAdvertise ?? '',
        version: n.version,
      },
      { deadline: deadlineIn(this.#opts.callTimeoutMs ?? 5000) },
      (err, res) => {
        if (this.#state !== 'running') return;
        if (err || res === undefined) this.#retry(fromGrpcError(err));
        else this.#openSession(res);
      },
    );
  }

  #openSession(res: RegisterResponse__Output): void {
    const call = this.#stub.Session();
    const live: Live = {
      call,
      heartbeatMs: Math.max(100, res.heartbeatIntervalMs || 1000),
      reportMs: Math.max(100, res.reportIntervalMs || 1000),
      timer: undefined,
      lastReportAt: Number.NEGATIVE_INFINITY,
      writable: true,
      seq: 0,
      over: false,
    };
    this.#live = live;
    // A new session: the coordinator may have restarted, so its versions start over.
    let fresh = true;
    call.on('data', (msg: CoordinatorMessage__Output) => {
      if (live.over) return;
      this.#backoff.reset();
      if (msg.membership) this.#onMembership(msg.membership);
      if (msg.routes && msg.routes.version > 0) {
        if (fresh || this.#routes === undefined || msg.routes.version > this.#routes.version) {
          fresh = false;
          this.#routes = toRouteTable(msg.routes.version, msg.routes.routes);
          this.#logger.debug({ version: msg.routes.version }, 'route table received');
          this.#emitSafely('routes', this.#routes);
        }
      }
    });
    call.on('drain', () => {
      live.writable = true;
    });
    call.on('error', (err) => this.#onSessionEnd(live, fromGrpcError(err)));
    call.on('end', () =>
      this.#onSessionEnd(
        live,
        new RelayError('ERR_COORD_UNAVAILABLE', 'coordinator ended the session'),
      ),
    );
    this.#write(live, {
      hello: {
        nodeId: this.#opts.node.id,
        sessionId: res.sessionId,
        lastRouteVersion: this.#routes?.version ?? 0,
      },
    });
    this.#logger.info({ sessionId: res.sessionId }, 'registered with coordinator');
    this.#emitSafely('registered', res.sessionId);
    this.#tick(live);
  }

  #onMembership(m: NonNullable<CoordinatorMessage__Output['membership']>): void {
    this.#membership = toMembership(m);
    this.#emitSafely('membership', this.#membership);
  }

  /** A throwing listener must not unwind into grpc-js's stream machinery. */
  #emitSafely(event: string, value: unknown): void {
    try {
      this.emit(event, value);
    } catch (err) {
      this.#logger.error({ err, event }, 'a listener threw; the client carries on');
    }
  }

  /** One timer per session: heartbeat every period, a report when one is due. */
  #tick(live: Live): void {
    if (live.over) return;
    const now = this.#clock.now();
    if (now - live.lastReportAt >= live.reportMs - 5) {
      live.lastReportAt = now;
      this.#sendReport(live);
    } else {
      this.#write(live, { heartbeat: { seq: ++live.seq } });
    }
    live.timer = this.#clock.setTimeout(
      () => this.#tick(live),
      Math.min(live.heartbeatMs, live.reportMs),
    );
  }

  #sendReport(live: Live): void {
    try {
      const peers = this.#opts.measurements.peers();
      const origins = this.#opts.measurements.origins();
      this.#write(live, { report: { peers, origins } });
    } catch (err) {
      this.#logger.warn({ err }, 'measurement source failed: report skipped');
      this.#write(live, { heartbeat: { seq: ++live.seq } });
    }
  }

  /** Writes unless the stream is backed up: heartbeats are not worth queueing. */
  #write(live: Live, msg: NodeMessage): void {
    if (live.over || !live.writable) return;
    if (!live.call.write(msg)) live.writable = false;
  }

  #onSessionEnd(live: Live, err: RelayError): void {
    if (live.over) return;
    this.#stopLive(live);
    if (this.#state !== 'running') return;
    this.#emitSafely('disconnected', err);
    this.#retry(err);
  }

  #stopLive(live: Live): void {
    live.over = true;
    if (live.timer !== undefined) this.#clock.clearTimeout(live.timer);
    live.timer = undefined;
    if (this.#live === live) this.#live = undefined;
  }

  #retry(err: RelayError): void {
    const delay = this.#backoff.next();
    // A rejected token will not fix itself: say so at every attempt (at most every 5 s).
    const level = !err.retryable ? 'error' : this.#backoff.attempt <= 1 ? 'warn' : 'debug';
    this.#logger[level](
      { [F.CODE]: err.code, err: err.message, retryInMs: delay },
      'coordinator unavailable; will register again',
    );
    this.#clearRetry();
    this.#retryTimer = this.#clock.setTimeout(() => {
      this.#retryTimer = undefined;
      if (this.#state === 'running') this.#register();
    }, delay);
  }

  #clearRetry(): void {
    if (this.#retryTimer !== undefined) this.#clock.clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }
}
