import {
  type Clock,
  F,
  isRelayError,
  type Logger,
  RelayError,
  silentLogger,
  systemClock,
  WireCode,
} from '@relaymesh/shared';
import type { ExitHandler } from '../exit/exit-handler.ts';
import {
  decodeOpenHeader,
  encodePrefixed,
  MAX_HOPS,
  MAX_OPEN_HEADER_BYTES,
  type OpenHeader,
  readPrefixed,
} from '../open-header.ts';
import { serveProbe } from '../probe.ts';
import { resetStream, splice } from '../splice.ts';
import type { HopStream, StreamOpener } from '../types.ts';

export interface StreamServerOptions {
  /** This node's id (loop check, path). */
  nodeId: string;
  /** Opens the next hop's stream when relaying. */
  opener: StreamOpener;
  /** Serves streams that end here. */
  exit: ExitHandler;
  logger?: Logger;
  clock?: Clock;
  /** The open header must arrive within this. @default 10000 */
  headTimeoutMs?: number;
}

/**
 * Handles every stream a peer opens to this node (wire it to the session's 'stream'
 * event): reads and validates the OPEN HEADER, then relays it to the next hop or serves
 * it as the exit, or answers a capacity probe (kind 'probe'). Invalid headers are reset with BAD_OPEN_HEADER, loops and over-long
 * paths with HOP_LIMIT, a next hop that cannot be opened with NO_ROUTE.
 */
export class StreamServer {
  readonly nodeId: string;
  readonly #opener: StreamOpener;
  readonly #exit: ExitHandler;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #headTimeoutMs: number;
  readonly #live = new Set<HopStream>();
  #closed = false;

  constructor(options: StreamServerOptions) {
    this.nodeId = options.nodeId;
    this.#opener = options.opener;
    this.#exit = options.exit;
    this.#clock = options.clock ?? systemClock;
    this.#headTimeoutMs = options.headTimeoutMs ?? 10_000;
    this.#log = (options.logger ?? silentLogger()).child({
      [F.COMPONENT]: 'stream-server',
      [F.NODE_ID]: options.nodeId,
    });
  }

  /** Streams being relayed or served now. */
  get liveStreams(): number {
    return this.#live.size;
  }

  /** Takes one inbound stream. Never throws; the stream is always ended or reset. */
  handle(stream: HopStream): void {
    if (this.#closed) {
      resetStream(stream, WireCode.REFUSED_STREAM);
      return;
    }
    this.#live.add(stream);
    stream.once('close', () => this.#live.delete(stream));
    stream.on('error', () => {}); // reported through 'close'/resetCode
    this.#handle(stream).catch((err) => {
      this.#log.error({ err }, 'stream handler failed');
      resetStream(stream, WireCode.INTERNAL_ERROR);
    });
  }

  async #handle(stream: HopStream): Promise<void> {
    let header: OpenHeader;
    try {
      const bytes = await readPrefixed(
        stream,
        MAX_OPEN_HEADER_BYTES,
        this.#headTimeoutMs,
        this.#clock,
      );
      header = decodeOpenHeader(bytes);
      this.#checkPath(header);
    } catch (err) {
      const code = isRelayError(err, 'ERR_PROXY_HOP_LIMIT')
        ? WireCode.HOP_LIMIT
        : WireCode.BAD_OPEN_HEADER;
      this.#log.warn({ err, [F.CODE]: code }, 'stream refused: bad open header');
      resetStream(stream, code);
      return;
    }
    if (header.kind === 'probe') await serveProbe(stream, header);
    else if (header.hops.length === 0) await this.#exit.serve(stream, header);
    else await this.#relay(stream, header);
  }

  /** Loop and hop limit: a node that sees itself on the path, or a path above MAX_HOPS. */
  #checkPath(header: OpenHeader): void {
    if (
      header.path.includes(this.nodeId) ||
      header.hops.includes(this.nodeId) ||
      header.path.length > MAX_HOPS
    ) {
      throw new RelayError('ERR_PROXY_HOP_LIMIT', `loop or hop limit at ${this.nodeId}`, {
        details: { path: header.path, hops: header.hops },
      });
    }
  }

  /** Opens the next hop, forwards the header with us moved from hops to path, splices. */
  async #relay(stream: HopStream, header: OpenHeader): Promise<void> {
    const [next, ...rest] = header.hops as [string, ...string[]];
    const log = { reqId: header.id, [F.ORIGIN]: header.origin, next };
    let downstream: HopStream;
    try {
      downstream = this.#opener.open(next);
    } catch (err) {
      this.#log.warn({ ...log, err }, 'relay cannot open the next hop');
      resetStream(stream, WireCode.NO_ROUTE);
      return;
    }
    const forwarded: OpenHeader = { ...header, hops: rest, path: [...header.path, this.nodeId] };
    downstream.write(encodePrefixed(forwarded));
    const result = await splice(stream, downstream);
    this.#log.debug({ ...log, ...result }, 'relayed stream ended');
  }

  /** Refuses new streams; live ones continue. Idempotent. */
  close(): void {
    this.#closed = true;
  }

  /**
   * Resets every live stream with CANCEL. Idempotent. Not GOING_AWAY: that code (and
   * REFUSED_STREAM) promises the entry that nothing of the stream was processed, which
   * lets it replay even a non-idempotent request.
   */
  destroy(): void {
    this.#closed = true;
    for (const s of this.#live) resetStream(s, WireCode.CANCEL);
    this.#live.clear();
  }
}
