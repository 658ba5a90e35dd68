import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { F, type Logger, RelayError, silentLogger, WireCode } from '@relaymesh/shared';
import type { EntryFailure, OpenRequest } from '../entry-connector.ts';
import { LaneSorter } from '../lane/lane-sorter.ts';
import type { SlowLane, SlowLaneStats } from '../lane/slow-lane.ts';
import { resetStream, splice } from '../splice.ts';
import type { HopStream, Origin } from '../types.ts';
import { AcceptorProcess } from './acceptor.ts';
import { AdmissionGate, type AdmissionStats } from './admission.ts';
import type { EntryServerOptions } from './entry-options.ts';
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

export type { EntryServerOptions } from './entry-options.ts';

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
  readonly #laneAfterWaiting: number;
  readonly #laneAfterConnects: number;
  readonly #laneStart: 'listen' | 'burst';
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
    this.#laneAfterWaiting = nonNegativeInt(
      'slowLaneAfterWaiting',
      options.slowLaneAfterWaiting ?? 256,
    );
    this.#laneAfterConnects = nonNegativeInt(
      'slowLaneAfterConnects',
      options.slowLaneAfterConnects ?? 256,
    );
    const laneStart = options.slowLaneStart ?? 'burst';
    if (laneStart !== 'listen' && laneStart !== 'burst')
      throw new RelayError(
        'ERR_CONFIG_INVALID',
        `slowLaneStart: ${String(laneStart)} is not listen or burst`,
      );
    this.#laneStart = laneStart;
    this.#laneReleaseMs = nonNegativeInt('slowLaneReleaseMs', options.slowLaneReleaseMs ?? 60_000);
    this.#acceptorNice = nonNegativeInt('acceptorNice', options.acceptorNice ?? 5);
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
        onThrottled: ({ rate }) => {
          this.#log.warn(
            { rate: Math.round(rate), busyConnectionRate: busyRate },
            'event loop saturated: new connections wait for admission',
          );
          // A burst: if slow clients are in it, the lane will be wanted within seconds,
          // and loading it at its low priority on a busy host takes seconds too.
          this.#sorter?.warm('event loop saturated');
        },
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
      // Counted only for the lane: without one, nothing would act on the reports.
      floodConnects: this.#lane ? this.#laneAfterConnects : 0,
      log: this.#log,
      onSocket: (socket, e) => gate.arrived(socket, e),
      onWaiting: (n, accepted, top) => {
        gate.waiting(n, accepted);
        if (top) this.#sorter?.waiting(top.source, top.n);
      },
      onConnects: (source, n) => this.#sorter?.connects(source, n),
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
        afterWaiting: this.#laneAfterWaiting,
        afterConnects: this.#laneAfterConnects,
        releaseMs: this.#laneReleaseMs,
        log: this.#log,
      });
    if (this.#laneStart === 'listen') this.#sorter?.warm('started with the entry');
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
