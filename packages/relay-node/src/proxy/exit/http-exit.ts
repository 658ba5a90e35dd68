import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import {
  F,
  isRelayError,
  type Logger,
  RelayError,
  silentLogger,
  WireCode,
} from '@relaymesh/shared';
import { responsePairs } from '../http/headers.ts';
import {
  DATA_PLANE_VERSION,
  encodePrefixed,
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

/**
 * The abort signal of one origin request, as undici accepts it (an EventEmitter with
 * `aborted`, `reason` and an 'abort' event). An AbortController per request cost ~2 % of
 * the exit's CPU on small requests (createAbortSignal, EventTarget listeners), and a
 * request is almost never aborted.
 */
class RequestAbort extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.emit('abort');
  }
}

/** A connect failure: nothing reached the origin, so another upstream may be tried. */
function isConnectFailure(err: unknown): boolean {
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

/** Maps a final failure to the response the entry should give. */
function failureReply(stream: HopStream, err: unknown, origin: string): void {
  const message = (err as Error).message ?? String(err);
  if (isTimeout(err)) {
    replyError(stream, 504, 'ERR_PROXY_UPSTREAM_TIMEOUT', `origin ${origin} timed out: ${message}`);
  } else if (isConnectFailure(err)) {
    replyError(
      stream,
      502,
      'ERR_PROXY_UPSTREAM_CONNECT',
      `origin ${origin} unreachable: ${message}`,
    );
  } else {
    replyError(stream, 502, 'ERR_PROXY_UPSTREAM_RESET', `origin ${origin} failed: ${message}`);
  }
}

interface Attempt {
  upstream: Upstream;
  body: StreamBody | null;
}

async function sendOnce(
  pool: UpstreamPool,
  attempt: Attempt,
  head: RequestHead,
  signal: RequestAbort,
) {
  return pool.dispatcherFor(attempt.upstream).request({
    method: head.method as 'GET',
    path: head.target,
    headers: head.headers.flat(),
    body: attempt.body,
    signal,
    headersTimeout: pool.headersTimeoutMs,
    bodyTimeout: pool.bodyTimeoutMs,
  });
}

/**
 * Serves a 'http' stream at the exit: sends the request to an upstream of the origin with
 * the stream's remaining bytes as the streamed body, then writes the RESPONSE HEAD and the
 * streamed response body back, ending with FIN. Retries another upstream only when the
 * connect failed (nothing sent). Never rejects; failures become error heads or RST.
 */
export async function serveHttp(
  stream: HopStream,
  header: OpenHeader,
  pool: UpstreamPool,
  log: Logger = silentLogger(),
): Promise<void> {
  const head = header.head as RequestHead;
  const abort = new RequestAbort();
  const onEarlyClose = () =>
    abort.abort(new RelayError('ERR_PROXY_STREAM_RESET', 'stream reset by the entry'));
  stream.on('close', onEarlyClose);
  // Removed the moment the response body ends: the stream's 'close' (nextTick) would
  // otherwise run before the awaiting code and abort a finished request, paying an
  // Error and an abort event per request.
  const responded = () => stream.off('close', onEarlyClose);
  if (head.bodyLength === 0) stream.resume();
  const tried = new Set<Upstream>();
  let lastErr: unknown;
  for (;;) {
    const upstream = pool.pick((u) => u.address.scheme === 'http', tried);
    if (!upstream) break;
    tried.add(upstream);
    const attempt: Attempt = {
      upstream,
      body: head.bodyLength === 0 ? null : new StreamBody(stream),
    };
    upstream.outstanding += 1;
    try {
      const res = await sendOnce(pool, attempt, head, abort);
      if (res.statusCode >= 502 && res.statusCode <= 504)
        pool.reportFailure(upstream, `status ${res.statusCode}`);
      else pool.reportSuccess(upstream);
      const broken = await relayResponse(stream, res, responded);
      if (broken)
        log.warn(
          {
            reqId: header.id,
            [F.ORIGIN]: header.origin,
            upstream: upstream.address.url,
            status: res.statusCode,
            bytes: broken.bytes,
            err: broken.err,
          },
          'origin response body broken: stream reset',
        );
      responded();
      // The origin may answer before reading the whole request body: drain the rest so
      // the stream's FIN handshake completes.
      stream.resume();
      return;
    } catch (err) {
      lastErr = err;
      if (abort.aborted) return;
      if (isConnectFailure(err) || isTimeout(err))
        pool.reportFailure(upstream, (err as Error).message);
      if (!isConnectFailure(err) || attempt.body?.consumed) break;
    } finally {
      upstream.outstanding -= 1;
    }
  }
  stream.off('close', onEarlyClose);
  lastErr ??= new RelayError('ERR_PROXY_UPSTREAM_CONNECT', 'origin has no http upstream');
  failureReply(stream, lastErr, header.origin);
}

/** How a response body failed at the exit: the origin's error and the body bytes read. */
interface BrokenBody {
  err: Error;
  bytes: number;
}

/**
 * Head, then the body piped with backpressure; a body failure resets the stream and
 * resolves with what broke (undefined when the body ended or the stream closed first).
 * `onBodyEnd` runs synchronously when the origin's body ended.
 */
function relayResponse(
  stream: HopStream,
  res: {
    statusCode: number;
    headers: Record<string, string | string[] | undefined>;
    body: Readable;
  },
  onBodyEnd: () => void,
): Promise<BrokenBody | undefined> {
  const head = encodePrefixed({
    v: DATA_PLANE_VERSION,
    status: res.statusCode,
    headers: responsePairs(res.headers),
  });
  return new Promise((resolve) => {
    let bytes = 0;
    const count = (chunk: Buffer) => {
      bytes += chunk.length;
    };
    // `on`, not `once`: done() removes every listener (no once-wrappers per request).
    const done = (broken?: BrokenBody) => {
      stream.off('close', onClose);
      res.body.off('data', count);
      res.body.off('error', onError);
      res.body.off('end', onEnd);
      resolve(broken);
    };
    const onClose = () => {
      res.body.destroy();
      done();
    };
    const onError = (err: Error) => {
      resetStream(stream, WireCode.UPSTREAM_RESET);
      done({ err, bytes });
    };
    const onEnd = () => {
      onBodyEnd();
      done();
    };
    stream.on('close', onClose);
    res.body.on('data', count);
    res.body.on('error', onError);
    res.body.on('end', onEnd);
    stream.write(head);
    res.body.pipe(stream);
  });
}
