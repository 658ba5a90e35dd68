import { Duplex } from 'node:stream';
import { type Clock, type ErrorCode, RelayError, WireCode } from '@relaymesh/shared';
import { dropUnreadOnClose } from './drop-unread.ts';
import { StreamSendQueue } from './scheduler.ts';
import type { ReceiveWindow } from './window.ts';

/** What a stream needs from its session (implemented by Session, not public API). */
export interface StreamHost {
  enqueue(q: StreamSendQueue): void;
  sendWindowUpdate(streamId: number, delta: number): void;
  /** False when nothing was sent (the session is already gone). */
  sendReset(streamId: number, code: WireCode): boolean;
  /**
   * FIN went both ways: the stream is done on the wire (its buffered data may still be
   * unread). Leaves the stream table; the credit reservation stays until `streamClosed`.
   */
  streamWireClosed(stream: MuxStream): void;
  /** The Duplex is gone (closed or reset): forget it and release its credit. Once. */
  streamClosed(stream: MuxStream): void;
}

export interface MuxStreamInit {
  id: number;
  host: StreamHost;
  recv: ReceiveWindow;
  /** Credit we may spend before the peer says more. */
  sendCredit: number;
  /** Cap on bytes handed to the scheduler and not yet sent. */
  sendQueueBytes: number;
}

/** Below this a received payload is copied, so it does not pin a whole socket chunk. */
const COPY_BELOW_FRACTION = 8;

/** Maps the WireCode of a peer's RST to the error the local stream ends with. */
export function resetError(streamId: number, code: number, acked: boolean): RelayError {
  let errCode: ErrorCode = 'ERR_MUX_STREAM_RESET';
  if (!acked && code === WireCode.REFUSED_STREAM) errCode = 'ERR_MUX_BACKLOG_FULL';
  else if (!acked && code === WireCode.MEMORY_LIMIT) errCode = 'ERR_MUX_MEMORY_LIMIT';
  else if (!acked && code === WireCode.GOING_AWAY) errCode = 'ERR_MUX_GOING_AWAY';
  return new RelayError(errCode, `stream ${streamId} reset by peer with code ${code}`, {
    details: { streamId, wireCode: code },
  });
}

/**
 * One multiplexed bidirectional byte stream. `end()` sends FIN (half-close); the peer's FIN
 * ends the readable side. `reset(code)` aborts both directions. A peer's RST destroys the
 * stream with RelayError ERR_MUX_STREAM_RESET (details.wireCode), or for a stream the peer
 * refused before accepting it: ERR_MUX_BACKLOG_FULL / ERR_MUX_MEMORY_LIMIT / ERR_MUX_GOING_AWAY.
 * `'close'` always fires.
 */
export class MuxStream extends Duplex {
  readonly id: number;
  /**
   * The WireCode of the RST that ended this stream (received or sent), if any. Undefined
   * for a clean FIN/FIN close and when the whole session died (see the stream's error).
   */
  resetCode: WireCode | undefined;
  readonly #host: StreamHost;
  readonly #recv: ReceiveWindow;
  readonly #queue: StreamSendQueue;
  readonly #queueCap: number;
  #sendCredit: number;
  #acked = false;
  #remoteFin = false;
  #pushed = 0;
  #credited = 0;
  #pending: Buffer | undefined;
  #pendingOffset = 0;
  #pendingCb: ((err?: Error | null) => void) | undefined;
  #finalCb: ((err?: Error | null) => void) | undefined;
  #wireClosed = false;
  #cancelOpenTimer: (() => void) | undefined;

  /** @internal created by Session only. */
  constructor(init: MuxStreamInit) {
    super({
      allowHalfOpen: true,
      readableHighWaterMark: 64 * 1024,
      writableHighWaterMark: 64 * 1024,
    });
    this.id = init.id;
    this.#host = init.host;
    this.#recv = init.recv;
    this.#sendCredit = init.sendCredit;
    this.#queueCap = init.sendQueueBytes;
    this.#queue = new StreamSendQueue(init.id, (finSent) => this.#onProgress(finSent));
    dropUnreadOnClose(this);
  }

  /** Current receive window (grows with auto-tuning). */
  get receiveWindow(): number {
    return this.#recv.size;
  }

  /** Bytes we may still send before the peer grants more. */
  get sendCredit(): number {
    return this.#sendCredit;
  }

  /** The receive-window reservation this stream holds in the session budget. */
  get reservedCredit(): number {
    return this.#recv.size;
  }

  /** Aborts the stream: sends RST with `code`, destroys locally. Idempotent. */
  reset(code: WireCode = WireCode.CANCEL): void {
    if (this.destroyed || this.resetCode !== undefined) return;
    this.resetCode = code;
    this.#host.sendReset(this.id, code);
    this.destroy();
  }

  // ---- called by Session ----

  /** @internal the peer accepted our SYN; `extra` is its window beyond the base credit. */
  onAck(extra: number): RelayError | undefined {
    this.#acked = true;
    this.#cancelOpenTimer?.();
    return this.onWindowUpdate(extra);
  }

