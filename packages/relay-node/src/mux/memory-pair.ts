import { Duplex } from 'node:stream';

/**
 * One end of an in-memory byte pipe. What one end writes, the other reads, with
 * backpressure: a write completes only once the peer's readable buffer is below its
 * high-water mark. Chunks are passed by reference (no copy). Destroying one end destroys the other (like a TCP reset); ending one
 * end ends the peer's readable side (like a TCP FIN).
 */
class MemoryEnd extends Duplex {
  peer: MemoryEnd | undefined;
  /** As a reader: the peer's write callback, held until we want more data. */
  #blockedWriter: (() => void) | undefined;

  constructor(highWaterMark: number) {
    super({ highWaterMark, allowHalfOpen: true });
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.#deliver([chunk], cb);
  }

  override _writev(
    chunks: Array<{ chunk: Buffer; encoding: BufferEncoding }>,
    cb: (err?: Error | null) => void,
  ): void {
    this.#deliver(
      chunks.map((c) => c.chunk),
      cb,
    );
  }

  #deliver(chunks: Buffer[], cb: (err?: Error | null) => void): void {
    const peer = this.peer;
    if (!peer || peer.destroyed) {
      cb(new Error('memory pipe peer is gone'));
      return;
    }
    let ok = true;
    // Zero-copy: the reader gets the writer's buffers, so a writer must not reuse a buffer
    // it has written (the mux never does; every frame is a fresh buffer).
    for (const c of chunks) ok = peer.push(c);
    if (ok) cb();
    else peer.#blockedWriter = () => cb();
  }

  override _read(): void {
    const release = this.#blockedWriter;
    this.#blockedWriter = undefined;
    release?.();
  }

  override _final(cb: (err?: Error | null) => void): void {
    this.peer?.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    // A writer blocked on us must not hang: release it (it is destroyed just below).
    const release = this.#blockedWriter;
    this.#blockedWriter = undefined;
    release?.();
    if (peer && !peer.destroyed) peer.destroy();
    cb(err);
  }
}

/**
 * Two connected in-memory Duplexes, for tests and benchmarks.
 * @param highWaterMark per-direction buffering before a writer feels backpressure. Default 256 KiB.
 */
export function createMemoryPair(highWaterMark = 256 * 1024): [Duplex, Duplex] {
  const a = new MemoryEnd(highWaterMark);
  const b = new MemoryEnd(highWaterMark);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
