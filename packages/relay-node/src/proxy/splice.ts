import { Duplex } from 'node:stream';
import { RelayError, WireCode } from '@relaymesh/shared';
import { dropUnreadOnClose } from '../mux/drop-unread.ts';
import type { HopStream } from './types.ts';

/**
 * Aborts a stream, telling the far side why: RST with `code` on a mux stream, a plain
 * destroy on anything else (a socket, a test pipe). Idempotent.
 */
export function resetStream(stream: HopStream, code: WireCode, cause?: Error): void {
  if (stream.destroyed) return;
  if (typeof stream.reset === 'function') stream.reset(code);
  else stream.destroy(cause);
}

/** The wire code a stream ended with: its RST code, or CANCEL when it just died. */
export function endCode(stream: HopStream): WireCode {
  return stream.resetCode ?? WireCode.CANCEL;
}

export interface SpliceResult {
  /** Both directions finished with FIN. */
  clean: boolean;
  bytesAtoB: number;
  bytesBtoA: number;
}

/**
 * Joins two streams both ways with backpressure (`pipe`: a slow reader pauses its own
 * writer only). Each direction half-closes on its own (FIN follows FIN); when either side
 * dies without a FIN, the other is reset with the same wire code (RST follows RST), so both
 * ends agree. Resolves once both are closed; never rejects.
 */
export function splice(a: HopStream, b: HopStream): Promise<SpliceResult> {
  return new Promise((resolve) => {
    const result: SpliceResult = { clean: true, bytesAtoB: 0, bytesBtoA: 0 };
    let open = 2;
    const count = (dir: 'bytesAtoB' | 'bytesBtoA') => (chunk: Buffer) => {
      result[dir] += chunk.length;
    };
    a.on('data', count('bytesAtoB'));
    b.on('data', count('bytesBtoA'));
    const onClose = (self: HopStream, other: HopStream) => () => {
      // A close before both directions ended is an abort: pass it on.
      if (!(self.readableEnded && self.writableFinished)) {
        result.clean = false;
        resetStream(other, endCode(self));
      }
      open -= 1;
      if (open === 0) resolve(result);
    };
    // Errors are reported through 'close' (resetCode); swallow them so nothing throws.
    a.on('error', () => {});
    b.on('error', () => {});
    a.once('close', onClose(a, b));
    b.once('close', onClose(b, a));
    a.pipe(b);
    b.pipe(a);
  });
}

class PairEnd extends Duplex {
  peer: PairEnd | undefined;
  #pending: (() => void) | undefined;

  constructor() {
    super({ allowHalfOpen: true, highWaterMark: 64 * 1024 });
    dropUnreadOnClose(this);
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const peer = this.peer;
    if (!peer || peer.destroyed) {
      cb(new RelayError('ERR_CLOSED', 'pipe peer is gone'));
      return;
    }
    if (peer.push(chunk)) cb();
    else this.#pending = cb;
  }

  override _read(): void {
    const peer = this.peer;
    if (!peer) return;
    const cb = peer.#pending;
    peer.#pending = undefined;
    cb?.();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.peer?.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    // autoDestroy after a clean FIN both ways is not a reset: the peer may still hold
    // unread data. Anything else is an abort and kills the peer too (like a TCP RST).
    const clean = err === null && this.readableEnded && this.writableFinished;
    if (peer && !peer.destroyed && !clean) peer.destroy();
    cb(err);
  }
}

/**
 * Two connected in-process Duplex ends with backpressure, FIN and reset (destroy) passing
 * between them. Used when the entry is also the exit (a one-node path), so that the exit
 * serves the stream exactly as it would over a tunnel.
 */
export function duplexPair(): [HopStream, HopStream] {
  const a = new PairEnd();
  const b = new PairEnd();
  a.peer = b;
  b.peer = a;
  return [a, b];
}
