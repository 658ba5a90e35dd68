import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { F, type Logger, RelayError, silentLogger, WireCode } from '@relaymesh/shared';
import type { EntryConnector, EntryFailure, OpenRequest } from '../entry-connector.ts';
import { LaneSorter } from '../lane/lane-sorter.ts';
import type { SlowLane, SlowLaneStats } from '../lane/slow-lane.ts';
import { resetStream, splice } from '../splice.ts';
import type { HopStream, Origin, OriginCatalog } from '../types.ts';
import { AcceptorProcess } from './acceptor.ts';
import { AdmissionGate, type AdmissionStats } from './admission.ts';
import { bareHost } from './headers.ts';
import {
  type ExchangeContext,
  originFor,
  parseTarget,
  proxyRequest,
  requestHeadFor,
  unknownHost,
} from './http-exchange.ts';
import { ParkedSources } from './parked-sources.ts';
import { sendError, sendRawError } from './responses.ts';
import { StallWatch } from './stall-watch.ts';

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
   * listens, connections come through {@link EntryServer.adopt}.
   * @default 'inline'
   */
  acceptor?: 'process' | 'inline' | 'lane';
  /**
   * The acceptor process's nice value: it runs below the entry's priority, so that on a
   * busy host a connect burst takes its CPU from the acceptor, not from the streams open
   * (docs/reliability.md "Slow clients"). 0 keeps the entry's. Throws ERR_CONFIG_INVALID
   * unless an integer 0-19. @default 10
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
   * so that the streams of other clients get the CPU first. Started when an address first
   * needs it, closed with this entry.
   */
  slowLane?: SlowLane;
  /**
   * Parked responses of one client address that send its connections to the slow lane.
   * Throws ERR_CONFIG_INVALID unless an integer >= 1. @default 64
   */
  slowLaneAfterParked?: number;
  /**
   * An address in the slow lane with no parked response (here or there) for this long comes
   * back. Throws ERR_CONFIG_INVALID unless an integer >= 0. @default 60000
   */
  slowLaneReleaseMs?: number;
  /** Requests in flight (pipelined) per client connection; more get 503. @default 8 */
  maxRequestsInFlightPerConnection?: number;
}

const UPGRADE_KEEP = new Set(['upgrade']);

/** Throws ERR_CONFIG_INVALID unless `value` is an integer ≥ 0. */
function nonNegativeInt(field: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 0)
    throw new RelayError('ERR_CONFIG_INVALID', `${field}: ${value} is not an integer >= 0`);
  return value;
}

/** CONNECT may reach a declared port of the origin; 80 also means its http upstreams. */
export function connectAllowed(origin: Origin, port: number): boolean {
  return origin.upstreams.some((u) => u.port === port || (port === 80 && u.scheme === 'http'));
}

/**
 * The entry role (`--http-listen`): an HTTP/1.1 server that is a reverse proxy by Host,
 * a forward proxy for absolute-form `http://` requests, a CONNECT tunnel to declared
 * origins, and passes WebSocket upgrades through. Strict parsing (no lenient mode, Host
 * required, CL+TE refused by Node's parser); never reaches anything undeclared.
 */
export class EntryServer {
  readonly #server: http.Server;
  readonly #ctx: ExchangeContext;
  readonly #log: Logger;
  readonly #maxInFlight: number;
  readonly #backlog: number;
  readonly #inFlight = new WeakMap<Socket, number>();
  readonly #raw = new Set<Duplex>();
  /** Requests being answered: a drain tells their clients `Connection: close`. */
  readonly #responses = new Set<ServerResponse>();
  readonly #gate: AdmissionGate | undefined;
  readonly #mode: 'process' | 'inline' | 'lane';
  readonly #maxConnections: number;
  readonly #acceptorNice: number;
  #acceptor: AcceptorProcess | undefined;
  readonly #lane: SlowLane | undefined;
  readonly #laneAfterParked: number;
  readonly #laneReleaseMs: number;
  #sorter: LaneSorter | undefined;
  /** Admits a connection handed over unread (slow lane fallback, lane mode). */
  #adopt: ((socket: Socket) => void) | undefined;
  /**
   * Acceptor process or lane: the client connections handed over and still open
   * (net.Server counts only those it accepted itself, for maxConnections and close()).
   */
  readonly #clients = new Set<Socket>();
  #drained: (() => void) | undefined;
  #closed = false;