  /** @internal fails the stream with ERR_MUX_OPEN_TIMEOUT unless the peer ACKs within `ms`. */
  armOpenTimer(clock: Clock, ms: number): void {
    const timer = clock.setTimeout(() => {
      this.#cancelOpenTimer = undefined;
      if (this.#acked || this.destroyed) return;
      if (this.#host.sendReset(this.id, WireCode.CANCEL)) this.resetCode = WireCode.CANCEL;
      this.destroy(
        new RelayError('ERR_MUX_OPEN_TIMEOUT', `stream ${this.id} not accepted within ${ms} ms`, {
          details: { streamId: this.id, timeoutMs: ms },
        }),
      );
    }, ms);
    this.#cancelOpenTimer = () => clock.clearTimeout(timer);
  }

  /** @internal inbound streams count as accepted from the start. */
  markAccepted(): void {
    this.#acked = true;
  }

  /** @internal returns an error when the credit would pass 2^31-1 (a violation). */
  onWindowUpdate(delta: number): RelayError | undefined {
    if (delta === 0) return undefined;
    const next = this.#sendCredit + delta;
    if (next > 0x7fff_ffff) {
      return new RelayError(
        'ERR_PROTOCOL_WINDOW_OVERFLOW',
        `window update of ${delta} on stream ${this.id} overflows 2^31-1`,
        { details: { streamId: this.id, delta, credit: this.#sendCredit } },
      );
    }
    this.#sendCredit = next;
    this.#pump();
    return undefined;
  }

  /** @internal DATA arrived. Returns an error on a violation (over window, after FIN). */
  onData(payload: Buffer, fin: boolean): RelayError | undefined {
    if (this.#remoteFin) {
      return new RelayError(
        'ERR_PROTOCOL_UNEXPECTED_FRAME',
        `DATA on stream ${this.id} after FIN`,
        {
          details: { streamId: this.id },
        },
      );
    }
    const n = payload.length;
    if (!this.#recv.receive(n)) {
      return new RelayError(
        'ERR_PROTOCOL_WINDOW_EXCEEDED',
        `stream ${this.id} received ${n} bytes with ${this.#recv.credit} of credit left`,
        { details: { streamId: this.id, length: n, credit: this.#recv.credit } },
      );
    }
    if (n > 0) {
      const own =
        n * COPY_BELOW_FRACTION < payload.buffer.byteLength ? Buffer.from(payload) : payload;
      this.#pushed += n;
      this.push(own);
      this.#noteConsumed();
    }
    if (fin) this.onFin();
    return undefined;
  }

  /** @internal the peer half-closed. */
  onFin(): void {
    if (this.#remoteFin) return;
    this.#remoteFin = true;
    this.push(null);
    this.#checkWireClosed();
  }

  /** @internal true once FIN went both ways (nothing more can happen on the wire). */
  get wireClosed(): boolean {
    return this.#wireClosed;
  }

  #checkWireClosed(): void {
    if (this.#wireClosed || !this.#remoteFin || !this.#queue.finSent) return;
    this.#wireClosed = true;
    this.#host.streamWireClosed(this);
  }

  /** @internal the peer reset the stream. */
  onReset(code: number): void {
    if (this.destroyed) return;
    this.resetCode = code as WireCode;
    this.destroy(resetError(this.id, code, this.#acked));
  }

  // ---- Duplex implementation ----

  override read(size?: number): unknown {
    const chunk = super.read(size);
    this.#noteConsumed();
    return chunk;
  }

  override _read(): void {
    this.#noteConsumed();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    if (chunk.length === 0) {
      cb();
      return;
    }
    this.#pending = chunk;
    this.#pendingOffset = 0;
    this.#pendingCb = cb;
    this.#pump();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.#finalCb = cb;
    this.#queue.fin = true;
    this.#host.enqueue(this.#queue);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const cleanEnd = this.#remoteFin && this.#queue.finSent;
    // resetCode records an RST that really crossed the wire: none is sent once the
    // session is gone (the stream error, ERR_MUX_SESSION_CLOSED, says why it died).
    if (
      !cleanEnd &&
      this.resetCode === undefined &&
      this.#host.sendReset(this.id, WireCode.CANCEL)
    ) {
      this.resetCode = WireCode.CANCEL;
    }
    this.#cancelOpenTimer?.();
    this.#cancelOpenTimer = undefined;
    this.#queue.dead = true;
    this.#queue.clear();
    const pendingCb = this.#pendingCb;
    const finalCb = this.#finalCb;
    this.#pending = undefined;
    this.#pendingCb = undefined;
    this.#finalCb = undefined;
    if (pendingCb || finalCb) {
      // Built only when a write is waiting: every stream is destroyed at its end, and an
      // Error (stack capture) per stream is measurable at thousands of requests a second.
      const gone = err ?? new RelayError('ERR_DESTROYED', `stream ${this.id} destroyed`);
      pendingCb?.(gone);
      finalCb?.(gone);
    }
    this.#host.streamClosed(this);
    cb(err);
  }

  /** Hands as much of the pending write to the scheduler as credit and queue cap allow. */
  #pump(): void {
    const chunk = this.#pending;
    if (chunk === undefined) return;
    const room = Math.min(this.#sendCredit, this.#queueCap - this.#queue.bytes);
    if (room <= 0) return;
    const left = chunk.length - this.#pendingOffset;
    const n = Math.min(room, left);
    this.#queue.push(
      n === chunk.length ? chunk : chunk.subarray(this.#pendingOffset, this.#pendingOffset + n),
    );
    this.#sendCredit -= n;
    this.#pendingOffset += n;
    this.#host.enqueue(this.#queue);
    if (this.#pendingOffset < chunk.length) return;
    const cb = this.#pendingCb!;
    this.#pending = undefined;
    this.#pendingCb = undefined;
    cb();
  }

  #onProgress(finSent: boolean): void {
    if (finSent && this.#finalCb) {
      const cb = this.#finalCb;
      this.#finalCb = undefined;
      this.#checkWireClosed();
      cb();
      return;
    }
    this.#pump();
  }

  /** Returns credit for bytes that have left the readable buffer. */
  #noteConsumed(): void {
    const consumed = this.#pushed - this.readableLength - this.#credited;
    if (consumed <= 0) return;
    this.#credited += consumed;
    if (this.#remoteFin || this.destroyed) return;
    const delta = this.#recv.consume(consumed);
    if (delta > 0) this.#host.sendWindowUpdate(this.id, delta);
  }
}
