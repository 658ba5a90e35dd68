import type { AddressInfo } from 'node:net';
import {
  type Clock,
  type Dialer,
  F,
  type Logger,
  RelayError,
  silentLogger,
  systemClock,
} from '@relaymesh/shared';
import { OriginTable } from '../routing/origin-catalog.ts';
import { RouteTable } from '../routing/route-table.ts';
import { EntryConnector } from './entry-connector.ts';
import { ExitHandler, type ExitHandlerOptions } from './exit/exit-handler.ts';
import { EntryServer, type EntryServerOptions } from './http/entry-server.ts';
import { SlowLane } from './lane/slow-lane.ts';
import { StreamServer } from './relay/stream-server.ts';
import { type ForwardRule, ForwardServer } from './tcp/forward-server.ts';
import type { HopStream, OriginCatalog, RouteSource, StreamOpener } from './types.ts';

export interface DataPlaneOptions {
  nodeId: string;
  catalog: OriginCatalog;
  routes: RouteSource;
  opener: StreamOpener;
  /** The node's dialer: every origin connection goes through it. */
  dialer: Dialer;
  logger?: Logger;
  clock?: Clock;
  /** `--http-listen HOST:PORT`; no HTTP entry when absent. */
  httpListen?: { host: string; port: number };
  /** `--forward` rules. @default [] */
  forwards?: ForwardRule[];
  /** How long the entry waits for the exit's response head. @default 60000 */
  responseHeadTimeoutMs?: number;
  /** `--debug-headers`. @default false */
  debugHeaders?: boolean;
  /** Extra entry settings (limits, timeouts). */
  entry?: Omit<
    EntryServerOptions,
    'nodeId' | 'catalog' | 'connector' | 'logger' | 'debugHeaders' | 'slowLane'
  >;
  /**
   * The entry's slow lane (src/proxy/lane/): needs the entry's acceptor process, an
   * OriginTable and a RouteTable (the lane keeps a copy of both). Off when absent.
   */
  slowLane?: {
    /** Nice value of every thread of the lane. @default 10 */
    nice?: number;
    /** SCHED_IDLE as well ('idle') or the nice value alone ('nice'). @default 'idle' */
    policy?: 'idle' | 'nice';
    /** The CPUs the lane runs on (SlowLaneOptions.cpus). @default the node's */
    cpus?: string;
    /** The lane's log level. @default the logger's */
    logLevel?: string;
    /** The lane's exit dials origins through this proxy (the node's dialer cannot be sent). */
    egressProxy?: string | undefined;
  };
  /** Extra exit settings (pool timeouts, balance mode, health checks). */
  exit?: Omit<ExitHandlerOptions, 'catalog' | 'dialer' | 'logger' | 'clock'>;
}

/**
 * Every data plane role of one node, wired together: the exit, the stream server (relay
 * and exit for inbound streams), the entry connector, and the listeners (`--http-listen`,
 * `--forward`). The node composition only feeds it sessions' streams:
 * `session.on('stream', (s) => dataPlane.handleStream(s))`.
 */
export class DataPlane {
  readonly exit: ExitHandler;
  readonly streams: StreamServer;
  readonly connector: EntryConnector;
  readonly entry: EntryServer | undefined;
  readonly forwards: ForwardServer[];
  readonly #httpListen: DataPlaneOptions['httpListen'];

  constructor(o: DataPlaneOptions) {
    const logger = o.logger ?? silentLogger();
    const clock = o.clock ?? systemClock;
    this.exit = new ExitHandler({ ...o.exit, catalog: o.catalog, dialer: o.dialer, logger, clock });
    this.streams = new StreamServer({
      nodeId: o.nodeId,
      opener: o.opener,
      exit: this.exit,
      logger,
      clock,
    });
    this.connector = new EntryConnector({
      nodeId: o.nodeId,
      routes: o.routes,
      opener: o.opener,
      exit: this.exit,
      logger,
      clock,
      ...(o.responseHeadTimeoutMs === undefined
        ? {}
        : { responseHeadTimeoutMs: o.responseHeadTimeoutMs }),
    });
    this.#httpListen = o.httpListen;
    let lane: SlowLane | undefined;
    if (o.slowLane && o.httpListen) {
      if (!(o.catalog instanceof OriginTable) || !(o.routes instanceof RouteTable))
        throw new RelayError(
          'ERR_CONFIG_INVALID',
          'slowLane: needs an OriginTable and a RouteTable (the lane copies them)',
        );
      const { acceptor: _a, acceptorNice: _n, ...entrySettings } = o.entry ?? {};
      lane = new SlowLane({
        nodeId: o.nodeId,
        catalog: o.catalog,
        routes: o.routes,
        opener: o.opener,
        log: logger.child({ [F.COMPONENT]: 'slow-lane', [F.NODE_ID]: o.nodeId }),
        debugHeaders: o.debugHeaders ?? false,
        responseHeadTimeoutMs: o.responseHeadTimeoutMs,
        entry: entrySettings,
        exit: o.exit ?? {},
        ...(o.entry?.maxConnections === undefined ? {} : { maxPending: o.entry.maxConnections }),
        logLevel: (logger as { level?: string }).level ?? 'info',
        ...o.slowLane,
      });
    }
    this.entry = o.httpListen
      ? new EntryServer({
          ...o.entry,
          nodeId: o.nodeId,
          catalog: o.catalog,
          connector: this.connector,
          logger,
          debugHeaders: o.debugHeaders ?? false,
          ...(lane ? { slowLane: lane } : {}),
        })
      : undefined;
    this.forwards = (o.forwards ?? []).map(
      (rule) => new ForwardServer({ rule, catalog: o.catalog, connector: this.connector, logger }),
    );
  }

  /** Binds the listeners; resolves with their addresses (port 0 picks one). */
  async start(): Promise<{ http: AddressInfo | undefined; forwards: AddressInfo[] }> {
    const http =
      this.entry && this.#httpListen
        ? await this.entry.listen(this.#httpListen.port, this.#httpListen.host)
        : undefined;
    const forwards: AddressInfo[] = [];
    for (const f of this.forwards) forwards.push(await f.listen());
    return { http, forwards };
  }

  /** Takes a stream a peer opened to this node (relay or exit). */
  handleStream(stream: HopStream): void {
    this.streams.handle(stream);
  }

  /** Stops accepting; lets live requests and streams finish; stops health checks. Idempotent. */
  async close(): Promise<void> {
    this.streams.close();
    await Promise.all([this.entry?.close(), ...this.forwards.map((f) => f.close())]);
    await this.exit.close();
  }

  /** Drops everything at once. Idempotent. */
  async destroy(err?: Error): Promise<void> {
    this.entry?.destroy();
    for (const f of this.forwards) f.destroy();
    this.streams.destroy();
    await this.exit.destroy(err);
  }
}