  constructor(options: EntryServerOptions) {
    this.#log = (options.logger ?? silentLogger()).child({
      [F.COMPONENT]: 'entry',
      [F.NODE_ID]: options.nodeId,
    });
    const parkAfterMs = nonNegativeInt('parkAfterMs', options.parkAfterMs ?? 5_000);
    this.#ctx = {
      connector: options.connector,
      catalog: options.catalog,
      nodeId: options.nodeId,
      debugHeaders: options.debugHeaders ?? false,
      log: this.#log,
      sendTimeoutMs: nonNegativeInt('sendTimeoutMs', options.sendTimeoutMs ?? 60_000),
      stallWatch: new StallWatch({
        parkAfterMs,
        maxHeld: nonNegativeInt('maxHeldStalls', options.maxHeldStalls ?? 64),
      }),
      parkedSources: new ParkedSources({
        warnAt: nonNegativeInt('parkedPerSourceWarn', options.parkedPerSourceWarn ?? 256),
        onCrowded: ({ source, parked }) =>
          this.#log.warn(
            { [F.REMOTE]: source, parked },
            'one client address holds many parked responses',
          ),
      }),
    };
    this.#maxInFlight = options.maxRequestsInFlightPerConnection ?? 8;
    this.#backlog = nonNegativeInt('listenBacklog', options.listenBacklog ?? 4096);
    this.#server = http.createServer({
      insecureHTTPParser: false,
      requireHostHeader: true,
      maxHeaderSize: options.maxHeaderSize ?? 16 * 1024,
      headersTimeout: options.headersTimeoutMs ?? 20_000,
      requestTimeout: options.requestTimeoutMs ?? 300_000,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 5_000,
    });
    this.#maxConnections = options.maxConnections ?? 4096;
    this.#server.maxConnections = this.#maxConnections;
    const busyRate = nonNegativeInt('busyConnectionRate', options.busyConnectionRate ?? 100);
    const mode = options.acceptor ?? 'inline';
    if (mode !== 'process' && mode !== 'inline' && mode !== 'lane')
      throw new RelayError(
        'ERR_CONFIG_INVALID',
        `acceptor: ${String(mode)} is not process or inline`,
      );
    this.#mode = mode;
    this.#lane = options.slowLane;
    if (this.#lane && mode !== 'process')
      throw new RelayError('ERR_CONFIG_INVALID', 'slowLane: needs acceptor "process"');
    this.#laneAfterParked = nonNegativeInt(
      'slowLaneAfterParked',
      options.slowLaneAfterParked ?? 64,
    );
    if (this.#laneAfterParked < 1)
      throw new RelayError('ERR_CONFIG_INVALID', 'slowLaneAfterParked: 0 is not >= 1');
    this.#laneReleaseMs = nonNegativeInt('slowLaneReleaseMs', options.slowLaneReleaseMs ?? 60_000);
    this.#acceptorNice = nonNegativeInt('acceptorNice', options.acceptorNice ?? 10);
    if (this.#acceptorNice > 19)
      throw new RelayError('ERR_CONFIG_INVALID', `acceptorNice: ${this.#acceptorNice} is over 19`);
    if (mode !== 'inline' || busyRate > 0) {
      // The gate stands between accept and the http server's own connection listener.
      // Inline, accepted sockets stay paused (net.Server reads pauseOnConnect at each
      // accept) until the gate hands them over. With an acceptor process nothing listens
      // here: the acceptor holds the waiting ones, and the gate (on even at
      // busyConnectionRate 0, then always open) tells it when to hand them over.
      const [httpConnection, ...others] = this.#server.listeners('connection');
      if (typeof httpConnection !== 'function' || others.length > 0)
        throw new Error('http.Server no longer has exactly one connection listener');
      const toHttp = httpConnection as (s: Socket) => void;
      this.#server.removeListener('connection', toHttp);
      const server = this.#server;
      const inline = mode === 'inline';
      // Handed over unread (lane mode; the slow lane's fallback): like an inline accept.
      const adopt = (socket: Socket) => {
        this.#handedOver(socket, toHttp);
        socket.resume();
      };
      this.#adopt = adopt;
      const gate = new AdmissionGate({
        busyRate,
        admit: inline
          ? (socket) => {
              toHttp.call(server, socket);
              socket.resume();
            }
          : mode === 'lane'
            ? adopt
            : (socket) => this.#handedOver(socket, toHttp),
        ...(mode !== 'process'
          ? {}
          : {
              remote: {
                setOpen: (open: boolean) => this.#acceptor?.setOpen(open),
                credit: (n: number) => this.#acceptor?.credit(n),
              },
            }),
        // One pair of lines per episode: it ends only once the loop has been quiet.
        onThrottled: ({ rate }) =>
          this.#log.warn(
            { rate: Math.round(rate), busyConnectionRate: busyRate },
            'event loop saturated: new connections wait for admission',
          ),
        onOpen: ({ waited, maxWaitMs, durationMs }) =>
          this.#log.info(
            { waited, maxWaitMs: Math.round(maxWaitMs), durationMs: Math.round(durationMs) },
            'admission gate open again',
          ),
      });
      if (inline) {
        (this.#server as unknown as { pauseOnConnect: boolean }).pauseOnConnect = true;
        this.#server.on('connection', (socket: Socket) => gate.offer(socket));
      }
      this.#gate = gate;
    }
    this.#server.on('request', (req, res) => this.#onRequest(req, res));
    this.#server.on('connect', (req, socket, head) => {
      this.#track(socket);
      this.#onConnect(req, socket, head).catch((err) => this.#bug(err, socket));
    });
    this.#server.on('upgrade', (req, socket, head) => {
      this.#track(socket);
      this.#onUpgrade(req, socket, head).catch((err) => this.#bug(err, socket));
    });
    this.#server.on('clientError', (err, socket) => this.#onClientError(err, socket));
  }

  /**
   * Stalled responses now held (watched, not parked yet), parked so far (early: over
   * `maxHeldStalls`), and parked now, with how many client addresses hold those.
   */
  get stalls(): {
    held: number;
    parked: number;
    parkedEarly: number;
    parkedNow: number;
    parkedSources: number;
  } {
    const w = this.#ctx.stallWatch;
    const p = this.#ctx.parkedSources;
    return {
      held: w.size,
      parked: w.parked,
      parkedEarly: w.parkedEarly,
      parkedNow: p.total,
      parkedSources: p.sources,
    };
  }

  /** Parked responses now of one client address (0 when none). */
  parkedFrom(source: string): number {
    return this.#ctx.parkedSources.of(source);
  }

  /** The `n` client addresses with the most parked responses now, most first. */
  parkedBySource(n = 10): Array<{ source: string; parked: number }> {
    return this.#ctx.parkedSources.top(n);
  }

  /** The admission gate's counters (undefined when it is off: `busyConnectionRate` 0). */
  get admission(): AdmissionStats | undefined {
    return this.#gate?.stats;
  }

  /** Client connections handed over and open (acceptor process, slow lane). */
  get clients(): number {
    return this.#clients.size;
  }

  /** The slow lane's counters, and the client addresses sent there now. */
  get slowLane(): (SlowLaneStats & { sources: string[] }) | undefined {
    if (!this.#lane) return undefined;
    return { ...this.#lane.stats, sources: this.#sorter?.sources ?? [] };
  }

  /**
   * Lane mode: takes a client connection handed over unread (created with `pauseOnCreate`);
   * the admission gate lets it in.
   */
  adopt(socket: Socket): void {
    if (this.#mode !== 'lane' || !this.#gate) {
      socket.destroy();
      throw new Error('EntryServer.adopt: only in lane mode');
    }
    this.#gate.offer(socket);
  }

  /** Starts listening; resolves with the bound address (port 0 picks one). */
  listen(port: number, host = '127.0.0.1'): Promise<AddressInfo> {
    if (this.#mode === 'lane')
      return Promise.reject(new Error('EntryServer: a lane entry does not listen'));
    if (this.#mode === 'process') return this.#listenInAcceptor(port, host);
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ port, host, backlog: this.#backlog }, () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  /** A connection the acceptor process handed over, let in by the gate. */
  #handedOver(socket: Socket, toHttp: (s: Socket) => void): void {
    if (this.#closed || this.#clients.size >= this.#maxConnections) {
      socket.destroy();
      return;
    }
    this.#clients.add(socket);
    // net.Server sets TCP_NODELAY at accept (http.Server's noDelay: true); a socket that
    // came over IPC has Nagle on, and each response's last segment then waited for the
    // client's delayed ACK: ~40 ms per response, measured.
    socket.setNoDelay(true);
    socket.once('close', () => {
      this.#clients.delete(socket);
      if (this.#clients.size === 0) this.#drained?.();
    });
    toHttp.call(this.#server, socket);
  }

  async #listenInAcceptor(port: number, host: string): Promise<AddressInfo> {
    const gate = this.#gate as AdmissionGate;
    const acceptor = new AcceptorProcess({
      host,
      port,
      backlog: this.#backlog,
      maxWaiting: this.#maxConnections,
      nice: this.#acceptorNice,
      log: this.#log,
      onSocket: (socket, e) => gate.arrived(socket, e),
      onWaiting: (n, accepted) => gate.waiting(n, accepted),
      onRestart: () => gate.remoteReset(),
      onLaneHandle: (handle) => this.#toLane(handle),
    });
    this.#acceptor = acceptor;
    const address = await acceptor.start();
    if (this.#lane && !this.#closed)
      this.#sorter = new LaneSorter({
        lane: this.#lane,
        parked: this.#ctx.parkedSources,
        route: (source, toLane) => acceptor.lane(source, toLane),
        afterParked: this.#laneAfterParked,
        releaseMs: this.#laneReleaseMs,
        log: this.#log,
      });
    // http.Server starts checking headersTimeout and requestTimeout on 'listening'; its own
    // listener never listens here.
    this.#server.emit('listening');
    return address;
  }

  /** A connection the acceptor sorted into the slow lane: there, or here if no lane serves. */
  #toLane(handle: unknown): void {
    const here = (h: unknown) => {
      const socket = new net.Socket({
        handle: h,
        readable: true,
        writable: true,
        pauseOnCreate: true,
      } as net.SocketConstructorOpts);
      if (this.#closed || !this.#adopt) socket.destroy();
      else this.#adopt(socket);
    };
    if (!this.#lane?.hand(handle as { close(): void }, here)) here(handle);
  }

  /** The acceptor process's pid (`acceptor: 'process'`). */
  get acceptorPid(): number | undefined {
    return this.#acceptor?.pid;
  }

  #onRequest(req: IncomingMessage, res: ServerResponse): void {
    this.#responses.add(res);
    const socket = req.socket;
    res.on('close', () => {
      this.#responses.delete(res);
      this.#inFlight.set(socket, (this.#inFlight.get(socket) ?? 1) - 1);
    });
    if (this.#closed) this.#lastOnConnection(res);
    const n = (this.#inFlight.get(socket) ?? 0) + 1;
    this.#inFlight.set(socket, n);
    if (n > this.#maxInFlight) {
      const f = {
        status: 503,
        code: 'ERR_PROXY_BAD_REQUEST',
        message: 'too many pipelined requests on one connection',
      };
      this.#log.warn({ status: 503, [F.CODE]: f.code }, 'request failed');
      sendError(res, f);
      return;
    }
    proxyRequest(this.#ctx, req, res).catch((err) => this.#bug(err, res));
  }

  /** CONNECT and upgrade sockets leave the http server's bookkeeping: destroy() needs them. */
  #track(socket: Duplex): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    this.#raw.add(socket);
    socket.once('close', () => this.#raw.delete(socket));
  }

  /** Handlers never throw: an unexpected failure is logged and the client connection dropped. */
  #bug(err: unknown, target: { destroy(): unknown }): void {
    this.#log.error({ err }, 'entry handler failed');
    target.destroy();
  }

  #rawFail(socket: Duplex, req: IncomingMessage, f: EntryFailure, path?: string[]): void {
    this.#log.warn(
      { status: f.status, [F.CODE]: f.code, reason: f.message, method: req.method, url: req.url },
      'request failed',
    );
    sendRawError(socket, f, this.#ctx.debugHeaders ? path : undefined);
  }

  /**
   * Opens the stream (retrying on another path while that is safe: nothing of the client's
   * went out before the exit's answer), waits for the exit's 200, then splices socket and
   * stream.
   */
  async #tunnel(
    req: IncomingMessage,
    socket: Duplex,
    head: Buffer,
    open: OpenRequest,
    established?: string,
  ): Promise<void> {
    const { entry, answer } = await this.#ctx.connector.openRaw(open, socket);
    if (!entry) return this.#rawFail(socket, req, answer);
    const { stream, path } = entry;
    if (!('v' in answer)) return this.#rawFail(socket, req, answer, path);
    if (answer.error) {
      resetStream(stream, WireCode.CANCEL);
      return this.#rawFail(
        socket,
        req,
        { status: answer.status, code: answer.error.code, message: answer.error.message },
        path,
      );
    }
    if (socket.destroyed) return resetStream(stream, WireCode.CANCEL);
    if (established) socket.write(established);
    if (head.length > 0) stream.write(head);
    await splice(socket as HopStream, stream);
  }

  async #onConnect(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    (socket as Socket).allowHalfOpen = true;
    const m = /^([A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):(\d{1,5})$/.exec(req.url ?? '');
    const port = Number(m?.[2]);
    if (!m || port < 1 || port > 65535) {
      return this.#rawFail(socket, req, {
        status: 400,
        code: 'ERR_PROXY_BAD_REQUEST',
        message: 'CONNECT target is not host:port',
      });
    }
    const host = bareHost(m[1] as string);
    const origin = this.#ctx.catalog.byHost(host);
    if (!origin) return this.#rawFail(socket, req, unknownHost(host));
    if (!connectAllowed(origin, port)) {
      const message = `port ${port} is not declared for origin ${origin.name}`;
      return this.#rawFail(socket, req, { status: 403, code: 'ERR_PROXY_NOT_DECLARED', message });
    }
    const established = 'HTTP/1.1 200 Connection Established\r\n\r\n';
    await this.#tunnel(req, socket, head, { origin, kind: 'tcp', port }, established);
  }

  async #onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    socket.on('error', () => {});
    (socket as Socket).allowHalfOpen = true;
    if (req.headers.upgrade?.toLowerCase() !== 'websocket' || req.method !== 'GET') {
      return this.#rawFail(socket, req, {
        status: 400,
        code: 'ERR_PROXY_BAD_REQUEST',
        message: 'only websocket upgrades are proxied',
      });
    }
    const t = parseTarget(req);
    if ('status' in t) return this.#rawFail(socket, req, t);
    const origin = originFor(this.#ctx.catalog, t.authority);
    if ('status' in origin) return this.#rawFail(socket, req, origin);
    const requestHead = requestHeadFor(req, t, this.#ctx.nodeId, UPGRADE_KEEP);
    requestHead.headers.push(['Connection', 'Upgrade']);
    await this.#tunnel(req, socket, head, { origin, kind: 'upgrade', head: requestHead });
  }

  #onClientError(err: Error & { code?: string }, socket: Duplex): void {
    this.#log.debug({ err, [F.CODE]: err.code }, 'malformed client request refused');
    if (!socket.writable || err.code === 'ECONNRESET') return void socket.destroy();
    const status =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? 431
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 408
          : 400;
    const body = `relaymesh: malformed request refused (${err.code ?? 'parse error'})\n`;
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\ncontent-type: text/plain\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    );
  }

  /**
   * Draining: this response is the connection's last. A head not yet sent says
   * `Connection: close` (Node then closes after it); after a head already sent, the
   * connection is closed once idle, so a keep-alive client cannot start another request.
   */
  #lastOnConnection(res: ServerResponse): void {
    if (!res.headersSent) res.shouldKeepAlive = false;
    res.once('finish', () => setImmediate(() => this.#server.closeIdleConnections()).unref());
  }

  /**
   * Drain: closes the listener (new clients go to another entry), closes idle keep-alive
   * connections, and lets requests and tunnels in progress finish, each answered with
   * `Connection: close`. Resolves once every client connection is gone. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    for (const res of this.#responses) this.#lastOnConnection(res);
    this.#sorter?.stop();
    if (this.#mode !== 'inline') {
      return new Promise((resolve) => {
        // The acceptor stops listening and closes what waits there (it sent nothing here);
        // the lane drains like this entry.
        const stopped = Promise.all([this.#acceptor?.close(), this.#lane?.close()]);
        this.#gate?.close();
        const drained = new Promise<void>((r) => {
          if (this.#clients.size === 0) r();
          else this.#drained = r;
        });
        this.#server.closeIdleConnections();
        void Promise.all([stopped, drained]).then(() => this.#server.close(() => resolve()));
      });
    }
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      // Waiting connections never sent a request here: they go, the client can retry.
      this.#gate?.close();
      this.#server.closeIdleConnections();
    });
  }

  /** Closes every client connection at once. Idempotent. */
  destroy(): void {
    this.#closed = true;
    this.#sorter?.stop();
    void this.#acceptor?.close();
    this.#lane?.destroy();
    this.#server.close();
    this.#gate?.close();
    this.#server.closeAllConnections();
    for (const s of this.#clients) s.destroy();
    for (const s of this.#raw) s.destroy();
    this.#raw.clear();
  }
}
