import type { ClientRequest, IncomingMessage } from 'node:http';
import { isIP, type Socket } from 'node:net';
import tls from 'node:tls';
import {
  type Clock,
  DEFAULT_DIAL_TIMEOUT_MS,
  DEFAULT_HELLO_TIMEOUT_MS,
  type Dialer,
  DirectDialer,
  ERROR_CODES,
  type ErrorCode,
  F,
  isRelayError,
  type Logger,
  RelayError,
  silentLogger,
  systemClock,
  type VersionRange,
  WS_SUBPROTOCOL,
} from '@relaymesh/shared';
import WebSocket from 'ws';
import { type MuxConfig, resolveMuxConfig } from '../mux/config.ts';
import { errorFromWs } from './close-codes.ts';
import { checkIdentity, type HelloResult, offerHello } from './handshake.ts';
import { DEFAULT_TUNNEL_MAX_PAYLOAD, REJECT_HEADER } from './listener.ts';
import { Tunnel } from './tunnel.ts';
import type { WsTransportOptions } from './ws-transport.ts';

export interface TunnelDialerOptions {
  nodeId: string;
  /** Sent in the hello so the listener knows where we are. */
  region?: string;
  /** The cluster token. Never sent, never logged. */
  token: string | Buffer;
  /** Every outbound TCP connection goes through it (direct or egress proxy). @default DirectDialer */
  dialer?: Dialer;
  /** TCP connect (or proxy CONNECT) plus the HTTP upgrade. @default 10000 */
  connectTimeoutMs?: number;
  /** Hello deadline after the upgrade: ERR_AUTH_TIMEOUT. @default 10000 */
  handshakeTimeoutMs?: number;
  /** @default SUPPORTED_VERSIONS */
  versions?: VersionRange;
  /** ws maxPayload. @default 128 KiB */
  maxPayload?: number;
  transport?: Omit<WsTransportOptions, 'description' | 'clock' | 'masking'>;
  mux?: Partial<MuxConfig>;
  /**
   * For `wss://` peers: trust anchors (`ca`, e.g. the cluster's own CA) and the like.
   * The listener's certificate is always verified against the URL's host.
   */
  tls?: Pick<tls.ConnectionOptions, 'ca' | 'cert' | 'key' | 'servername'>;
  /**
   * Use an all-zero WebSocket mask on `wss://` tunnels, so ws skips masking (915 vs 612
   * MB/s dialer-to-listener without TLS, research/transport.md section 4.1). Masking
   * protects intermediaries from browser-made traffic (RFC 6455 section 5.3); inside TLS
   * between two relaymesh nodes there is none. Ignored on plain `ws://`. @default false
   */
  zeroMaskOverTls?: boolean;
  logger?: Logger;
  clock?: Clock;
}

export interface DialTunnelOptions {
  /** The node id the coordinator says lives at `url`; anyone else is ERR_TUNNEL_PEER_MISMATCH. */
  expectedPeerNodeId?: string;
  signal?: AbortSignal;
}

interface TunnelTarget {
  host: string;
  port: number;
  href: string;
  secure: boolean;
}

/** `ws[s]://host:port[/path]` → where to connect. Throws ERR_CONFIG_INVALID. */
function parseTunnelUrl(url: string): TunnelTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch (err) {
    throw new RelayError('ERR_CONFIG_INVALID', `tunnel url ${JSON.stringify(url)} is not a url`, {
      cause: err,
    });
  }
  if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new RelayError('ERR_CONFIG_INVALID', `tunnel url ${url}: must be ws:// or wss://`);
  }
  const secure = u.protocol === 'wss:';
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  const port = u.port === '' ? (secure ? 443 : 80) : Number(u.port);
  return { host, port, href: u.href, secure };
}

/** The RelayError for an HTTP answer instead of 101: the listener's code header when known. */
function upgradeRejected(res: IncomingMessage, href: string): RelayError {
  const named = String(res.headers[REJECT_HEADER] ?? '');
  const code: ErrorCode =
    named in ERROR_CODES ? (named as ErrorCode) : 'ERR_TUNNEL_UPGRADE_REJECTED';
  return new RelayError(code, `${href} refused the upgrade with http ${res.statusCode}`, {
    details: { status: res.statusCode },
  });
}

