import type { Duplex } from 'node:stream';
import { FrameDecoder, RelayError } from '@relaymesh/shared';
import type { FrameTransport, FrameTransportHandlers } from './transport.ts';

export interface StreamTransportOptions {
  /**
   * `send` returns false once this many bytes wait in user space. Default 256 KiB. The
   * effective mark is never below the Duplex's own writableHighWaterMark, so that every
   * false is followed by the Duplex's 'drain' (which fires when its buffer is empty).
   */
  highWaterMark?: number;
  /** For logs, e.g. "tcp 127.0.0.1:4100". Default "stream". */
  description?: string;
  /**
   * The Duplex copies what is written before its write callback fires (a net.Socket:
   * into the kernel), so the scheduler may reuse a frame's memory after it. Not so for
   * the memory pair, which hands chunks to the reader by reference. Default false.
   */
  copiesOnWrite?: boolean;
}

/** Default user-space send queue cap (research/transport.md §0: 256 KiB–1 MiB). */
export const DEFAULT_TRANSPORT_HIGH_WATER_MARK = 256 * 1024;

/** How long a transport that failed to decode may still flush its queued frames. */
const FLUSH_GRACE_MS = 1000;

/**
 * {@link FrameTransport} over any Duplex carrying a byte stream (net.Socket, TLS socket,
 * one end of {@link createMemoryPair}). Frames are delimited by their headers.
 * The transport owns the Duplex: `end`/`destroy` end/destroy it.
 */
export class StreamTransport implements FrameTransport {
  readonly description: string;
  readonly #duplex: Duplex;
  readonly #hwm: number;
  readonly #copiesOnWrite: boolean;
  readonly #decoder = new FrameDecoder();
  #handlers: FrameTransportHandlers | undefined;
  #needDrain = false;
  #failed = false;
  #closed = false;

  constructor(duplex: Duplex, options: StreamTransportOptions = {}) {
    this.#duplex = duplex;
    this.#hwm = Math.max(
      options.highWaterMark ?? DEFAULT_TRANSPORT_HIGH_WATER_MARK,
      duplex.writableHighWaterMark,
    );
    this.description = options.description ?? 'stream';
    this.#copiesOnWrite = options.copiesOnWrite ?? false;
  }

  get bufferedAmount(): number {
    return this.#duplex.writableLength;
  }

  start(handlers: FrameTransportHandlers): void {
    if (this.#handlers) throw new RelayError('ERR_INTERNAL', 'transport started twice');
    this.#handlers = handlers;
    const d = this.#duplex;
    d.on('data', (chunk: Buffer) => this.#onData(chunk));
    d.on('end', () => this.#onEnd());
    d.on('drain', () => this.#onDrain());
    d.on('error', (err: Error) => this.#fail(err));
    d.on('close', () => this.#onClose());
    if (d.destroyed) queueMicrotask(() => this.#onClose());
  }

  /** `written` is passed on only with `copiesOnWrite`. */
  send(frame: Buffer, written?: () => void): boolean {
    // A decode failure stops reading only: the session may still send its GO_AWAY.
    if (this.#duplex.destroyed || this.#duplex.writableEnded) return false;
    if (written !== undefined && this.#copiesOnWrite) this.#duplex.write(frame, written);
    else this.#duplex.write(frame);
    if (this.#duplex.writableLength < this.#hwm) return true;
    this.#needDrain = true;
    return false;
  }

  cork(): void {
    this.#duplex.cork();
  }

  uncork(): void {
    this.#duplex.uncork();
  }

  pause(): void {
    this.#duplex.pause();
  }

  resume(): void {
    this.#duplex.resume();
  }

  end(): void {
    if (this.#duplex.writableEnded || this.#duplex.destroyed) return;
    // Undo any cork left by the caller so queued frames go out before the FIN.
    while (this.#duplex.writableCorked > 0) this.#duplex.uncork();
    this.#duplex.end();
  }

  destroy(err?: Error): void {
    this.#duplex.destroy(err);
  }

  #onData(chunk: Buffer): void {
    const h = this.#handlers;
    if (!h || this.#failed) return;
    const out = this.#decoder.push(chunk);
    for (let i = 0; i < out.length; i++) {
      const item = out[i]!;
      if (item instanceof Error) {
        this.#fail(item, true);
        return;
      }
      h.frame(item);
      if (this.#failed || this.#closed) return;
    }
  }

  #onEnd(): void {
    const bad = this.#decoder.end();
    if (bad) {
      this.#fail(bad, true);
      return;
    }
    // The peer will send nothing more: finish our side too, so 'close' follows.
    this.end();
  }

  #onDrain(): void {
    if (!this.#needDrain) return;
    this.#needDrain = false;
    this.#handlers?.drain();
  }

  /**
   * After a decoding violation the session may still flush a GO_AWAY (`flush`): reading
   * stops, the write side ends, and the Duplex is destroyed at the latest after
   * {@link FLUSH_GRACE_MS}. An I/O error destroys at once.
   */
  #fail(err: Error, flush = false): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#handlers?.error(err);
    if (!flush) {
      this.#duplex.destroy();
      return;
    }
    this.end();
    setTimeout(() => this.#duplex.destroy(), FLUSH_GRACE_MS).unref();
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#handlers?.close();
  }
}
