/**
 * One timer for all delayed work of an emulator process.
 *
 * Why not a setTimeout per chunk: thousands of timers per second cost more than a heap, and
 * one timer keeps every release on the same monotonic clock (`performance.now()`), so
 * delays do not drift chunk after chunk. Node timers have 1 ms granularity; an entry may
 * run up to {@link EARLY_TOLERANCE_MS} before its time and usually runs under 1-2 ms late.
 */
export const EARLY_TOLERANCE_MS = 0.5;

interface Entry {
  at: number;
  seq: number;
  fn: () => void;
}

export class DelayScheduler {
  readonly #heap: Entry[] = [];
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Number.POSITIVE_INFINITY;
  #closed = false;
  /** Lateness of the delay line itself (event-loop lag), for the stats API. */
  readonly lateness = { entries: 0, over2Ms: 0, over10Ms: 0, maxMs: 0 };

  now(): number {
    return performance.now();
  }

  /** Runs `fn` at time `at` (same clock as {@link now}). Entries with equal times run FIFO. */
  schedule(at: number, fn: () => void): void {
    if (this.#closed) return;
    this.#push({ at, seq: this.#seq++, fn });
    if (at < this.#timerAt) this.#arm();
  }

  /** Drops all pending work; idempotent. */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#heap.length = 0;
  }

  #arm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    const head = this.#heap[0];
    if (!head) {
      this.#timerAt = Number.POSITIVE_INFINITY;
      return;
    }
    this.#timerAt = head.at;
    const delay = Math.max(0, Math.ceil(head.at - this.now() - EARLY_TOLERANCE_MS));
    this.#timer = setTimeout(this.#run, delay);
    this.#timer.unref();
  }

  readonly #run = (): void => {
    this.#timer = undefined;
    const limit = this.now() + EARLY_TOLERANCE_MS;
    for (let head = this.#heap[0]; head && head.at <= limit; head = this.#heap[0]) {
      this.#pop();
      this.#recordLateness(limit - EARLY_TOLERANCE_MS - head.at);
      try {
        head.fn();
      } catch {
        // Callbacks destroy their own resources on error; one bad entry must not stop the rest.
      }
    }
    if (!this.#closed) this.#arm();
  };

  #recordLateness(ms: number): void {
    const l = this.lateness;
    l.entries++;
    if (ms > 2) l.over2Ms++;
    if (ms > 10) l.over10Ms++;
    if (ms > l.maxMs) l.maxMs = ms;
  }

  #less(a: Entry, b: Entry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(e: Entry): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop();
    if (!last || h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && this.#less(h[l]!, h[m]!)) m = l;
      if (r < h.length && this.#less(h[r]!, h[m]!)) m = r;
      if (m === i) break;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}
