/**
 * Link profiles: what one direction of an emulated WAN link does to bytes.
 *
 * A lossy link is modelled, not emulated: this is a TCP-terminating proxy, so packets are
 * never dropped; instead the link gets the bandwidth a Reno-like TCP would reach at that
 * loss rate (Mathis et al. 1997) and a heavier jitter tail.
 */

/** Extra one-way delay drawn per chunk, on top of the propagation delay. */
export type JitterModel =
  | { kind: 'none' }
  /** Lognormal: `medianMs * exp(sigma * N(0,1))`; heavy right tail for larger sigma. */
  | { kind: 'lognormal'; medianMs: number; sigma: number };

/** One direction of a link between two regions. */
export interface LinkProfile {
  /** Round-trip time of the path; each direction adds `rttMs / 2`. */
  rttMs: number;
  /** Bottleneck rate in bits per second. */
  bandwidthBps: number;
  jitter: JitterModel;
}

export const NO_JITTER: JitterModel = { kind: 'none' };

/** Standard TCP maximum segment size on a 1500-byte MTU path. */
export const MSS_BYTES = 1460;

/**
 * Mathis formula: steady-state TCP throughput `~ 1.22 * MSS / (RTT * sqrt(p))`, in bits/s.
 * 176 ms and 11 % loss gives about 30 KB/s (244 kbit/s).
 */
export function mathisBandwidthBps(rttMs: number, lossPct: number): number {
  if (lossPct <= 0) return Number.POSITIVE_INFINITY;
  const p = lossPct / 100;
  return ((1.22 * MSS_BYTES) / ((rttMs / 1000) * Math.sqrt(p))) * 8;
}

/**
 * Named jitter presets, scaled to the link's RTT (see docs/world.md):
 * - `cloud`: median 1 % of RTT, sigma 1.0 → p95 about 5 % of RTT (CloudPing p50 vs Azure P95).
 * - `lossy`: median 2 % of RTT, sigma 1.6 → p99.9 about 2.8 x RTT, what retransmits look
 *   like to an application on cn-* cross-border paths.
 */
export function jitterPreset(name: 'none' | 'cloud' | 'lossy', rttMs: number): JitterModel {
  switch (name) {
    case 'none':
      return NO_JITTER;
    case 'cloud':
      return { kind: 'lognormal', medianMs: rttMs * 0.01, sigma: 1.0 };
    case 'lossy':
      return { kind: 'lognormal', medianMs: rttMs * 0.02, sigma: 1.6 };
  }
}

/** Seeded PRNG (mulberry32): reproducible jitter for a given world seed. Returns [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Draws one jitter sample in ms (>= 0) from `model` using `random`. */
export function sampleJitterMs(model: JitterModel, random: () => number): number {
  if (model.kind === 'none' || model.medianMs <= 0) return 0;
  // Box-Muller; 1 - u keeps log() away from 0.
  const u1 = 1 - random();
  const u2 = random();
  const z = Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
  return model.medianMs * Math.exp(model.sigma * z);
}

/** A small string hash so each link direction gets its own deterministic jitter stream. */
export function hashSeed(seed: number, text: string): number {
  let h = (seed ^ 0x811c9dc5) >>> 0;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}
