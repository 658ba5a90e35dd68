import { randomFillSync } from 'node:crypto';
import type { Duplex } from 'node:stream';
import {
  type Clock,
  F,
  type Logger,
  RelayError,
  silentLogger,
  systemClock,
  WireCode,
} from '@relaymesh/shared';
import type { ExitHandler } from './exit/exit-handler.ts';
import { exitCouldNotConnect, mayTryAgain } from './http/retry.ts';
import {
  DATA_PLANE_VERSION,
  decodeResponseHead,
  encodePrefixed,
  MAX_RESPONSE_HEAD_BYTES,
  type OpenHeader,
  type RequestHead,
  type ResponseHead,
  readPrefixed,
  type StreamKind,
} from './open-header.ts';
import { duplexPair, resetStream } from './splice.ts';
import type { HopStream, Origin, RouteSource, StreamOpener } from './types.ts';

export interface EntryConnectorOptions {
  nodeId: string;
  routes: RouteSource;
  opener: StreamOpener;
  /** Serves streams locally when this node is the exit (a one-node path). */
  exit: ExitHandler;
  logger?: Logger;
  clock?: Clock;
  /** Wait for the exit's RESPONSE HEAD at most this long. @default 60000 */
  responseHeadTimeoutMs?: number;
}

export interface OpenRequest {
  origin: Origin;
  kind: StreamKind;
  head?: RequestHead;
  port?: number;
  /**
   * A retry after these paths broke: they are skipped, and paths through other first hops
   * are tried before those sharing a first hop with one of them. With no other path the
   * open throws ERR_ROUTE_NONE (a retry on a broken path would only fail again).
   */
  avoid?: readonly (readonly string[])[];
  /**
   * A retry after these exits could not connect to the origin: paths that end at one of
   * them are skipped (ERR_ROUTE_NONE when none is left).
   */
  avoidExits?: readonly string[];
  /** Reuse this request id (a retry or a resume is the same request in the logs). */
  id?: string;
}

/** An open stream to the exit, with the path it took (entry first, exit last). */
export interface EntryStream {
  stream: HopStream;
  path: string[];
  id: string;
}

/** What the entry answers when a stream fails before its response head. */
export interface EntryFailure {
  status: number;
  code: string;
  message: string;
}

/** A raw stream's open ({@link EntryConnector.openRaw}): the last try's stream and answer. */
export type RawOpen =
  | { entry: EntryStream; answer: ResponseHead | EntryFailure }
  /** No stream could be opened at all. */
  | { entry?: undefined; answer: EntryFailure };

/** Random bytes for request ids, refilled when used up (see {@link newRequestId}). */
const ID_POOL = Buffer.alloc(4096);
let idPoolUsed = ID_POOL.length;

/**
 * A request id: 16 hex digits of random bytes, like `randomBytes(8)` but cut from a pool
 * filled 512 ids at a time (one `randomBytes` call per request cost ~7 µs, a few percent
 * of a small request's CPU at the entry).
 */
function newRequestId(): string {
  if (idPoolUsed + 8 > ID_POOL.length) {
    randomFillSync(ID_POOL);
    idPoolUsed = 0;
  }
  idPoolUsed += 8;
  return ID_POOL.toString('hex', idPoolUsed - 8, idPoolUsed);
}

/** Maps an RST wire code seen before the response head to the client answer. */
export function failureForReset(code: WireCode | undefined): EntryFailure {
  switch (code) {
    case WireCode.UPSTREAM_TIMEOUT:
      return { status: 504, code: 'ERR_PROXY_UPSTREAM_TIMEOUT', message: 'origin timed out' };
    case WireCode.UPSTREAM_CONNECT_FAILED:
      return { status: 502, code: 'ERR_PROXY_UPSTREAM_CONNECT', message: 'origin unreachable' };
    case WireCode.NO_ROUTE:
      return {
        status: 502,
        code: 'ERR_ROUTE_NONE',
        message: 'a relay has no session to the next hop',
      };
    case WireCode.HOP_LIMIT:
      return { status: 502, code: 'ERR_PROXY_HOP_LIMIT', message: 'path too long or looping' };
    case WireCode.BAD_OPEN_HEADER:
      return {
        status: 502,
        code: 'ERR_PROXY_BAD_OPEN_HEADER',
        message: 'a hop refused the open header',
      };
    case WireCode.NOT_DECLARED:
      return {
        status: 502,
        code: 'ERR_PROXY_NOT_DECLARED',
        message: 'origin not declared at the exit',
      };
    default:
      return {
        status: 502,
        code: 'ERR_PROXY_STREAM_RESET',
        message: `stream reset (code ${code ?? 'none'})`,
      };
  }
}

