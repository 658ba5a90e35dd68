/** A stalled response the watch may park: `park()` lets go of its stream (see body-relay.ts). */
export interface StalledResponse {
  /** When its client's socket became full and stayed so (performance.now()). */
  readonly at: number;
  /** Whether the client has taken bytes of this response after a full socket (a 'drain'). */
  readonly hasRead: boolean;
  park(): void;
}

export interface StallWatchOptions {
  /** Park a response whose client accepted no bytes for this long. */
  parkAfterMs: number;
  /**
   * Most stalled responses held (keeping their streams, and so their origin connections and
   * the socket buffers on that side) before early parking: beyond it, the longest stalled
   * are parked once stalled for `parkAfterMs / 100` (client not seen reading this
   * response yet) or `parkAfterMs / 10` (seen reading). @default 64
   */
  maxHeld?: number;
}

/**
 * The parkable stalled responses of one entry, each set in the order its stalls began (a
 * Set keeps insertion order, and a stall always begins "now"), so the next one due is the
 * first of a set: parking is O(parks), not O(stalls) per check. Checked when a stall begins
 * and by one timer armed for the next deadline.
 *
 * Early parking: a response read ahead for a client that never reads costs the entry its
 * origin connection's receive queue, which the kernel grows to megabytes within
 * milliseconds (1.4-4 MB sent by the origin per such response, measured), so 10,000
 * clients that connect at once and do not read, held for `parkAfterMs` each, take the
 * host's TCP memory past the kernel's pressure threshold and its CPU with them, slowing
 * every other client (docs/reliability.md, "Slow clients"). So once more than `maxHeld` are
 * stalled, the longest stalled are parked after `parkAfterMs / 100` when their client has
 * not drained its socket once during this response, after `parkAfterMs / 10` when it has.
 * A merely slow client still gets its body, through one extra Range request per park.
 */
export class StallWatch {
  readonly parkAfterMs: number;
  readonly maxHeld: number;
  /** Responses parked so far. */
  parked = 0;
  /** Of those, parked early (more than `maxHeld` stalled). */
  parkedEarly = 0;
  readonly #earlyMs: number;
  readonly #earlyReadMs: number;
  /** Stalled responses whose client has not read yet, then those whose client has. */
  readonly #unread = new Set<StalledResponse>();
  readonly #read = new Set<StalledResponse>();
  #timer: NodeJS.Timeout | undefined;
  #due = Number.POSITIVE_INFINITY;

  constructor(options: StallWatchOptions) {
    this.parkAfterMs = options.parkAfterMs;
    this.maxHeld = options.maxHeld ?? 64;
    this.#earlyMs = this.parkAfterMs / 100;
    this.#earlyReadMs = this.parkAfterMs / 10;
  }

  /** Stalled responses held now (watched, not parked yet). */
  get size(): number {
    return this.#unread.size + this.#read.size;
  }

  /**
   * Half the budget or more of stalled responses held at once: a crowd of clients that do
   * not read. Responses then write their first bytes in slices (body-relay.ts, pump), so
   * that a client that never reads keeps one slice at the entry, not a whole chunk.
   */
  get crowded(): boolean {
    return this.size * 2 >= this.maxHeld;
  }

  /** A stall began now: parks it when due, and parks whatever else is due already. */
  add(r: StalledResponse): void {
    (r.hasRead ? this.#read : this.#unread).add(r);
    this.check();
  }

  /** The stall ended (the client drained, went away, or the response ended). */
  delete(r: StalledResponse): void {
    if (!this.#unread.delete(r)) this.#read.delete(r);
  }

  /** Parks every response due now, oldest stall first; arms the timer for the next one. */
  check(now = performance.now()): void {
    for (const r of this.#unread) {
      const stalled = now - r.at;
      const early = this.size > this.maxHeld && stalled >= this.#earlyMs;
      if (stalled < this.parkAfterMs && !early) break;
      this.#park(this.#unread, r, stalled);
    }
    for (const r of this.#read) {
      const stalled = now - r.at;
      const early = this.size > this.maxHeld && stalled >= this.#earlyReadMs;
      if (stalled < this.parkAfterMs && !early) break;
      this.#park(this.#read, r, stalled);
    }
    this.#arm(now);
  }

  #park(from: Set<StalledResponse>, r: StalledResponse, stalled: number): void {
    from.delete(r);
    this.parked += 1;
    if (stalled < this.parkAfterMs) this.parkedEarly += 1;
    r.park();
  }

  /** One timer for the earliest deadline of the two sets' first responses. */
  #arm(now: number): void {
    const unread = this.#unread.values().next();
    const read = this.#read.values().next();
    const over = this.size > this.maxHeld;
    const due = Math.min(
      unread.done
        ? Number.POSITIVE_INFINITY
        : unread.value.at + (over ? this.#earlyMs : this.parkAfterMs),
      read.done
        ? Number.POSITIVE_INFINITY
        : read.value.at + (over ? this.#earlyReadMs : this.parkAfterMs),
    );
    if (due === Number.POSITIVE_INFINITY) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#due = due;
      return;
    }
    if (this.#timer && this.#due <= due) return; // fires first; re-arms then
    clearTimeout(this.#timer);
    this.#due = due;
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.#due = Number.POSITIVE_INFINITY;
        this.check();
      },
      Math.max(0, due - now),
    );
  }
}
