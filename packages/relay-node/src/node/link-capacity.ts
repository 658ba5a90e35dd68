/**
 * What one peer link can carry towards this node, from capacity probes
 * (docs/data-plane.md, kind 'probe'), and when to probe it next. Pure: the caller passes
 * the clock time and the tunnel's RTT figures; no timers here.
 *
 * ```
 *   samples (capped at 50 Mbit/s) ──> current = median of the last 3
 *                                     peak = max over the last 10 min
 *   fall:  current < peak / 2  ("degraded": the coordinator adds a cost; probe every 3 s)
 * ```
 *
 * Probe schedule: the first `firstDelayMs` after the tunnel comes up, then every
 * `intervalMs`; every `confirmMs` while the newest sample is below peak / 2 but `current`
 * is not yet (one low sample is not a fall, two are); every `degradedIntervalMs` while
 * degraded (to see the heal), `confirmMs` after a sample at or above peak / 2 (one good
 * sample is not a heal, two are); at most every `queueGapMs` while the tunnel's SRTT exceeds
 * its minimum by more than max(10 ms, 25 %) (a queue: the rate may have fallen). A failed
 * probe (peer refused the kind, tunnel gone) waits `intervalMs`.
 */

export interface LinkCapacityOptions {
  /** Regular probe period; 0 disables probing. @default 30000 */
  intervalMs: number;
  /** First probe after the tunnel comes up. @default 1000 */
  firstDelayMs: number;
  /** Period while degraded. @default 3000 */
  degradedIntervalMs: number;
  /** Follow-up of a single low sample, and of a single good one while degraded. @default 1000 */
  confirmMs: number;
  /** Least gap between probes triggered by a queue (SRTT above min RTT). @default 2000 */
  queueGapMs: number;
  /** How long the peak remembers a sample. @default 600000 */
  peakWindowMs: number;
  /**
   * Samples above this count as this (bytes per second): a 64 KiB probe faster than
   * 50 Mbit/s lasts under 10 ms, and its timing is scheduling noise, not the link.
   * @default 6250000 (50 Mbit/s)
   */
  ceilingBps: number;
}

export const DEFAULT_LINK_CAPACITY_OPTIONS: LinkCapacityOptions = {
  intervalMs: 30_000,
  firstDelayMs: 1000,
  degradedIntervalMs: 3000,
  confirmMs: 1000,
  queueGapMs: 2000,
  peakWindowMs: 600_000,
  ceilingBps: 6_250_000,
};

/** Most samples kept for the peak (one a second for 10 min fits; older ones age out). */
const MAX_SAMPLES = 1024;
/** Smallest adaptive probe (see probeBytes). */
const MIN_PROBE_BYTES = 4096;
/** Samples `current` is the median of. */
const MEDIAN_OF = 3;

/** A tunnel's RTT figures (mux keepalive), undefined before the first sample. */
export interface RttView {
  srttMs: number | undefined;
  minMs: number | undefined;
}

/** SRTT above the minimum by more than max(10 ms, 25 %): something queues on the link. */
export function queued(rtt: RttView): boolean {
  if (rtt.srttMs === undefined || rtt.minMs === undefined) return false;
  return rtt.srttMs - rtt.minMs > Math.max(10, 0.25 * rtt.minMs);
}

export class LinkCapacity {
  readonly #o: LinkCapacityOptions;
  /** Samples in arrival order: [time, bytes per second]. */
  readonly #samples: Array<[number, number]> = [];
  #lastProbeAt: number;
  #lastFailed = false;

  /** `now`: when the tunnel came up. */
  constructor(now: number, options: Partial<LinkCapacityOptions> = {}) {
    this.#o = { ...DEFAULT_LINK_CAPACITY_OPTIONS, ...options };
    this.#lastProbeAt = now - this.#o.intervalMs + this.#o.firstDelayMs;
  }

  /** A new tunnel to the peer: probe it soon (the history stays: same link). */
  tunnelUp(now: number): void {
    this.#lastProbeAt = Math.min(
      this.#lastProbeAt,
      now - this.#o.intervalMs + this.#o.firstDelayMs,
    );
    this.#lastFailed = false;
  }

  /** Median of the newest samples (bytes per second); undefined before the first. */
  get currentBps(): number | undefined {
    const last = this.#samples.slice(-MEDIAN_OF).map((s) => s[1]);
    if (last.length === 0) return undefined;
    last.sort((a, b) => a - b);
    // Two samples: the higher one, so that a fall, like a heal, takes two samples to show.
    return last[Math.ceil((last.length - 1) / 2)];
  }

  /** Highest sample within the peak window; undefined before the first. */
  peakBps(now: number): number | undefined {
    let peak: number | undefined;
    for (const [at, bps] of this.#samples) {
      if (now - at <= this.#o.peakWindowMs && (peak === undefined || bps > peak)) peak = bps;
    }
    return peak;
  }

  /** `current` < peak / 2: the link carries less than half of what it did. */
  degraded(now: number): boolean {
    const current = this.currentBps;
    const peak = this.peakBps(now);
    return current !== undefined && peak !== undefined && current < peak / 2;
  }

  /** Whether a probe should start now. */
  due(now: number, rtt: RttView): boolean {
    if (this.#o.intervalMs <= 0) return false;
    const since = now - this.#lastProbeAt;
    if (this.#lastFailed) return since >= this.#o.intervalMs;
    const newest = this.#samples[this.#samples.length - 1]?.[1];
    const peak = this.peakBps(now);
    const newestLow = newest !== undefined && peak !== undefined && newest < peak / 2;
    if (this.degraded(now)) {
      // One sample back above half the peak is confirmed as soon as a low one is: a heal,
      // like a fall, takes two samples, and routes wait for the second one (the penalty).
      return since >= (newestLow ? this.#o.degradedIntervalMs : this.#o.confirmMs);
    }
    if (newestLow) return since >= this.#o.confirmMs;
    if (queued(rtt) && since >= this.#o.queueGapMs) return true;
    return since >= this.#o.intervalMs;
  }

  /**
   * Bytes for the next probe: what the link carries in 100 ms at `current`, between
   * 4 KiB and `max`. On a fallen link a full probe would queue ahead of the tunnel's PINGs
   * for long (64 KiB at 2 Mbit/s: 262 ms) and inflate the RTT the coordinator keeps.
   */
  probeBytes(max: number): number {
    const current = this.currentBps;
    if (current === undefined) return max;
    return Math.max(Math.min(MIN_PROBE_BYTES, max), Math.min(max, Math.round(current / 10)));
  }

  /** A probe starts now. */
  started(now: number): void {
    this.#lastProbeAt = now;
  }

  /** A probe gave `bps` (bytes per second) at `now`. Garbage (<= 0, not finite) is ignored. */
  sample(now: number, bps: number): void {
    this.#lastFailed = false;
    if (!Number.isFinite(bps) || bps <= 0) return;
    this.#samples.push([now, Math.min(bps, this.#o.ceilingBps)]);
    while (
      this.#samples.length > MAX_SAMPLES ||
      (this.#samples.length > MEDIAN_OF && now - this.#samples[0]![0] > this.#o.peakWindowMs)
    ) {
      this.#samples.shift();
    }
  }

  /** A probe failed (refused by an older peer, tunnel gone): wait the regular period. */
  failed(): void {
    this.#lastFailed = true;
  }
}
