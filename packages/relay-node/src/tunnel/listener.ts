import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import {
  type Clock,
  DEFAULT_HELLO_TIMEOUT_MS,
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
import type WebSocket from 'ws';
import { WebSocketServer } from 'ws';
import { type MuxConfig, resolveMuxConfig } from '../mux/config.ts';
import { acceptHello, checkIdentity } from './handshake.ts';
import { Tunnel } from './tunnel.ts';
import type { WsTransportOptions } from './ws-transport.ts';

/** Largest WebSocket message accepted: a 64 KiB frame plus headroom; anything above is 1009. */
export const DEFAULT_TUNNEL_MAX_PAYLOAD = 128 * 1024;
export const DEFAULT_MAX_PENDING_HANDSHAKES = 64;
/** Response header naming the RelayError code when an upgrade is refused with an HTTP status. */
export const REJECT_HEADER = 'x-relaymesh-error';

export interface TunnelListenerOptions {
  nodeId: string;
  region?: string;
  /** The cluster token. Never sent, never logged. */
  token: string | Buffer;
  /** Bind address when the listener owns its server. @default '127.0.0.1' */
  host?: string;
  /** @default 0 (any free port; read `address` after `listen()`) */
  port?: number;
  /** Attach to this server's 'upgrade' events instead of owning one (the caller listens). */
  server?: http.Server;
  /**
   * Serve `wss://` (key and cert at least) on the owned server. Without it the listener
   * speaks plain `ws://`: use it only on a private network or behind a TLS terminator.
   */
  tls?: https.ServerOptions;
  /** Only upgrades to this path are tunnels; others get 404. @default any path */
  path?: string;
  /** @default SUPPORTED_VERSIONS */
  versions?: VersionRange;
  /** Hello deadline per connection: ERR_AUTH_TIMEOUT. @default 10000 */
  handshakeTimeoutMs?: number;
  /** Upgrades above this many unfinished hellos get 503 ERR_TUNNEL_HANDSHAKE_LIMIT. @default 64 */
  maxPendingHandshakes?: number;
  /** ws maxPayload. @default 128 KiB */
  maxPayload?: number;
  transport?: Omit<WsTransportOptions, 'description' | 'clock' | 'masking'>;
  mux?: Partial<MuxConfig>;
  logger?: Logger;
  clock?: Clock;
}

/**
 * Accepts tunnels: a WebSocket server (`perMessageDeflate: false`, `maxPayload` 128 KiB,
 * subprotocol `relaymux.1` required) that runs the listener side of the hello on each
 * connection and then starts a mux Session in the server role.
 *
 * One tunnel per peer node id: a peer that connects again (it reconnected after a network
 * failure we may not have noticed yet) replaces its old tunnel, which is closed with
 * ERR_TUNNEL_REPLACED (close code 4001). The newest tunnel is the one whose hello proved
 * the token most recently, and the dialer has already moved to it. Two nodes configured
 * with the same id show up as repeated ERR_TUNNEL_REPLACED lines.
 *
 * Events: `'tunnel'` (Tunnel), `'rejected'` (RelayError, remote "ip:port"): a failed
 * upgrade or hello; one warn line each. Each failure closes only its own connection.
 */
export class TunnelListener extends EventEmitter {
  readonly #opts: TunnelListenerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #wss: WebSocketServer;
  readonly #server: http.Server;
  readonly #ownsServer: boolean;
  readonly #tunnels = new Map<string, Tunnel>();
  readonly #handshaking = new Set<WebSocket>();
  #pending = 0;
  #closing = false;
  readonly #onUpgradeBound = (req: http.IncomingMessage, socket: Duplex, head: Buffer) =>
    this.#onUpgrade(req, socket, head);

  /** @throws RelayError ERR_CONFIG_INVALID for a bad node id, region, mux config or an empty token. */
  constructor(options: TunnelListenerOptions) {
    super();
    if (options.token.length === 0) {
      throw new RelayError('ERR_CONFIG_INVALID', 'tunnel listener token is empty');
    }
    checkIdentity(options.nodeId, options.region);
    if (options.mux) resolveMuxConfig(options.mux);
    this.#opts = options;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.logger ?? silentLogger()).child({
      [F.COMPONENT]: 'tunnel-listener',
      [F.NODE_ID]: options.nodeId,
    });
    this.#wss = new WebSocketServer({
      noServer: true,
      perMessageDeflate: false,
      maxPayload: options.maxPayload ?? DEFAULT_TUNNEL_MAX_PAYLOAD,
      clientTracking: false,
      handleProtocols: (protocols) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
    });
    this.#ownsServer = options.server === undefined;
    const plainHttp = (_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(426, { 'content-type': 'text/plain', upgrade: 'websocket' });
      res.end('relaymux tunnel endpoint: websocket upgrade required\n');
    };
    this.#server =
      options.server ??
      (options.tls
        ? https.createServer(
            // A TLS handshake gets the same deadline as the hello, not https' 120 s.
            {
              handshakeTimeout: options.handshakeTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS,
              ...options.tls,
            },
            plainHttp,
          )
        : http.createServer(plainHttp));
    this.#server.on('tlsClientError', (err: Error) =>
      this.#log.debug({ err: err.message }, 'tls handshake failed'),
    );
    if (this.#ownsServer) {
      // A client that never finishes its upgrade request is cut like a silent hello
      // (Node checks these every connectionsCheckingInterval, 30 s by default).
      const ms = options.handshakeTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS;
      this.#server.requestTimeout = ms;
      this.#server.headersTimeout = ms;
    }
    this.#server.on('upgrade', this.#onUpgradeBound);
  }

  /** Starts listening (owned server only). Resolves with the bound address. */
  listen(): Promise<AddressInfo> {
    if (!this.#ownsServer) {
      return Promise.reject(
        new RelayError('ERR_INTERNAL', 'listen() on a listener attached to a server'),
      );
    }
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.#opts.port ?? 0, this.#opts.host ?? '127.0.0.1', () => {
        this.#server.off('error', reject);
        const addr = this.address!;
        this.#log.info({ host: addr.address, port: addr.port }, 'tunnel listener up');
        resolve(addr);
      });
    });
  }

  get address(): AddressInfo | undefined {
    const a = this.#server.address();
    return a !== null && typeof a === 'object' ? a : undefined;
  }

  /** `ws://host:port` (`wss://` with `tls`) for peers to dial (the bound address). */
  get url(): string {
    const a = this.address;
    if (!a) throw new RelayError('ERR_CLOSED', 'tunnel listener is not listening');
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    const scheme = this.#server instanceof https.Server ? 'wss' : 'ws';
    return `${scheme}://${host}:${a.port}`;
  }

  /** Live tunnels by peer node id. */
  get tunnels(): ReadonlyMap<string, Tunnel> {
    return this.#tunnels;
  }

  /** Connections whose hello has not finished. */
  get pendingHandshakes(): number {
    return this.#pending;
  }

  /**
   * Stops accepting, cuts unfinished hellos, closes every tunnel gracefully (GO_AWAY, the
   * mux close timeout bounds the wait), then closes the owned server. Idempotent.
   */
  async close(): Promise<void> {
    this.#stopAccepting();
    await Promise.all([...this.#tunnels.values()].map((t) => t.close().catch(() => {})));
    await this.#closeServer();
  }

  /** Immediate: every tunnel and connection is destroyed. Idempotent. */
  destroy(err?: Error): void {
    this.#stopAccepting();
    for (const t of this.#tunnels.values()) t.destroy(err);
    if (this.#ownsServer) {
      this.#server.close();
      this.#server.closeAllConnections();
    }
  }

  #stopAccepting(): void {
    if (this.#closing) return;
    this.#closing = true;
    this.#server.off('upgrade', this.#onUpgradeBound);
    for (const ws of this.#handshaking) ws.terminate();
    this.#handshaking.clear();
  }

  #closeServer(): Promise<void> {
    if (!this.#ownsServer || !this.#server.listening) return Promise.resolve();
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeIdleConnections();
    });
  }

  #onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const remote = `${req.socket.remoteAddress}:${req.socket.remotePort}`;
    socket.on('error', () => {}); // a reset during the upgrade is not our crash
    const path = this.#opts.path;
    if (path !== undefined && (req.url ?? '/').split('?')[0] !== path) {
      this.#refuse(socket, remote, 404, 'ERR_TUNNEL_UPGRADE_REJECTED', `no tunnel at ${req.url}`);
      return;
    }
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((s) => s.trim());
    if (!offered.includes(WS_SUBPROTOCOL)) {
      const msg = `subprotocol ${WS_SUBPROTOCOL} required, offered ${JSON.stringify(offered.join(',').slice(0, 60))}`;
      this.#refuse(socket, remote, 400, 'ERR_PROTOCOL_BAD_VERSION', msg);
      return;
    }
    const max = this.#opts.maxPendingHandshakes ?? DEFAULT_MAX_PENDING_HANDSHAKES;
    if (this.#pending >= max) {
      this.#refuse(socket, remote, 503, 'ERR_TUNNEL_HANDSHAKE_LIMIT', `${max} hellos pending`);
      return;
    }
    // Counted from the upgrade until the hello settles or the socket closes, whichever first.
    this.#pending++;
    let counted = true;
    const release = () => {
      if (counted) this.#pending--;
      counted = false;
    };
    socket.once('close', release);
    this.#wss.handleUpgrade(req, socket, head, (ws) =>
      this.#onConnection(ws, req, remote, release),
    );
  }

  #onConnection(
    ws: WebSocket,
    req: http.IncomingMessage,
    remote: string,
    release: () => void,
  ): void {
    req.socket.setKeepAlive(true, 10_000);
    this.#handshaking.add(ws);
    const o = this.#opts;
    acceptHello(ws, {
      nodeId: o.nodeId,
      ...(o.region !== undefined ? { region: o.region } : {}),
      token: o.token,
      ...(o.versions ? { versions: o.versions } : {}),
      timeoutMs: o.handshakeTimeoutMs ?? DEFAULT_HELLO_TIMEOUT_MS,
      clock: this.#clock,
      transport: { ...o.transport, clock: this.#clock, description: `ws ${remote}` },
    }).then(
      (hello) => {
        release();
        this.#handshaking.delete(ws);
        if (this.#closing) {
          hello.transport.fail(new RelayError('ERR_CLOSED', 'tunnel listener is closing'));
          return;
        }
        let tunnel: Tunnel;
        try {
          tunnel = new Tunnel(hello, {
            role: 'server',
            logger: this.#log,
            clock: this.#clock,
            ...(o.mux ? { mux: o.mux } : {}),
          });
        } catch (err) {
          // Only a bug gets here (the mux config was checked in the constructor).
          const e = new RelayError('ERR_INTERNAL', 'could not start the tunnel session', {
            cause: err,
          });
          hello.transport.fail(e);
          this.#rejected(e, remote);
          return;
        }
        this.#register(tunnel);
      },
      (err: RelayError) => {
        release();
        this.#handshaking.delete(ws);
        this.#rejected(err, remote);
      },
    );
  }

  #register(tunnel: Tunnel): void {
    const old = this.#tunnels.get(tunnel.peerNodeId);
    this.#tunnels.set(tunnel.peerNodeId, tunnel);
    tunnel.once('close', () => {
      if (this.#tunnels.get(tunnel.peerNodeId) === tunnel) this.#tunnels.delete(tunnel.peerNodeId);
    });
    if (old) {
      old.destroy(
        new RelayError(
          'ERR_TUNNEL_REPLACED',
          `replaced by tunnel ${tunnel.id} from the same peer`,
          {
            details: { tunnelId: tunnel.id },
          },
        ),
      );
    }
    this.emit('tunnel', tunnel);
  }

  #refuse(socket: Duplex, remote: string, status: number, code: ErrorCode, message: string): void {
    const body = `${code} ${message}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\n` +
        `connection: close\r\ncontent-type: text/plain\r\n${REJECT_HEADER}: ${code}\r\n` +
        `content-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    // Do not wait for the client to close its half.
    this.#clock.setTimeout(() => socket.destroy(), 1000);
    this.#rejected(new RelayError(code, message, { details: { status } }), remote);
  }

  #rejected(err: RelayError, remote: string): void {
    const code = isRelayError(err) ? err.code : 'ERR_INTERNAL';
    const peer = (err.details as { peerNodeId?: string } | undefined)?.peerNodeId;
    this.#log.warn(
      { [F.CODE]: code, [F.REMOTE]: remote, [F.PEER_NODE_ID]: peer, reason: err.message },
      'tunnel rejected',
    );
    if (this.listenerCount('rejected') > 0) {
      try {
        this.emit('rejected', err, remote);
      } catch {
        // a listener's bug must not break the accept path
      }
    }
  }
}
