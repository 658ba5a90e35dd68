/**
 * Memory for outgoing frames. A {@link Scheduler} cuts its frames out of 128 KiB slabs
 * (one allocation per slab instead of one per frame) and hands each frame to the transport
 * together with its slab's `release`. Once every frame cut from a slab has been released
 * (the transport wrote it to the kernel) and the scheduler has moved on to another slab,
 * the slab goes back to a process-wide pool and is cut again.
 *
 * Why: at 1-1.5 GB/s a fresh slab per 128 KiB is 10,000 external allocations a second,
 * and V8 answers external-memory growth with full (mark-compact) collections, about 20 a
 * second, each pausing the event loop for 5-20 ms (docs/performance.md, head-of-line).
 *
 * Safety: a slab is reused only after `release` was called for every frame cut from it.
 * A transport that cannot tell when its bytes are no longer read (the in-memory pair
 * passes chunks by reference) never calls `release`, and its slabs are simply dropped
 * for the garbage collector, as before.
 */

/**
 * 128 KiB keeps a full 16 KiB payload at 1/8 of its slab, so a zero-copy receiver (the
 * memory pair) does not take it for a small view worth copying (see stream.ts).
 */
export const SLAB_SIZE = 128 * 1024;

/** Free slabs kept for reuse by default: 32 x 128 KiB = 4 MiB per process at most. */
export const DEFAULT_MAX_FREE_SLABS = 32;

/** Free slabs shared by every scheduler of the process (one event loop: no locking). */
export class SlabPool {
  readonly #free: Buffer[] = [];
  readonly #maxFree: number;
  #allocated = 0;
  #reused = 0;

  constructor(maxFree = DEFAULT_MAX_FREE_SLABS) {
    this.#maxFree = maxFree;
  }

  /** A slab of {@link SLAB_SIZE} bytes, reused when one is free. Contents are garbage. */
  take(): Buffer {
    const free = this.#free.pop();
    if (free !== undefined) {
      this.#reused++;
      return free;
    }
    this.#allocated++;
    return Buffer.allocUnsafeSlow(SLAB_SIZE);
  }

  /** Returns a slab nobody references any more; kept if the pool has room. */
  give(slab: Buffer): void {
    if (slab.length === SLAB_SIZE && this.#free.length < this.#maxFree) this.#free.push(slab);
  }

  /** Slabs waiting to be reused. */
  get freeCount(): number {
    return this.#free.length;
  }

  /** Slabs allocated and slabs handed out again since the pool was made (diagnostics). */
  get stats(): { allocated: number; reused: number } {
    return { allocated: this.#allocated, reused: this.#reused };
  }
}

export const processSlabPool = new SlabPool();

/** One slab being cut into frames, with the count of those frames not yet released. */
export class Slab {
  readonly buf: Buffer;
  #used = 0;
  #pending = 0;
  #retired = false;
  readonly #pool: SlabPool;

  /** A slab from `pool`, or a one-off buffer of `size` bytes when that is larger. */
  constructor(pool: SlabPool, size: number) {
    this.#pool = pool;
    this.buf = size > SLAB_SIZE ? Buffer.allocUnsafeSlow(size) : pool.take();
  }

  get room(): number {
    return this.buf.length - this.#used;
  }

  /** The next `size` bytes; the caller must pass {@link release} along with them. */
  cut(size: number): Buffer {
    const out = this.buf.subarray(this.#used, this.#used + size);
    this.#used += size;
    this.#pending++;
    return out;
  }

  /** One frame cut from this slab will never be read again. Called once per `cut`. */
  readonly release = (): void => {
    if (--this.#pending === 0 && this.#retired) this.#pool.give(this.buf);
  };

  /** No more cuts: the slab goes back to the pool once every cut is released. */
  retire(): void {
    if (this.#retired) return;
    this.#retired = true;
    if (this.#pending === 0) this.#pool.give(this.buf);
  }
}