/** The exit of a path (its last node: the entry itself when it is its own exit). */
export function exitOf(path: readonly string[]): string {
  return path[path.length - 1] as string;
}

/** `paths` without `avoid`, those through another first hop first (order kept otherwise). */
function avoiding(
  paths: string[][],
  avoid: readonly (readonly string[])[] | undefined,
): string[][] {
  if (!avoid || avoid.length === 0) return paths;
  const keys = new Set(avoid.map((p) => p.join(',')));
  const hops = new Set(avoid.map((p) => p[1]));
  const rest = paths.filter((p) => !keys.has(p.join(',')));
  return [...rest.filter((p) => !hops.has(p[1])), ...rest.filter((p) => hops.has(p[1]))];
}

/**
 * The entry's side of the data plane, shared by the HTTP entry and TCP forwards: picks the
 * path (the route source's first path that opens; the next on failure: local failover),
 * opens the first hop's stream (or a local pair when this node is the exit), writes the
 * OPEN HEADER, and reads the RESPONSE HEAD.
 */
export class EntryConnector {
  readonly nodeId: string;
  readonly #routes: RouteSource;
  readonly #opener: StreamOpener;
  readonly #exit: ExitHandler;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #headTimeoutMs: number;

  constructor(options: EntryConnectorOptions) {
    this.nodeId = options.nodeId;
    this.#routes = options.routes;
    this.#opener = options.opener;
    this.#exit = options.exit;
    this.#clock = options.clock ?? systemClock;
    this.#headTimeoutMs = options.responseHeadTimeoutMs ?? 60_000;
    this.#log = (options.logger ?? silentLogger()).child({ [F.COMPONENT]: 'entry-connector' });
  }

  /**
   * Opens a stream to the exit of `req.origin` and writes the open header. Throws
   * ERR_ROUTE_NONE when there is no path or no first hop can be opened.
   */
  open(req: OpenRequest): EntryStream {
    const id = req.id ?? newRequestId();
    const paths = avoiding(
      this.#routes
        .pathsFor(req.origin.name)
        .filter((p) => p[0] === this.nodeId && !req.avoidExits?.includes(exitOf(p))),
      req.avoid,
    );
    if (paths.length === 0) {
      throw new RelayError('ERR_ROUTE_NONE', `no route to origin ${req.origin.name} yet`);
    }
    for (const path of paths) {
      const header: OpenHeader = {
        v: DATA_PLANE_VERSION,
        kind: req.kind,
        origin: req.origin.name,
        hops: path.slice(2),
        path: [this.nodeId],
        id,
      };
      if (req.port !== undefined) header.port = req.port;
      if (req.head) header.head = req.head;
      if (path.length === 1) {
        // This node is the exit: serve through an in-process pair, same code path as a tunnel.
        const [near, far] = duplexPair();
        far.on('error', () => {});
        void this.#exit.serve(far, header);
        return { stream: near, path, id };
      }
      const stream = this.#openFirstHop(path, req.origin.name);
      if (!stream) continue;
      stream.write(encodePrefixed(header));
      return { stream, path, id };
    }
    throw new RelayError('ERR_ROUTE_NONE', `no path to origin ${req.origin.name} could be opened`, {
      details: { paths },
    });
  }

