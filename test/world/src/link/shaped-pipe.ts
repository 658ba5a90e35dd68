import type net from 'node:net';
import type { LinkDirection, LinkUser } from './link-direction.ts';
import { type DelayScheduler, EARLY_TOLERANCE_MS } from './scheduler.ts';

/** Largest piece a read is cut into, so delivery is smooth rather than one burst per read. */
const MAX_PIECE_BYTES = 16 * 1024;
const MIN_PIECE_BYTES = 1460;
/** Pieces carry about this many milliseconds of the link's rate. */
const PIECE_MS = 4;

interface Pending {
  /** null = the sender's FIN. */
  buf: Buffer | null;
  at: number;
}

/**
 * One direction of one spliced connection: reads `src`, sends the bytes over `link`, and
 * writes them to `dst` when they "arrive". Release times never decrease, so jitter never
 * reorders a byte stream. Reading stops while the link is congested or `dst` has not
 * drained, which is how the sender feels backpressure.
 */
export class ShapedPipe implements LinkUser {
  readonly #src: net.Socket;
  readonly #dst: net.Socket;
  readonly #link: LinkDirection;
  readonly #scheduler: DelayScheduler;
  #pending: Pending[] = [];
  #head = 0;
  #lastAt = 0;
  #paused = false;
  #ended = false;
  #done = false;
  #pendingBytes = 0;
  #scheduledAt = Number.POSITIVE_INFINITY;

  constructor(src: net.Socket, dst: net.Socket, link: LinkDirection, scheduler: DelayScheduler) {
    this.#src = src;
    this.#dst = dst;
    this.#link = link;
    this.#scheduler = scheduler;
    link.attach(this);
  }

  /** Bytes read from `src` and not yet written to `dst` (still "on the wire"). */
  get heldBytes(): number {
    return this.#pendingBytes;
  }

  /** True once the FIN was delivered to `dst`. */
  get finished(): boolean {
    return this.#ended && this.#pending.length === this.#head;
  }

  /** Starts moving bytes; `first` holds bytes read before the pipe existed. */
  start(first?: Buffer): void {
    if (first && first.length > 0) this.#onData(first);
    this.#src.on('data', this.#onData);
    this.#src.on('end', this.#onEnd);
    this.#dst.on('drain', this.#updateFlow);
    // The source may have been paused explicitly while its first bytes were parsed.
    this.#src.resume();
    this.#updateFlow();
  }

  /** Drops everything held and stops; idempotent. */
  stop(): void {
    if (this.#done) return;
    this.#done = true;
    this.#src.off('data', this.#onData);
    this.#src.off('end', this.#onEnd);
    this.#dst.off('drain', this.#updateFlow);
    this.#link.delivered(this.#pendingBytes);
    this.#pendingBytes = 0;
    this.#pending = [];
    this.#head = 0;
    this.#link.detach(this);
  }

  retime(at: number): void {
    for (let i = this.#head; i < this.#pending.length; i++) {
      const p = this.#pending[i]!;
      if (p.at < at) p.at = at;
    }
    if (this.#lastAt < at) this.#lastAt = at;
    this.#scheduledAt = Number.POSITIVE_INFINITY;
    this.#scheduleHead();
  }

  readonly #onData = (chunk: Buffer): void => {
    if (this.#done) return;
    const now = this.#scheduler.now();
    const piece = this.#pieceBytes();
    for (let off = 0; off < chunk.length; off += piece) {
      const buf = chunk.subarray(off, Math.min(chunk.length, off + piece));
      this.#enqueue(buf, this.#link.transmit(buf.length, now));
      this.#pendingBytes += buf.length;
    }
    this.#updateFlow();
  };

  readonly #onEnd = (): void => {
    if (this.#done) return;
    this.#enqueue(null, this.#link.transmit(0, this.#scheduler.now()));
  };

  #pieceBytes(): number {
    const bps = this.#link.profile.bandwidthBps;
    const bytes = Number.isFinite(bps) && bps > 0 ? (bps / 8 / 1000) * PIECE_MS : MAX_PIECE_BYTES;
    return Math.max(MIN_PIECE_BYTES, Math.min(MAX_PIECE_BYTES, Math.floor(bytes)));
  }

  #enqueue(buf: Buffer | null, arrival: number): void {
    const at = Math.max(this.#lastAt, arrival);
    this.#lastAt = at;
    this.#pending.push({ buf, at });
    this.#scheduleHead();
  }

  #scheduleHead(): void {
    const head = this.#pending[this.#head];
    if (!head || this.#done || head.at >= this.#scheduledAt) return;
    this.#scheduledAt = head.at;
    this.#scheduler.schedule(head.at, this.#flush);
  }

  readonly #flush = (): void => {
    this.#scheduledAt = Number.POSITIVE_INFINITY;
    // Blackholed: hold everything; heal() retimes and reschedules.
    if (this.#done || this.#link.blackholed) return;
    const limit = this.#scheduler.now() + EARLY_TOLERANCE_MS;
    let released = 0;
    for (let p = this.#pending[this.#head]; p && p.at <= limit; p = this.#pending[this.#head]) {
      this.#head++;
      if (p.buf === null) {
        this.#ended = true;
        this.#dst.end();
      } else if (!this.#dst.destroyed) {
        this.#dst.write(p.buf);
        released += p.buf.length;
      } else {
        released += p.buf.length;
      }
    }
    this.#compact();
    this.#pendingBytes -= released;
    this.#link.delivered(released);
    this.#scheduleHead();
    this.#updateFlow();
  };

  #compact(): void {
    if (this.#head > 1024 || this.#head === this.#pending.length) {
      this.#pending = this.#pending.slice(this.#head);
      this.#head = 0;
    }
  }

  readonly #updateFlow = (): void => {
    if (this.#done) return;
    const blocked = this.#link.congested(this.#scheduler.now()) || this.#dst.writableNeedDrain;
    if (blocked && !this.#paused) {
      this.#paused = true;
      this.#src.pause();
    } else if (!blocked && this.#paused) {
      this.#paused = false;
      this.#src.resume();
    }
    if (blocked && !this.#dst.writableNeedDrain) this.#link.waitForRoom(this.#updateFlow);
  };
}
