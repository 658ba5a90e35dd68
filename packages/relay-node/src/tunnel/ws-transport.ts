import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import {
  type Clock,
  decodeFrame,
  MAX_FRAME_PAYLOAD,
  RelayError,
  systemClock,
  type TimerHandle,
} from '@relaymesh/shared';
import WebSocket from 'ws';
import type { FrameTransport, FrameTransportHandlers } from '../mux/transport.ts';
import { closeCodeFor, closeReasonFor, errorFromClose, errorFromWs } from './close-codes.ts';
import { frameInPlace, type WsMasking, wsHeadroom } from './ws-frame.ts';

export interface WsTransportOptions {
  /** `send` returns false above this many bytes handed to ws and not yet written. @default 512 KiB */
  highWaterMark?: number;
  /** Largest DATA payload accepted (decodeFrame). @default MAX_FRAME_PAYLOAD (64 KiB) */
  maxFramePayload?: number;
  /**
   * Bytes of frames that may arrive before `start()` (they follow the hello in the same
   * socket read). Above it the socket is paused until `start()`. @default 1 MiB
   */
  maxEarlyBytes?: number;
  /** After a close frame is sent, terminate if the peer has not closed within this. @default 2000 */
  closeTimeoutMs?: number;
  /** For logs. @default "ws <remote address>:<port>" */
  description?: string;
  /**
   * How our frames are masked (RFC 6455 section 5.3). 'zero' only inside TLS (the dialer's
   * `zeroMaskOverTls`). @default 'random' on a client WebSocket, 'none' on a server one
   */
  masking?: WsMasking;
  clock?: Clock;
}

export const DEFAULT_WS_HIGH_WATER_MARK = 512 * 1024;
const DEFAULT_MAX_EARLY_BYTES = 1024 * 1024;
const DEFAULT_CLOSE_TIMEOUT_MS = 2000;

/** ws keeps its net.Socket here; we need it to cork batches of frames and to write them. */
function socketOf(ws: WebSocket): Socket | undefined {
  return (ws as unknown as { _socket?: Socket | null })._socket ?? undefined;
}

/** ws marks the accepting side (whose frames are not masked) here. */
function isServerSide(ws: WebSocket): boolean {
  return (ws as unknown as { _isServer?: boolean })._isServer === true;
}