  /**
   * Opens a stream that carries no client bytes before its RESPONSE HEAD (CONNECT, a
   * WebSocket upgrade's GET, a TCP forward) and waits for that head, retrying on another
   * path as an idempotent request would be (retry.ts mayTryAgain: up to 3 tries while hops
   * refuse it, one retry for another broken path, none for a timeout), and once through
   * another exit when the exit could not connect to the origin (exitCouldNotConnect); no
   * retry after any other error head.
   * `client` closing resets the stream in flight and ends the tries. Never throws: no path
   * at all is an ERR_ROUTE_NONE answer.
   */
  async openRaw(
    req: OpenRequest,
    client: { once: Duplex['once']; off: Duplex['off']; destroyed: boolean },
  ): Promise<RawOpen> {
    const avoid: string[][] = [];
    const avoidExits: string[] = [];
    let last: RawOpen | undefined;
    for (let tries = 1; ; tries++) {
      let entry: EntryStream;
      try {
        entry = this.open(last?.entry ? { ...req, avoid, avoidExits, id: last.entry.id } : req);
      } catch (err) {
        return (
          last ?? {
            answer: { status: 502, code: 'ERR_ROUTE_NONE', message: (err as Error).message },
          }
        );
      }
      const { stream } = entry;
      stream.on('error', () => {});
      const onEarlyClose = () => resetStream(stream, WireCode.CANCEL);
      client.once('close', onEarlyClose);
      const answer = await this.readResponseHead(stream);
      client.off('close', onEarlyClose);
      last = { entry, answer };
      if (client.destroyed) return last;
      if ('v' in answer) {
        if (!exitCouldNotConnect(answer) || avoidExits.length > 0) return last;
        resetStream(stream, WireCode.CANCEL);
        avoidExits.push(exitOf(entry.path));
        this.#log.info(
          { reqId: entry.id, [F.PATH]: entry.path.join(','), tries, err: answer.error?.code },
          'raw stream retried through another exit',
        );
        continue;
      }
      if (!mayTryAgain(tries, answer, stream.resetCode, true)) return last;
      this.pathBroke(entry);
      avoid.push(entry.path);
      this.#log.info(
        { reqId: entry.id, [F.PATH]: entry.path.join(','), tries, wireCode: stream.resetCode },
        'raw stream retried on another path',
      );
    }
  }

  /**
   * A stream of `entry` broke (reset or died) before its end. When the first hop's session
   * died (no RST code) or the first hop is draining (GOING_AWAY), other first hops are
   * preferred for a while (the route table's local failover); a reset passed on from
   * further along says nothing about the first hop.
   */
  pathBroke(entry: EntryStream): void {
    const hop = entry.path[1];
    if (hop === undefined) return;
    const code = entry.stream.resetCode;
    if (code === undefined || code === WireCode.GOING_AWAY) this.#routes.markPeerDown?.(hop);
    this.#log.info(
      { reqId: entry.id, [F.PATH]: entry.path.join(','), wireCode: code },
      'path broke during a request',
    );
  }

  /** null when the first hop has no usable session (try the next path). */
  #openFirstHop(path: string[], origin: string): HopStream | null {
    try {
      return this.#opener.open(path[1] as string);
    } catch (err) {
      this.#routes.markPeerDown?.(path[1] as string);
      this.#log.warn(
        { [F.ORIGIN]: origin, [F.PATH]: path.join(','), err },
        'first hop unavailable, trying the next path',
      );
      return null;
    }
  }

  /**
   * Waits for the RESPONSE HEAD. Resolves with the head, or with a failure describing what
   * the client should get (a reset before the head, a malformed head, a timeout).
   */
  async readResponseHead(stream: HopStream): Promise<ResponseHead | EntryFailure> {
    try {
      const bytes = await readPrefixed(
        stream,
        MAX_RESPONSE_HEAD_BYTES,
        this.#headTimeoutMs,
        this.#clock,
      );
      return decodeResponseHead(bytes);
    } catch (err) {
      if (stream.resetCode !== undefined) return failureForReset(stream.resetCode);
      const code = (err as { code?: string }).code;
      if (code === 'ERR_PROXY_HEAD_TIMEOUT') {
        resetStream(stream, WireCode.CANCEL);
        return { status: 504, code, message: 'no response from the exit in time' };
      }
      resetStream(stream, WireCode.PROTOCOL_ERROR);
      return {
        status: 502,
        code: code ?? 'ERR_PROXY_STREAM_RESET',
        message: (err as Error).message,
      };
    }
  }
}
