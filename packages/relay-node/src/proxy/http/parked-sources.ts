/**
 * Parked responses per client source address (docs/reliability.md, "Slow clients"): who
 * holds the entry's parked responses now. A parked response costs the entry its client
 * connection and little else (body-relay.ts), so the number that matters to an operator is
 * how many one address holds: one client, a broken proxy or an abuser holding thousands
 * can be named, and firewalled or served elsewhere.
 *
 * `warnAt` > 0: `onCrowded` is called when a source's count reaches `warnAt`, and again at
 * each doubling (2 × warnAt, 4 × ...), so an episode of N parked responses logs
 * about log2(N / warnAt) + 1 lines; the count must fall below `warnAt / 2` before the
 * first level fires again. A source with nothing parked leaves no entry behind.
 */
export interface ParkedSourcesOptions {
  /** 0: never call `onCrowded`. */
  warnAt: number;
  onCrowded?: (e: { source: string; parked: number }) => void;
}

interface Entry {
  parked: number;
  /** The count at which `onCrowded` fires next. */
  nextWarn: number;
}

export class ParkedSources {
  readonly #warnAt: number;
  readonly #onCrowded: ParkedSourcesOptions['onCrowded'];
  readonly #by = new Map<string, Entry>();
  #total = 0;

  constructor(o: ParkedSourcesOptions) {
    this.#warnAt = o.warnAt;
    this.#onCrowded = o.onCrowded;
  }

  /** Parked responses now, all sources. */
  get total(): number {
    return this.#total;
  }

  /** Sources with at least one parked response now. */
  get sources(): number {
    return this.#by.size;
  }

  /** A response of `source` was parked. */
  add(source: string): void {
    let e = this.#by.get(source);
    if (!e) {
      e = { parked: 0, nextWarn: this.#warnAt };
      this.#by.set(source, e);
    }
    e.parked += 1;
    this.#total += 1;
    if (this.#warnAt > 0 && e.parked >= e.nextWarn) {
      e.nextWarn *= 2;
      this.#onCrowded?.({ source, parked: e.parked });
    }
  }

  /** A parked response of `source` ended: resumed, reset, or its client went. */
  delete(source: string): void {
    const e = this.#by.get(source);
    if (!e) return;
    e.parked -= 1;
    this.#total -= 1;
    if (e.parked <= 0) {
      this.#by.delete(source);
      return;
    }
    if (e.parked * 2 < this.#warnAt) e.nextWarn = this.#warnAt;
  }

  /** Parked responses now of `source` (0 when none). */
  of(source: string): number {
    return this.#by.get(source)?.parked ?? 0;
  }

  /** The sources with at least `n` parked responses now, in no order (no sort: O(sources)). */
  atLeast(n: number): Array<{ source: string; parked: number }> {
    const out: Array<{ source: string; parked: number }> = [];
    for (const [source, e] of this.#by) if (e.parked >= n) out.push({ source, parked: e.parked });
    return out;
  }

  /** The `n` sources with the most parked responses now, most first. */
  top(n: number): Array<{ source: string; parked: number }> {
    const all = [...this.#by].map(([source, e]) => ({ source, parked: e.parked }));
    return all.sort((a, b) => b.parked - a.parked || (a.source < b.source ? -1 : 1)).slice(0, n);
  }
}
