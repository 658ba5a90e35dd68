import { Duplex } from 'node:stream';

/** Options of {@link createMemoryPair}. */
export interface MemoryPairOptions {
  /** Per-end buffering before a writer feels backpressure. Default 256 KiB. */
  highWaterMark?: number;
  /** One-way delay of every chunk in ms, like a WAN link. Default 0 (delivered at once). */
  latencyMs?: number;
  /**
   * With a latency: bytes one direction may have in flight (written, not yet taken by the
   * reader) before writes wait, i.e. the link's buffer. Default 4 MiB.
   */
  inFlightBytes?: number;
}

/**
 * One end of an in-memory byte pipe. What one end writes, the other reads, with
 * backpressure: without latency a write completes once the peer's readable buffer is below
 * its high-water mark; with latency, once the direction has less than `inFlightBytes`
 * in flight. Chunks are passed by reference (no copy). Destroying one end destroys the
 * other (like a TCP reset); ending one end ends the peer's readable side (like a FIN).
 */
class MemoryEnd extends Duplex {
  peer: MemoryEnd | undefined;
  readonly #latencyMs: number;
  readonly #inFlightCap: number;
  /** As a reader: the peer's write callback, held until we want more data. */
  #blockedWriter: (() => void) | undefined;
  /** As a writer (latency mode): bytes sent and not yet taken by the reader. */
  #inFlight = 0;
  #writeWaiters: Array<() => void> = [];
  /** As a reader (latency mode): bytes that arrived while our buffer was full. */
  #parked = 0;

  constructor(highWaterMark: number, latencyMs: number, inFlightCap: number) {
    super({ highWaterMark, allowHalfOpen: true });
    this.#latencyMs = latencyMs;
    this.#inFlightCap = inFlightCap;
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
    if (this.#latencyMs > 0) {
      this.#deliverLater(chunks, cb);
      return;
    }
    let ok = true;
    // Zero-copy: the reader gets the writer's buffers, so a writer must not reuse a buffer
    // it has written (the mux never does; every frame is a fresh buffer).
    for (const c of chunks) ok = peer.push(c);
    if (ok) cb();
    else peer.#blockedWriter = () => cb();
  }

  #deliverLater(chunks: Buffer[], cb: () => void): void {
    let bytes = 0;
    for (const c of chunks) bytes += c.length;
    this.#inFlight += bytes;
    // Same delay for every chunk: timers fire in order, so the byte order is kept.
    setTimeout(() => this.#arrive(chunks, bytes), this.#latencyMs);
    if (this.#inFlight < this.#inFlightCap) cb();
    else this.#writeWaiters.push(cb);
  }

  #arrive(chunks: Buffer[], bytes: number): void {
    const peer = this.peer;
    if (!peer || peer.destroyed) {
      this.#settle(bytes);
      return;
    }
    let ok = true;
    for (const c of chunks) ok = peer.push(c);
    if (ok) this.#settle(bytes);
    else peer.#parked += bytes;
  }

  /** `bytes` left the link: release writers waiting for room. */
  #settle(bytes: number): void {
    this.#inFlight -= bytes;
    while (this.#inFlight < this.#inFlightCap && this.#writeWaiters.length > 0) {
      this.#writeWaiters.shift()!();
    }
  }

  override _read(): void {
    const release = this.#blockedWriter;
    this.#blockedWriter = undefined;
    release?.();
    if (this.#parked > 0 && this.peer) {
      const n = this.#parked;
      this.#parked = 0;
      this.peer.#settle(n);
    }
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.#latencyMs > 0) setTimeout(() => this.peer?.push(null), this.#latencyMs);
    else this.peer?.push(null);
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const peer = this.peer;
    this.peer = undefined;
    // Writers blocked on us must not hang: release them (they are destroyed just below).
    const release = this.#blockedWriter;
    this.#blockedWriter = undefined;
    release?.();
    for (const w of this.#writeWaiters.splice(0)) w();
    if (peer && !peer.destroyed) peer.destroy();
    cb(err);
  }
}

/**
 * Two connected in-memory Duplexes, for tests and benchmarks.
 * @param options a number is the highWaterMark (default 256 KiB); see {@link MemoryPairOptions}.
 */
export function createMemoryPair(options: number | MemoryPairOptions = {}): [Duplex, Duplex] {
  const o = typeof options === 'number' ? { highWaterMark: options } : options;
  const hwm = o.highWaterMark ?? 256 * 1024;
  const latency = o.latencyMs ?? 0;
  const inFlight = o.inFlightBytes ?? 4 * 1024 * 1024;
  const a = new MemoryEnd(hwm, latency, inFlight);
  const b = new MemoryEnd(hwm, latency, inFlight);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
