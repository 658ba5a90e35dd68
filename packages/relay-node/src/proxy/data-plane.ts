import type { AddressInfo } from 'node:net';
import { type Clock, type Dialer, type Logger, silentLogger, systemClock } from '@relaymesh/shared';
import { EntryConnector } from './entry-connector.ts';
import { ExitHandler, type ExitHandlerOptions } from './exit/exit-handler.ts';
import { EntryServer, type EntryServerOptions } from './http/entry-server.ts';
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
  entry?: Omit<EntryServerOptions, 'nodeId' | 'catalog' | 'connector' | 'logger' | 'debugHeaders'>;
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
    this.entry = o.httpListen
      ? new EntryServer({
          ...o.entry,
          nodeId: o.nodeId,
          catalog: o.catalog,
          connector: this.connector,
          logger,
          debugHeaders: o.debugHeaders ?? false,
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
