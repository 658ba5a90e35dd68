import { Readable } from 'node:stream';
import {
  F,
  isRelayError,
  type Logger,
  RelayError,
  silentLogger,
  WireCode,
} from '@relaymesh/shared';
import type { Dispatcher } from 'undici';
import { responsePairs } from '../http/headers.ts';
import { isIdempotent } from '../http/retry.ts';
import {
  DATA_PLANE_VERSION,
  encodePrefixed,
  encodeResponseHead,
  type OpenHeader,
  type RequestHead,
} from '../open-header.ts';
import { resetStream } from '../splice.ts';
import type { HopStream } from '../types.ts';
import type { Upstream, UpstreamPool } from './upstream-pool.ts';

/**
 * The request body as undici sees it: pulls from the hop stream only when undici reads,
 * so a request whose connect failed has consumed nothing and may go to another upstream.
 * Destroying it never destroys the hop stream (the response still travels on it).
 */
class StreamBody extends Readable {
  consumed = false;
  readonly #source: HopStream;
  #attached = false;

  constructor(source: HopStream) {
    super({ highWaterMark: 64 * 1024 });
    this.#source = source;
  }

  readonly #onData = (chunk: Buffer) => {
    this.consumed = true;
    if (!this.push(chunk)) this.#source.pause();
  };
  readonly #onEnd = () => this.push(null);
  readonly #onClose = () => {
    if (!this.#source.readableEnded)
      this.destroy(new RelayError('ERR_PROXY_STREAM_RESET', 'request stream reset'));
  };

  override _read(): void {
    if (!this.#attached) {
      this.#attached = true;
      this.#source.on('data', this.#onData);
      this.#source.once('end', this.#onEnd);
      this.#source.once('close', this.#onClose);
    }
    this.#source.resume();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    this.#source.off('data', this.#onData);
    this.#source.off('end', this.#onEnd);
    this.#source.off('close', this.#onClose);
    this.#source.pause();
    cb(err);
  }
}

/** A connect failure: nothing reached the origin, so another upstream may be tried. */
function isConnectFailure(err: unknown): boolean {
  if ((err as { code?: unknown }).code === 'UND_ERR_CONNECT_TIMEOUT') return true;
  return isRelayError(err) && err.code.startsWith('ERR_DIAL_');
}

function isTimeout(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return (
    code === 'ERR_DIAL_TIMEOUT' ||
    code === 'UND_ERR_HEADERS_TIMEOUT' ||
    code === 'UND_ERR_CONNECT_TIMEOUT'
  );
}

/** Writes an error response head and ends the stream (FIN): the entry answers 502/504. */
export function replyError(stream: HopStream, status: number, code: string, message: string): void {
  if (stream.destroyed) return;
  stream.end(
    encodePrefixed({ v: DATA_PLANE_VERSION, status, headers: [], error: { code, message } }),
  );
  // The request side may still be flowing; drain it so the FIN handshake completes.
  stream.resume();
}

/**
 * Maps a final failure to the response the entry should give. A failed connect (refused,
 * unreachable, timed out) is ERR_PROXY_UPSTREAM_CONNECT, 504 when it timed out: no upstream
 * got the request (serveHttp moves on after a request went out only when it is idempotent
 * without a body), so the entry may send it through another exit (retry.ts).
 */
function failureReply(stream: HopStream, err: unknown, origin: string): void {
  const message = (err as Error).message ?? String(err);
  // (ERR_PROXY_UPSTREAM_CONNECT itself: the origin had no http upstream to try.)
  if (isConnectFailure(err) || isRelayError(err, 'ERR_PROXY_UPSTREAM_CONNECT')) {
    const timedOut = isTimeout(err);
    replyError(
      stream,
      timedOut ? 504 : 502,
      'ERR_PROXY_UPSTREAM_CONNECT',
      `origin ${origin} ${timedOut ? 'connect timed out' : 'unreachable'}: ${message}`,
    );
  } else if (isTimeout(err)) {
    replyError(stream, 504, 'ERR_PROXY_UPSTREAM_TIMEOUT', `origin ${origin} timed out: ${message}`);
  } else {
    replyError(stream, 502, 'ERR_PROXY_UPSTREAM_RESET', `origin ${origin} failed: ${message}`);
  }
}

