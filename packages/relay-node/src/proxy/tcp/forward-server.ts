import net, { type AddressInfo } from 'node:net';
import { F, type Logger, RelayError, silentLogger, WireCode } from '@relaymesh/shared';
import type { EntryConnector } from '../entry-connector.ts';
import { resetStream, splice } from '../splice.ts';
import type { HopStream, OriginCatalog } from '../types.ts';

export interface ForwardRule {
  host: string;
  port: number;
  /** Origin name (must be declared; its tcp upstreams are the targets). */
  origin: string;
}

/** Parses `--forward 127.0.0.1:2222=ssh-tokyo`. Throws ERR_CONFIG_INVALID. */
export function parseForwardRule(text: string): ForwardRule {
  const m = /^(?:([^=]+):)?(\d{1,5})=([A-Za-z0-9._-]{1,128})$/.exec(text.trim());
  const port = Number(m?.[2]);
  if (!m || port > 65535) {
    throw new RelayError('ERR_CONFIG_INVALID', `--forward ${text}: expected [HOST:]PORT=ORIGIN`);
  }
  return { host: m[1] ?? '127.0.0.1', port, origin: m[3] as string };
}

export interface ForwardServerOptions {
  rule: ForwardRule;
  catalog: OriginCatalog;
  connector: EntryConnector;
  logger?: Logger;
  /** Most client connections at once. @default 1024 */
  maxConnections?: number;
}

/**
 * A raw TCP forward (`--forward`): every connection accepted on the rule's address becomes
 * a 'tcp' stream to the origin's exit, spliced with half-close both ways. A connection the
 * mesh cannot carry (no route, origin unreachable) is closed at once, with a log line.
 */
export class ForwardServer {
  readonly rule: ForwardRule;
  readonly #server: net.Server;
  readonly #catalog: OriginCatalog;
  readonly #connector: EntryConnector;
  readonly #log: Logger;
  readonly #sockets = new Set<net.Socket>();
  #closed = false;

  constructor(options: ForwardServerOptions) {
    this.rule = options.rule;
    this.#catalog = options.catalog;
    this.#connector = options.connector;
    this.#log = (options.logger ?? silentLogger()).child({
      [F.COMPONENT]: 'forward',
      [F.ORIGIN]: options.rule.origin,
    });
    this.#server = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (s) => {
      this.#onConnection(s).catch((err) => {
        this.#log.error({ err }, 'forward handler failed');
        s.destroy();
      });
    });
    this.#server.maxConnections = options.maxConnections ?? 1024;
  }

  /** Binds the rule's address (port 0 in tests); resolves with the bound address. */
  listen(): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(this.rule.port, this.rule.host, () => {
        this.#server.off('error', reject);
        resolve(this.#server.address() as AddressInfo);
      });
    });
  }

  async #onConnection(socket: net.Socket): Promise<void> {
    socket.on('error', () => {});
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
    const origin = this.#catalog.byName(this.rule.origin);
    if (!origin) {
      this.#log.warn(
        { [F.CODE]: 'ERR_PROXY_NOT_DECLARED' },
        'forward to an origin that is not declared',
      );
      return void socket.destroy();
    }
    // The socket stays paused until the exit answers: no client byte goes out before,
    // so a refused or broken try is retried on another path (EntryConnector.openRaw).
    const { entry, answer } = await this.#connector.openRaw({ origin, kind: 'tcp' }, socket);
    if (!entry || !('v' in answer) || answer.error) {
      const why = 'v' in answer ? answer.error : answer;
      this.#log.warn({ [F.CODE]: why?.code, reason: why?.message }, 'forward connection failed');
      if (entry) resetStream(entry.stream, WireCode.CANCEL);
      return void socket.destroy();
    }
    const { stream } = entry;
    socket.resume();
    await splice(socket as HopStream, stream);
  }

  /** Stops accepting; open connections continue. Idempotent. */
  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    return new Promise((resolve) => this.#server.close(() => resolve()));
  }

  /** Closes every connection at once. Idempotent. */
  destroy(): void {
    this.#closed = true;
    this.#server.close();
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }
}