/**
 * Opens tunnels to peers: TCP through the shared {@link Dialer}, the WebSocket upgrade
 * (`relaymux.1`, no compression), the dialer side of the hello, then a mux Session in
 * the client role. One attempt per `dial`; {@link PersistentTunnel} adds reconnects.
 */
export class TunnelDialer {
  readonly #opts: TunnelDialerOptions;
  readonly #dialer: Dialer;
  readonly #log: Logger;
  readonly #clock: Clock;

  /** @throws RelayError ERR_CONFIG_INVALID for a bad node id, region, mux config or an empty token. */
  constructor(options: TunnelDialerOptions) {
    if (options.token.length === 0) {
      throw new RelayError('ERR_CONFIG_INVALID', 'tunnel dialer token is empty');
    }
    checkIdentity(options.nodeId, options.region);
    if (options.mux) resolveMuxConfig(options.mux);
    this.#opts = options;
    this.#dialer = options.dialer ?? new DirectDialer();
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.logger ?? silentLogger()).child({
      [F.COMPONENT]: 'tunnel-dialer',
      [F.NODE_ID]: options.nodeId,
    });
  }

  get logger(): Logger {
    return this.#log;
  }

  get clock(): Clock {
    return this.#clock;
  }

  /**
   * Connects, authenticates and returns a live tunnel. Rejects with a RelayError: the
   * dialer's ERR_DIAL_*, ERR_TUNNEL_UPGRADE_REJECTED (or the code the listener named),
   * ERR_TUNNEL_CONNECT, or any hello failure (ERR_AUTH_FAILED, ERR_AUTH_TIMEOUT,
   * ERR_PROTOCOL_BAD_VERSION, ERR_TUNNEL_PEER_MISMATCH, ...).
   */
  async dial(url: string, options: DialTunnelOptions = {}): Promise<Tunnel> {
    const target = parseTunnelUrl(url);
    const o = this.#opts;
    const remote = `${target.host}:${target.port}`;
    // Started inside ws's 'open' event: the CHALLENGE may sit in the same socket read as
    // the 101 response and is emitted before any promise continuation could listen.
    const hello = await this.#upgrade(target, options.signal, (ws) =>
      offerHello(ws, {
        nodeId: o.nodeId,
        ...(o.region !== undefined ? { region: o.region } : {}),
        token: o.token,
        ...(o.versions ? { versions: o.versions } : {}),
        ...(options.expectedPeerNodeId !== undefined
          ? { expectedPeerNodeId: options.expectedPeerNodeId }
          : {}),
        timeoutMs: o.handshakeTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS,
        clock: this.#clock,
        transport: {
          ...o.transport,
          clock: this.#clock,
          description: `ws ${remote}`,
          // Our frames are masked by WsTransport, ws's own (close, pong) by generateMask.
          masking: target.secure && o.zeroMaskOverTls === true ? 'zero' : 'random',
        },
      }),
    );
    if (options.signal?.aborted) {
      hello.transport.destroy();
      throw new RelayError('ERR_TUNNEL_CONNECT', `dial to ${target.href} aborted`);
    }
    try {
      return new Tunnel(hello, {
        role: 'client',
        logger: this.#log,
        clock: this.#clock,
        ...(o.mux ? { mux: o.mux } : {}),
      });
    } catch (err) {
      const e = new RelayError('ERR_INTERNAL', 'could not start the tunnel session', {
        cause: err,
      });
      hello.transport.fail(e);
      throw e;
    }
  }

  /** TLS over the dialed socket (which may run through an egress proxy). */
  #startTls(
    socket: Socket,
    target: TunnelTarget,
    timeoutMs: number,
    cb: (err: Error | null, socket?: Socket) => void,
  ): void {
    const o = this.#opts.tls ?? {};
    const secure = tls.connect({
      ...o,
      socket,
      // Identity is checked against the URL's host, not the socket's (maybe a proxy).
      host: target.host,
      ...(o.servername === undefined && isIP(target.host) === 0 ? { servername: target.host } : {}),
      ALPNProtocols: ['http/1.1'],
    });
    let done = false;
    const fail = (err: Error) => {
      if (done) return;
      done = true;
      this.#clock.clearTimeout(timer);
      secure.destroy();
      socket.destroy();
      cb(
        new RelayError('ERR_TUNNEL_CONNECT', `tls to ${target.href} failed: ${err.message}`, {
          cause: err,
        }),
      );
    };
    const timer = this.#clock.setTimeout(
      () => fail(new Error(`handshake not done within ${timeoutMs} ms`)),
      timeoutMs,
    );
    secure.once('error', fail);
    secure.once('secureConnect', () => {
      if (done) return;
      done = true;
      this.#clock.clearTimeout(timer);
      secure.off('error', fail);
      cb(null, secure);
    });
  }

  /** TCP via the Dialer, the HTTP upgrade, then `onOpen` (the hello) on the open WebSocket. */
  #upgrade(
    target: TunnelTarget,
    signal: AbortSignal | undefined,
    onOpen: (ws: WebSocket) => Promise<HelloResult>,
  ): Promise<HelloResult> {
    const timeoutMs = this.#opts.connectTimeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS;
    const abort = new AbortController();
    const onAbort = () => abort.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    // ws hands this to http.request: the callback form lets the connection be asynchronous.
    const createConnection = (
      _opts: unknown,
      cb: (err: Error | null, socket?: Socket) => void,
    ): undefined => {
      this.#dialer
        .dial({ host: target.host, port: target.port }, { timeoutMs, signal: abort.signal })
        .then(
          (socket) => {
            if (abort.signal.aborted) {
              socket.destroy();
              return;
            }
            socket.setKeepAlive(true, 10_000);
            if (!target.secure) cb(null, socket);
            else this.#startTls(socket, target, timeoutMs, cb);
          },
          (err: Error) => cb(err),
        );
      return undefined;
    };
    const ws = new WebSocket(target.href, WS_SUBPROTOCOL, {
      perMessageDeflate: false,
      maxPayload: this.#opts.maxPayload ?? DEFAULT_TUNNEL_MAX_PAYLOAD,
      handshakeTimeout: timeoutMs,
      followRedirects: false,
      ...(target.secure && this.#opts.zeroMaskOverTls === true
        ? { generateMask: (mask: Buffer) => mask.fill(0) }
        : {}),
      createConnection: createConnection as unknown as WebSocket.ClientOptions['createConnection'],
    });
    return new Promise<HelloResult>((resolve, reject) => {
      let settled = false;
      const settle = (err?: RelayError) => {
        if (settled) return;
        settled = true;
        ws.off('open', opened);
        if (err === undefined) {
          // An abort during the hello cuts the socket; the hello then fails.
          resolve(onOpen(ws).finally(() => signal?.removeEventListener('abort', onAbort)));
          return;
        }
        signal?.removeEventListener('abort', onAbort);
        abort.abort(err);
        ws.on('error', () => {}); // terminate() while CONNECTING emits one
        ws.terminate();
        reject(err);
      };
      const opened = () => settle();
      ws.once('open', opened);
      ws.on('unexpected-response', (_req: ClientRequest, res: IncomingMessage) => {
        res.resume();
        settle(upgradeRejected(res, target.href));
      });
      ws.once('error', (err: Error) =>
        settle(
          isRelayError(err)
            ? (err as RelayError)
            : new RelayError('ERR_TUNNEL_CONNECT', `${target.href}: ${errorFromWs(err).message}`, {
                cause: err,
              }),
        ),
      );
      ws.once('close', () =>
        settle(new RelayError('ERR_TUNNEL_CONNECT', `${target.href} closed during the upgrade`)),
      );
      abort.signal.addEventListener(
        'abort',
        () => {
          if (settled) ws.terminate();
          else settle(new RelayError('ERR_TUNNEL_CONNECT', `dial to ${target.href} aborted`));
        },
        { once: true },
      );
    });
  }
}
