import { EventEmitter } from 'node:events';
import { type Clock, F, isRelayError, type Logger } from '@relaymesh/shared';
import type { MuxConfig } from '../mux/config.ts';
import { Session, type SessionRole } from '../mux/session.ts';
import type { HelloResult } from './handshake.ts';
import type { WsTransport } from './ws-transport.ts';

let tunnelCounter = 0;

export interface TunnelOptions {
  /** 'client' on the dialer, 'server' on the listener (fixed by the hello). */
  role: SessionRole;
  logger: Logger;
  clock?: Clock;
  mux?: Partial<MuxConfig>;
}

/**
 * One authenticated WebSocket between two nodes with its mux Session on top. Created by
 * {@link TunnelListener} (server role) and {@link TunnelDialer} (client role) once the hello
 * succeeded; the Session is live from the start.
 *
 * Events: `'close'` (err | undefined) once, when the Session has finished. `err` is the
 * most specific reason known: the transport's (e.g. ERR_TUNNEL_TEXT_MESSAGE, a close code
 * from the peer) before the Session's (e.g. ERR_PROTOCOL_DUPLICATE_STREAM,
 * ERR_MUX_KEEPALIVE_TIMEOUT); undefined for a clean close.
 */
export class Tunnel extends EventEmitter {
  /** Process-unique, for logs. */
  readonly id: number;
  readonly peerNodeId: string;
  /** What the dialer said in its hello; undefined on the dialer side. */
  readonly peerRegion: string | undefined;
  /** Negotiated relaymux version. */
  readonly version: number;
  /** "ip:port" of the other end of the TCP connection. */
  readonly remoteAddress: string;
  readonly session: Session;
  readonly #transport: WsTransport;
  readonly #log: Logger;
  #sessionError: Error | undefined;
  #closeError: Error | undefined;
  #done = false;
  readonly #closed: Promise<Error | undefined>;

  constructor(hello: HelloResult, options: TunnelOptions) {
    super();
    this.id = ++tunnelCounter;
    this.peerNodeId = hello.peerNodeId;
    this.peerRegion = hello.peerRegion;
    this.version = hello.version;
    this.#transport = hello.transport;
    this.remoteAddress = hello.transport.description.replace(/^ws /, '');
    this.#log = options.logger.child({
      [F.TUNNEL_ID]: this.id,
      [F.PEER_NODE_ID]: this.peerNodeId,
      [F.REMOTE]: this.remoteAddress,
    });
    this.#closed = new Promise((resolve) => this.once('close', resolve));
    this.session = new Session({
      transport: hello.transport,
      role: options.role,
      logger: options.logger,
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.mux ? { config: options.mux } : {}),
    });
    this.session.on('error', (err: Error) => {
      this.#sessionError ??= err;
    });
    this.session.once('close', () => this.#onSessionClose());
    this.#log.info(
      { role: options.role, version: this.version, peerRegion: this.peerRegion },
      'tunnel up',
    );
  }

  /** Resolves with the close reason (undefined when clean) once the tunnel is down. */
  get closed(): Promise<Error | undefined> {
    return this.#closed;
  }

  get isClosed(): boolean {
    return this.#done;
  }

  /** The transport under the Session (tests, diagnostics). */
  get transport(): WsTransport {
    return this.#transport;
  }

  /** Graceful: GO_AWAY, let open streams finish (mux closeTimeoutMs), then close 1000. */
  close(): Promise<void> {
    return this.session.close().then(() => undefined);
  }

  /** Immediate: every stream fails with `err`, the WebSocket is terminated. Idempotent. */
  destroy(err?: Error): void {
    this.#closeError ??= err;
    // A coded reason goes to the peer in the close frame (e.g. 4001 ERR_TUNNEL_REPLACED).
    if (err !== undefined && isRelayError(err)) this.#transport.fail(err);
    this.session.destroy(err);
  }

  #onSessionClose(): void {
    if (this.#done) return;
    this.#done = true;
    const err = this.#closeError ?? this.#transport.error ?? this.#sessionError;
    const code = (err as { code?: string } | undefined)?.code;
    this.#log.info(
      { [F.CODE]: code, reason: err?.message, role: this.session.role },
      'tunnel down',
    );
    this.emit('close', err);
  }
}