/** How one origin request ended, as {@link OriginExchange} reports it. */
type ExchangeEnd =
  /** Failed before any response byte was written to the stream (another upstream may be tried). */
  | { kind: 'failed'; err: Error }
  /** The response head and body went out, then FIN. */
  | { kind: 'done' }
  /** The body failed after the head went out: the stream was reset (UPSTREAM_RESET). */
  | { kind: 'broken'; err: Error; status: number; bytes: number }
  /** The stream closed (the entry reset it): the origin request was aborted. */
  | { kind: 'gone' };

type Controller = Parameters<NonNullable<Dispatcher.DispatchHandler['onRequestStart']>>[0];

/** Runs `fn` with V8 capturing no stack frames for the errors created meanwhile. */
function withoutStackFrames<T>(fn: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return fn();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/**
 * Why an origin request is aborted when the entry reset its stream: control flow (every
 * parked response does it, ~120 a second through a connect burst of slow clients), not a
 * fault with a stack worth reading. Created without stack frames: its stack, when read, is
 * the one line "RelayError: stream reset by the entry". 0.4-0.9 us per reason against
 * 24-28 us with frames and its stack read (tsx, 20,000 each).
 */
export function streamResetReason(): RelayError {
  return withoutStackFrames(
    () => new RelayError('ERR_PROXY_STREAM_RESET', 'stream reset by the entry'),
  );
}

/**
 * Aborts the origin request, without stack frames for the errors undici creates on the way
 * (its `InformationalError('aborted')` destroys the socket, and Node's destroy() reads the
 * error's stack, which V8 formats then: under source maps a lookup per frame; stack formatting
 * took 3.2-4.1 % of the entry's busy main thread through a 10,000-client connect burst in
 * the bench's profiles, 0.48 % without the frames).
 */
function abortWithoutFrames(controller: Controller, reason: Error): void {
  withoutStackFrames(() => controller.abort(reason));
}

/**
 * One origin request as an undici dispatch handler: the response head and body go
 * straight into the hop stream, with backpressure (a full stream pauses the origin
 * socket, its 'drain' resumes it). undici's `request()` API wrapped each response in a
 * Readable (plus an AsyncResource, a promise and a pipe with its listeners) only to be
 * piped into the stream: a measurable share of the exit's CPU on small requests.
 *
 * ```
 *  onRequestStart ─> onResponseStart ─(head)─> onResponseData* ─> onResponseEnd (FIN)
 *        └───────────────┴──── onResponseError: 'failed' before the head, else RST ('broken')
 *  stream 'close' at any point: abort the origin request ('gone')
 * ```
 */
class OriginExchange implements Dispatcher.DispatchHandler {
  readonly #stream: HopStream;
  readonly #pool: UpstreamPool;
  readonly #upstream: Upstream;
  readonly #done: (end: ExchangeEnd) => void;
  #controller: Controller | undefined;
  #abortReason: Error | undefined;
  #status = 0;
  #bytes = 0;
  #finished = false;

  constructor(
    stream: HopStream,
    pool: UpstreamPool,
    upstream: Upstream,
    done: (end: ExchangeEnd) => void,
  ) {
    this.#stream = stream;
    this.#pool = pool;
    this.#upstream = upstream;
    this.#done = done;
    stream.on('close', this.#onStreamClose);
    stream.on('drain', this.#onDrain);
  }

  readonly #onStreamClose = () => {
    if (this.#finished) return;
    const reason = streamResetReason();
    this.#finish({ kind: 'gone' });
    if (this.#controller) abortWithoutFrames(this.#controller, reason);
    else this.#abortReason = reason;
  };

  readonly #onDrain = () => this.#controller?.resume();

  #finish(end: ExchangeEnd): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#stream.off('close', this.#onStreamClose);
    this.#stream.off('drain', this.#onDrain);
    this.#done(end);
  }

  onRequestStart(controller: Controller): void {
    this.#controller = controller;
    if (this.#abortReason) abortWithoutFrames(controller, this.#abortReason);
  }

  onResponseStart(
    _controller: Controller,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    if (statusCode < 200 || this.#finished) return; // 1xx: informational, not relayed
    this.#status = statusCode;
    if (statusCode >= 502 && statusCode <= 504) {
      this.#pool.reportFailure(this.#upstream, `status ${statusCode}`);
    } else {
      this.#pool.reportSuccess(this.#upstream);
    }
    const pairs = responsePairs(headers);
    this.#stream.write(
      encodeResponseHead({ v: DATA_PLANE_VERSION, status: statusCode, headers: pairs }),
    );
  }

  onResponseData(controller: Controller, chunk: Buffer): void {
    if (this.#finished) return;
    this.#bytes += chunk.length;
    if (!this.#stream.write(chunk)) controller.pause();
  }

  onResponseEnd(): void {
    if (this.#finished) return;
    this.#stream.end();
    this.#finish({ kind: 'done' });
  }

  onResponseError(_controller: Controller | undefined, err: Error): void {
    if (this.#finished) return;
    if (this.#status === 0) {
      this.#finish({ kind: 'failed', err });
      return;
    }
    resetStream(this.#stream, WireCode.UPSTREAM_RESET);
    this.#finish({ kind: 'broken', err, status: this.#status, bytes: this.#bytes });
  }
}

/** Sends one request to `upstream` and relays its response into `stream`. Never rejects. */
function exchange(
  stream: HopStream,
  pool: UpstreamPool,
  upstream: Upstream,
  head: RequestHead,
  body: StreamBody | null,
): Promise<ExchangeEnd> {
  return new Promise((resolve) => {
    const handler = new OriginExchange(stream, pool, upstream, resolve);
    pool.dispatcherFor(upstream).dispatch(
      {
        method: head.method,
        path: head.target,
        headers: head.headers.flat(),
        body,
        headersTimeout: pool.headersTimeoutMs,
        bodyTimeout: pool.bodyTimeoutMs,
      },
      handler,
    );
  });
}

/**
 * Serves a 'http' stream at the exit: sends the request to an upstream of the origin with
 * the stream's remaining bytes as the streamed body, then writes the RESPONSE HEAD and the
 * streamed response body back, ending with FIN. Retries another upstream when the connect
 * failed (nothing sent), and for an idempotent request without a body after any failure
 * but a timeout before the response head. Never rejects; failures become error heads or RST.
 */
export async function serveHttp(
  stream: HopStream,
  header: OpenHeader,
  pool: UpstreamPool,
  log: Logger = silentLogger(),
): Promise<void> {
  const head = header.head as RequestHead;
  if (head.bodyLength === 0) stream.resume();
  const tried = new Set<Upstream>();
  // An idempotent request without a body may go to another upstream after any failure
  // before the response head (nginx's proxy_next_upstream error): e.g. a kept-alive
  // connection whose upstream had just died. Others only after a failed connect.
  const replayable = head.bodyLength === 0 && isIdempotent(head.method, head.headers);
  let lastErr: unknown;
  for (;;) {
    const upstream = pool.pick((u) => u.address.scheme === 'http', tried);
    if (!upstream) break;
    tried.add(upstream);
    const body = head.bodyLength === 0 ? null : new StreamBody(stream);
    upstream.outstanding += 1;
    let end: ExchangeEnd;
    try {
      end = await exchange(stream, pool, upstream, head, body);
    } finally {
      upstream.outstanding -= 1;
    }
    if (end.kind === 'gone') return;
    if (end.kind === 'failed') {
      const err = end.err;
      lastErr = err;
      if (isConnectFailure(err) || isTimeout(err)) pool.reportFailure(upstream, err.message);
      const again = isConnectFailure(err) || (replayable && !isTimeout(err));
      if (!again || body?.consumed || stream.destroyed) break;
      log.info(
        { reqId: header.id, [F.ORIGIN]: header.origin, upstream: upstream.address.url, err },
        'origin request failed before its response: trying another upstream',
      );
      continue;
    }
    if (end.kind === 'broken') {
      log.warn(
        {
          reqId: header.id,
          [F.ORIGIN]: header.origin,
          upstream: upstream.address.url,
          status: end.status,
          bytes: end.bytes,
          err: end.err,
        },
        'origin response body broken: stream reset',
      );
    }
    // The origin may answer before reading the whole request body: drain the rest so
    // the stream's FIN handshake completes.
    stream.resume();
    return;
  }
  lastErr ??= new RelayError('ERR_PROXY_UPSTREAM_CONNECT', 'origin has no http upstream');
  failureReply(stream, lastErr, header.origin);
}