function toBuffer(data: WebSocket.RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

type Early = { frame: Buffer } | { error: Error } | { close: true };

/**
 * {@link FrameTransport} over an open `ws` WebSocket: one relaymux frame per binary
 * message. Attach it in the same tick the hello completes: it listens at once and keeps
 * the frames that arrive before the Session calls `start()`.
 *
 * Frames are framed and masked in place (ws-frame.ts) in the `headroom` the scheduler
 * leaves in front of each, and written straight to ws's socket as one buffer each; ws
 * writes its own frames (close, pong) to the same socket synchronously and whole, so the
 * two never interleave inside a frame. ws's Receiver still parses everything we receive.
 * With an extension negotiated (never: both ends disable permessage-deflate) frames go
 * through `ws.send` instead.
 *
 * Backpressure counts the bytes handed over whose write callbacks have not fired (they
 * fire once written to the kernel), so it works whatever ws or the socket queue. `end()`
 * sends a close 1000 after the queued frames; a violation sends a close with the mapped
 * code (see close-codes.ts) and its RelayError code as the reason. Emits `'close'`
 * (err | undefined) once, after `handlers.close`.
 */
export class WsTransport extends EventEmitter implements FrameTransport {
  readonly description: string;
  readonly headroom: number;
  readonly #masking: WsMasking;
  /** Frame in place and write to the socket (false: through ws.send). */
  readonly #raw: boolean;
  readonly #ws: WebSocket;
  readonly #hwm: number;
  readonly #lwm: number;
  readonly #maxPayload: number;
  readonly #maxEarly: number;
  readonly #closeTimeoutMs: number;
  readonly #clock: Clock;
  #handlers: FrameTransportHandlers | undefined;
  /** Items that arrived before start() or while they were being replayed. */
  #early: Early[] = [];
  #earlyBytes = 0;
  #inflight = 0;
  #needDrain = false;
  #corked = false;
  /** The Session asked us to stop reading (receive buffers at their cap). */
  #userPaused = false;
  #failed = false;
  #ended = false;
  #destroyed = false;
  #closed = false;
  #error: Error | undefined;
  #closeTimer: TimerHandle | undefined;

  constructor(ws: WebSocket, options: WsTransportOptions = {}) {
    super();
    this.#ws = ws;
    this.#hwm = options.highWaterMark ?? DEFAULT_WS_HIGH_WATER_MARK;
    this.#lwm = Math.floor(this.#hwm / 2);
    this.#maxPayload = options.maxFramePayload ?? MAX_FRAME_PAYLOAD;
    this.#maxEarly = options.maxEarlyBytes ?? DEFAULT_MAX_EARLY_BYTES;
    this.#closeTimeoutMs = options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS;
    this.#clock = options.clock ?? systemClock;
    this.#masking = options.masking ?? (isServerSide(ws) ? 'none' : 'random');
    this.headroom = wsHeadroom(this.#masking);
    this.#raw = ws.extensions === '';
    const s = socketOf(ws);
    this.description =
      options.description ?? `ws ${s?.remoteAddress ?? '?'}:${s?.remotePort ?? '?'}`;
    ws.on('message', (data, isBinary) => this.#onMessage(data, isBinary));
    ws.on('error', (err) => this.#fail(errorFromWs(err)));
    ws.on('close', (code, reason) => this.#onClose(code, reason));
    if (ws.readyState === WebSocket.CLOSED) queueMicrotask(() => this.#onClose(1006, ''));
  }

  /** Bytes handed to ws and not yet written to the kernel. */
  get bufferedAmount(): number {
    return this.#inflight;
  }

  /** The first error that ended (or is ending) the transport, if any. */
  get error(): Error | undefined {
    return this.#error;
  }

  /** The WebSocket underneath (for remote address and tests). */
  get ws(): WebSocket {
    return this.#ws;
  }

  start(handlers: FrameTransportHandlers): void {
    if (this.#handlers) throw new RelayError('ERR_INTERNAL', 'transport started twice');
    this.#handlers = handlers;
    // Replay later, not inside the Session's constructor.
    if (this.#early.length > 0) queueMicrotask(() => this.#replay());
  }

  /** `buf` is {@link headroom} scratch bytes, then the frame; it is masked in place. */
  send(buf: Buffer, written?: () => void): boolean {
    if (this.#failed || this.#ended || this.#destroyed || this.#ws.readyState !== WebSocket.OPEN) {
      return false;
    }
    const size = buf.length - this.headroom;
    this.#inflight += size;
    const done = () => {
      this.#onSent(size);
      written?.();
    };
    const socket = this.#raw ? socketOf(this.#ws) : undefined;
    if (socket !== undefined) socket.write(frameInPlace(buf, this.headroom, this.#masking), done);
    else this.#ws.send(buf.subarray(this.headroom), { binary: true }, done);
    if (this.#inflight < this.#hwm) return true;
    this.#needDrain = true;
    return false;
  }

  cork(): void {
    if (this.#corked) return;
    const s = socketOf(this.#ws);
    if (!s) return;
    this.#corked = true;
    s.cork();
    // A forgotten uncork must never stall the tunnel: uncorked at the latest in this
    // event-loop turn's check phase (after the Scheduler's flush, queued before us).
    setImmediate(this.#safetyUncork);
  }

  readonly #safetyUncork = () => this.uncork();

  uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    socketOf(this.#ws)?.uncork();
  }

  pause(): void {
    this.#userPaused = true;
    this.#ws.pause();
  }

  resume(): void {
    this.#userPaused = false;
    if (this.#earlyBytes > this.#maxEarly && !this.#handlers) return;
    this.#ws.resume();
  }

  end(): void {
    if (this.#ended || this.#failed || this.#destroyed || this.#closed) return;
    this.#ended = true;
    this.uncork();
    this.#closeWs(undefined);
  }

  destroy(err?: Error): void {
    if (this.#destroyed || this.#closed) return;
    this.#destroyed = true;
    this.#error ??= err;
    this.#ws.terminate();
  }

  /** Ends with a violation found above the transport (e.g. by the handshake). */
  fail(err: RelayError): void {
    this.#fail(err);
  }

  #onSent(size: number): void {
    this.#inflight -= size;
    if (this.#needDrain && this.#inflight <= this.#lwm) {
      this.#needDrain = false;
      if (!this.#failed && !this.#closed) this.#handlers?.drain();
    }
  }

  #onMessage(data: WebSocket.RawData, isBinary: boolean): void {
    if (this.#failed || this.#destroyed) return;
    if (!isBinary) {
      this.#fail(new RelayError('ERR_TUNNEL_TEXT_MESSAGE', 'text message on a tunnel'));
      return;
    }
    const buf = toBuffer(data);
    if (!this.#handlers || this.#early.length > 0) {
      this.#early.push({ frame: buf });
      this.#earlyBytes += buf.length;
      // Bounded: stop reading until the Session starts (resumed in #replay).
      if (this.#earlyBytes > this.#maxEarly) this.#ws.pause();
      return;
    }
    this.#deliver(buf);
  }

  #deliver(buf: Buffer): void {
    const frame = decodeFrame(buf, this.#maxPayload);
    if (frame instanceof RelayError) {
      this.#fail(frame);
      return;
    }
    this.#handlers!.frame(frame);
  }

  #replay(): void {
    while (this.#early.length > 0) {
      const item = this.#early.shift()!;
      if ('frame' in item) {
        this.#earlyBytes -= item.frame.length;
        if (!this.#failed) this.#deliver(item.frame);
      } else if ('error' in item) {
        this.#handlers!.error(item.error);
      } else {
        this.#handlers!.close();
      }
    }
    // Undo our own early-bytes pause, never the Session's.
    if (this.#ws.isPaused && !this.#userPaused && !this.#closed) this.#ws.resume();
  }

  #fail(err: Error): void {
    if (this.#failed || this.#closed) return;
    this.#failed = true;
    this.#error ??= err;
    // Close first: the Session reacts to the error by ending us, and our coded close
    // frame must be the one that goes out.
    if (!this.#destroyed) this.#closeWs(err);
    this.#emitOrQueue({ error: err });
  }

  /** Sends a close frame (after queued data) and terminates if the peer does not answer. */
  #closeWs(err: Error | undefined): void {
    const ws = this.#ws;
    if (ws.readyState === WebSocket.OPEN) ws.close(closeCodeFor(err), closeReasonFor(err));
    else if (ws.readyState === WebSocket.CONNECTING) ws.terminate();
    this.#closeTimer ??= this.#clock.setTimeout(() => ws.terminate(), this.#closeTimeoutMs);
  }

  #onClose(code: number, reason: Buffer | string): void {
    if (this.#closed) return;
    if (this.#closeTimer !== undefined) this.#clock.clearTimeout(this.#closeTimer);
    this.#closeTimer = undefined;
    if (!this.#failed && !this.#ended && !this.#destroyed) {
      // The peer closed first (or the connection dropped: 1006): an error unless clean.
      const err = errorFromClose(code, reason);
      if (err) {
        this.#failed = true;
        this.#error = err;
        this.#emitOrQueue({ error: err });
      }
    }
    this.#closed = true;
    this.#emitOrQueue({ close: true });
    this.emit('close', this.#error);
  }

  #emitOrQueue(item: { error: Error } | { close: true }): void {
    const h = this.#handlers;
    if (!h || this.#early.length > 0) {
      this.#early.push(item);
      return;
    }
    if ('error' in item) h.error(item.error);
    else h.close();
  }
}
