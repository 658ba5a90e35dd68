import { Flag, FRAME_HEADER_SIZE, FrameType, writeHeader } from '@relaymesh/shared';
import { processSlabPool, Slab, type SlabPool } from './slab-pool.ts';
import type { FrameTransport } from './transport.ts';

/**
 * One stream's outgoing bytes that already have the peer's credit, waiting for their
 * round-robin turn. The stream fills it; the {@link Scheduler} drains it.
 */
export class StreamSendQueue {
  readonly streamId: number;
  /** Bytes queued (credit already taken from the stream's send window). */
  bytes = 0;
  /** A FIN is due after the queued bytes. */
  fin = false;
  finSent = false;
  /** Set when the stream died: the scheduler drops what is left. */
  dead = false;
  /** In the scheduler's ring. */
  scheduled = false;
  readonly #chunks: Buffer[] = [];
  #head = 0;
  readonly #onProgress: (finSent: boolean) => void;

  /** @param onProgress called after each frame of this stream was handed to the transport. */
  constructor(streamId: number, onProgress: (finSent: boolean) => void) {
    this.streamId = streamId;
    this.#onProgress = onProgress;
  }

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.bytes += chunk.length;
  }

  /** More to send: bytes, or a FIN not yet sent. */
  get hasWork(): boolean {
    return !this.dead && (this.bytes > 0 || (this.fin && !this.finSent));
  }

  clear(): void {
    this.#chunks.length = 0;
    this.#head = 0;
    this.bytes = 0;
  }

  /** Copies up to `n` queued bytes into `target` at `offset`; returns how many. */
  takeInto(target: Buffer, offset: number, n: number): number {
    let copied = 0;
    while (copied < n && this.#head < this.#chunks.length) {
      const c = this.#chunks[this.#head]!;
      const want = n - copied;
      if (c.length <= want) {
        c.copy(target, offset + copied);
        copied += c.length;
        this.#chunks[this.#head++] = EMPTY;
      } else {
        c.copy(target, offset + copied, 0, want);
        this.#chunks[this.#head] = c.subarray(want);
        copied += want;
      }
    }
    if (this.#head > 64 && this.#head * 2 > this.#chunks.length) {
      this.#chunks.splice(0, this.#head);
      this.#head = 0;
    }
    this.bytes -= copied;
    return copied;
  }

  progress(): void {
    this.#onProgress(this.finSent);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * The session's send side. Control frames (WINDOW_UPDATE, PING, SYN/ACK/RST, GO_AWAY) go
 * to the transport at once, ahead of any DATA still waiting here. DATA leaves round-robin,
 * one frame of up to `frameSize` per stream per turn, and only while the transport's
 * `send` returns true; `drain` resumes it. All sends of one event-loop turn are corked
 * together and flushed in its check phase (setImmediate): the frames of every socket event
 * handled in one poll phase (50 requests' heads, bodies and FINs under load) leave in one
 * write instead of one write per event. A frame waits at most for the rest of the current
 * turn's I/O callbacks, never for a timer or another turn.
 *
 * Frames are cut from pooled slabs (slab-pool.ts), each preceded by the transport's
 * `headroom`, and handed over with their slab's `release`, so a slab is cut again once the
 * transport has written everything cut from it.
 */
export class Scheduler {
  readonly #transport: FrameTransport;
  readonly #frameSize: number;
  readonly #ring: StreamSendQueue[] = [];
  #ringHead = 0;
  #blocked = false;
  #corked = false;
  #closed = false;
  readonly #headroom: number;
  readonly #pool: SlabPool;
  #slab: Slab | undefined;

  /** @param pool where slabs come from and return to (default: the process's). */
  constructor(transport: FrameTransport, frameSize: number, pool: SlabPool = processSlabPool) {
    this.#transport = transport;
    this.#frameSize = frameSize;
    this.#headroom = transport.headroom ?? 0;
    this.#pool = pool;
  }

  /** True while the transport has refused more DATA (waiting for drain). */
  get blocked(): boolean {
    return this.#blocked;
  }

  /** Sends a header-only control frame now (it overtakes queued DATA). */
  control(type: FrameType, flags: number, streamId: number, length: number): void {
    if (this.#closed) return;
    const slab = this.#slabFor(this.#headroom + FRAME_HEADER_SIZE);
    const frame = slab.cut(this.#headroom + FRAME_HEADER_SIZE);
    writeHeader(frame, this.#headroom, type, flags, streamId, length);
    this.#cork();
    if (!this.#transport.send(frame, slab.release)) this.#blocked = true;
  }

  /** The queue has new work: put it in the ring and flush on the next tick. */
  enqueue(q: StreamSendQueue): void {
    if (this.#closed || q.scheduled || !q.hasWork) return;
    q.scheduled = true;
    this.#ring.push(q);
    this.#cork();
  }

  drain(): void {
    this.#blocked = false;
    if (this.#closed) return;
    this.#cork();
  }

  /** Stops all sending; queued DATA is dropped. */
  close(): void {
    this.#closed = true;
    this.#ring.length = 0;
    this.#ringHead = 0;
    this.#slab?.retire();
    this.#slab = undefined;
  }

  /** Corks now, uncorks once this turn's frames are out: one write per event-loop turn. */
  #cork(): void {
    if (this.#corked) return;
    this.#corked = true;
    // The flush must be queued before the transport corks: a transport may queue its own
    // safety uncork (WsTransport does, also with setImmediate), and that one must run
    // after the flush, or every frame of the flush goes out as its own write (one syscall
    // each). Immediates run in the order they were queued.
    setImmediate(this.#onTick);
    this.#transport.cork();
  }

  readonly #onTick = () => this.#tick();

  #tick(): void {
    try {
      if (!this.#closed) this.#flush();
    } finally {
      this.#corked = false;
      this.#transport.uncork();
    }
  }

  #flush(): void {
    while (!this.#blocked && this.#ringHead < this.#ring.length) {
      const q = this.#ring[this.#ringHead++]!;
      if (this.#ringHead > 1024 && this.#ringHead * 2 > this.#ring.length) {
        this.#ring.splice(0, this.#ringHead);
        this.#ringHead = 0;
      }
      if (!q.hasWork) {
        q.scheduled = false;
        continue;
      }
      const ok = this.#sendFrame(q);
      if (q.hasWork) this.#ring.push(q);
      else q.scheduled = false;
      if (!ok) this.#blocked = true;
      q.progress();
    }
    if (this.#ringHead === this.#ring.length) {
      this.#ring.length = 0;
      this.#ringHead = 0;
    }
  }

  /** Sends one DATA frame from `q`: header and payload in one buffer, one copy of the payload. */
  #sendFrame(q: StreamSendQueue): boolean {
    const n = Math.min(q.bytes, this.#frameSize);
    const size = this.#headroom + FRAME_HEADER_SIZE + n;
    const slab = this.#slabFor(size);
    const frame = slab.cut(size);
    q.takeInto(frame, this.#headroom + FRAME_HEADER_SIZE, n);
    let flags: number = Flag.NONE;
    if (q.bytes === 0 && q.fin) {
      flags = Flag.FIN;
      q.finSent = true;
    }
    writeHeader(frame, this.#headroom, FrameType.DATA, flags, q.streamId, n);
    return this.#transport.send(frame, slab.release);
  }

  /** The current slab if `size` bytes fit, else a new one (the old one is retired). */
  #slabFor(size: number): Slab {
    const current = this.#slab;
    if (current !== undefined && current.room >= size) return current;
    current?.retire();
    const next = new Slab(this.#pool, size);
    this.#slab = next;
    return next;
  }
}
