import type { LinkEstimate, OriginLegEstimate } from '../paths/index.ts';
import { bandwidthPenaltyMs } from './bandwidth-penalty.ts';

/** One peer sample from a node's report. */
export interface PeerSample {
  peerId: string;
  srttMs: number;
  jitterMs: number;
  /**
   * Least RTT of the reporter's last few PINGs; 0 or absent = unknown (a node that does
   * not report it), and the link is estimated from `srttMs` instead.
   */
  baseRttMs?: number;
  reachable: boolean;
  /** Capacity probes, bytes per second (peer -> reporter); 0 or absent: unknown. */
  capacityBps?: number;
  peakCapacityBps?: number;
}

/** One origin-upstream sample from a node's report. */
export interface OriginSample {
  origin: string;
  upstream: string;
  rttMs: number;
  reachable: boolean;
}

/** Smoothing knobs. */
export interface MatrixOptions {
  /** EWMA weight of a new sample (the node already filters its PINGs). @default 0.3 */
  alpha: number;
  /**
   * Link cost = smoothed RTT + jitterWeight x smoothed jitter. Half the jitter: enough to
   * prefer a steady link over a swinging one of the same RTT, but not so much that the
   * jitter terms of a relayed path (one per link) outweigh a real RTT gain. @default 0.5
   */
  jitterWeight: number;
  /** Samples above this are treated as garbage and ignored. @default 60000 */
  maxRttMs: number;
  /** Most entries kept from one report (peers and origin samples each). @default 4096 */
  maxEntriesPerReport: number;
}

export const DEFAULT_MATRIX_OPTIONS: MatrixOptions = {
  alpha: 0.3,
  jitterWeight: 0.5,
  maxRttMs: 60_000,
  maxEntriesPerReport: 4096,
};

interface Smoothed {
  rttMs: number;
  jitterMs: number;
  /** Links only: the newest sample's rise over the smoothed RTT before it, not smoothed. */
  riseMs?: number;
  /** Links only: the bandwidth penalty of the newest report, not smoothed (see bandwidthPenaltyMs). */
  penaltyMs?: number;
}

/**
 * A link's base RTT sample that differs from its smoothed RTT by at least this fraction of
 * it... (see LatencyMatrix#linkRtt)
 */
const LEVEL_SHIFT_RATIO = 0.2;
/** ...and by at least this many ms is a level shift, taken at once. */
const LEVEL_SHIFT_MS = 10;

/** A link's smoothed jitter is at most this many times its newest figure... */
const JITTER_CAP_FACTOR = 2;
/** ...plus this (ms), so that a steady link's small figures still smooth. */
const JITTER_CAP_MS = 1;

function valid(v: number, max: number): boolean {
  return Number.isFinite(v) && v >= 0 && v <= max;
}

/**
 * The coordinator's view of the mesh: per directed link (reporter -> peer) a smoothed RTT
 * and jitter, per (node, origin, upstream) a smoothed connect RTT.
 *
 * A link's sample is the reporter's base RTT (least of its last few PINGs) when it reports
 * one, else its SRTT. SRTT averages in per-packet jitter and queueing (3 % of RTT and more),
 * which an origin leg (one TCP connect RTT) does not carry, so routing on SRTT charged
 * every relayed path that excess once per link and kept routes direct that a relay beats
 * by 5 % (docs/reliability.md). The jitter is charged separately, in the link's cost.
 *
 * Link cost = rtt + jitterWeight x jitter + the bandwidth penalty of a link whose capacity
 * fell (see bandwidthPenaltyMs).
 *
 * Smoothing: rtt <- rtt + alpha (sample - rtt), or the sample at a level shift (see
 * #linkRtt); jitter <- min(jitter + alpha (j - jitter),
 * 2 j + 1) with j the reported jitter, charged as max(jitter, sample - previous rtt) (see
 * #jitter), so a link whose RTT swings or rises costs more than a steady one, and a healed
 * one stops costing at once.
 * Each report is a full snapshot of the reporter's view: links or upstreams it no longer
 * lists, or lists as unreachable, are dropped at once (a dead link must leave routes now).
 */
export class LatencyMatrix {
  readonly #opts: MatrixOptions;
  readonly #links = new Map<string, Map<string, Smoothed>>();
  readonly #origins = new Map<string, Map<string, Map<string, Smoothed>>>();

  constructor(options: Partial<MatrixOptions> = {}) {
    this.#opts = { ...DEFAULT_MATRIX_OPTIONS, ...options };
  }

  #smooth(prev: Smoothed | undefined, rtt: number): number {
    return prev === undefined ? rtt : prev.rttMs + this.#opts.alpha * (rtt - prev.rttMs);
  }

  /**
   * A link's RTT from its newest base sample: the EWMA, except at a level shift (the sample
   * differs from the smoothed RTT by at least {@link LEVEL_SHIFT_RATIO} of it and
   * {@link LEVEL_SHIFT_MS}), where the sample is taken as it is. The base is the least of
   * the node's last PINGs: it rises only when every one of them was slower, and falls only
   * when one was faster, so a step in it is the link changing, not noise. Through the EWMA a
   * halved RTT (100 -> 50 ms) took 6 reports to come within 10 % and a healed route 10 s
   * to come back (docs/reliability.md). Smaller steps (the base of a jittery link moving
   * with the tail of its window) are still smoothed.
   */
  #linkRtt(prev: Smoothed | undefined, sample: number): number {
    if (prev === undefined) return sample;
    const step = Math.abs(sample - prev.rttMs);
    if (step >= LEVEL_SHIFT_MS && step >= LEVEL_SHIFT_RATIO * prev.rttMs) return sample;
    return this.#smooth(prev, sample);
  }

  /**
   * A link's smoothed jitter: an EWMA (alpha) of the node's figure, never above
   * {@link JITTER_CAP_FACTOR} x its newest value + 1 ms. The link is charged the larger of
   * it and the newest sample's rise over the smoothed RTT (see {@link LatencyMatrix.links}).
   *
   * - The cap: a smoothed jitter more than twice what the link shows now is history. The
   *   node's figure is a 3 s window (the mean excess of its last 6 PINGs over their least);
   *   after a bandwidth fall it drops from ~2,700 ms to ~2 ms within a few reports of the
   *   heal, and the EWMA alone would hold the cost up for 14 more.
   * - Smoothed on the way up: a lossy link's spikes taken at once made near-tie routes flap
   *   (test/jitter-flap.test.ts: 19-26 route changes an hour against 2-8).
   * - The rise is not smoothed: the sample is the least of 6 PINGs, so a rise means every
   *   PING of the last 3 s was that slow, a level shift (a degrade), not a spike; the RTT's
   *   EWMA takes several reports to show it. A fall is no swing at all: it is the link
   *   getting better, and counting |sample - rtt| while the EWMA came down charged the
   *   recovery as jitter.
   */
  #jitter(prev: Smoothed | undefined, reported: number): number {
    if (prev === undefined) return reported;
    const smoothed = prev.jitterMs + this.#opts.alpha * (reported - prev.jitterMs);
    return Math.min(smoothed, JITTER_CAP_FACTOR * reported + JITTER_CAP_MS);
  }

  /** Applies one node's report. Self-links and garbage values are ignored. */
  applyReport(
    nodeId: string,
    peers: readonly PeerSample[],
    origins: readonly OriginSample[],
  ): void {
    const max = this.#opts.maxRttMs;
    const oldLinks = this.#links.get(nodeId);
    const links = new Map<string, Smoothed>();
    for (const p of peers.slice(0, this.#opts.maxEntriesPerReport)) {
      if (!p.reachable || p.peerId === nodeId || p.peerId === '' || !valid(p.srttMs, max)) continue;
      const jitter = valid(p.jitterMs, max) ? p.jitterMs : 0;
      const base = p.baseRttMs;
      const rtt = base !== undefined && base > 0 && valid(base, max) ? base : p.srttMs;
      const prev = oldLinks?.get(p.peerId);
      const rttMs = this.#linkRtt(prev, rtt);
      links.set(p.peerId, {
        rttMs,
        jitterMs: this.#jitter(prev, jitter),
        // A level shift is in rttMs already: no rise left to charge.
        riseMs: prev === undefined || rttMs === rtt ? 0 : Math.max(0, rtt - prev.rttMs),
        penaltyMs: bandwidthPenaltyMs(p.capacityBps, p.peakCapacityBps),
      });
    }
    this.#links.set(nodeId, links);
    const oldOrigins = this.#origins.get(nodeId);
    const byOrigin = new Map<string, Map<string, Smoothed>>();
    for (const o of origins.slice(0, this.#opts.maxEntriesPerReport)) {
      if (!o.reachable || !valid(o.rttMs, max)) continue;
      const ups = byOrigin.get(o.origin) ?? new Map<string, Smoothed>();
      const prev = oldOrigins?.get(o.origin)?.get(o.upstream);
      ups.set(o.upstream, { rttMs: this.#smooth(prev, o.rttMs), jitterMs: 0 });
      byOrigin.set(o.origin, ups);
    }
    this.#origins.set(nodeId, byOrigin);
  }

  /** Forgets everything a node reported and every link towards it. */
  removeNode(nodeId: string): void {
    this.#links.delete(nodeId);
    this.#origins.delete(nodeId);
    for (const row of this.#links.values()) row.delete(nodeId);
  }

  /** Smoothed links between nodes in `among` (all when omitted), sorted. */
  links(among?: ReadonlySet<string>): LinkEstimate[] {
    const out: LinkEstimate[] = [];
    for (const [from, row] of this.#links) {
      if (among !== undefined && !among.has(from)) continue;
      for (const [to, s] of row) {
        if (among !== undefined && !among.has(to)) continue;
        const swing = Math.max(s.jitterMs, s.riseMs ?? 0);
        const costMs = s.rttMs + this.#opts.jitterWeight * swing + (s.penaltyMs ?? 0);
        out.push({ from, to, rttMs: s.rttMs, costMs });
      }
    }
    return out.sort((a, b) => cmp(a.from, b.from) || cmp(a.to, b.to));
  }

  /** Per node and origin, the best reachable upstream's smoothed RTT. */
  legs(among?: ReadonlySet<string>): OriginLegEstimate[] {
    const out: OriginLegEstimate[] = [];
    for (const [node, byOrigin] of this.#origins) {
      if (among !== undefined && !among.has(node)) continue;
      for (const [origin, ups] of byOrigin) {
        let best = Number.POSITIVE_INFINITY;
        for (const s of ups.values()) best = Math.min(best, s.rttMs);
        if (best < Number.POSITIVE_INFINITY) out.push({ node, origin, rttMs: best, costMs: best });
      }
    }
    return out.sort((a, b) => cmp(a.node, b.node) || cmp(a.origin, b.origin));
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
