/**
 * The cost of a link whose capacity fell: the extra time a reference transfer of
 * {@link PENALTY_REF_BYTES} takes at the link's current capacity compared with its peak,
 *
 *   penalty (ms) = REF_BITS / current - REF_BITS / peak      when current < peak / 2,
 *   0 otherwise, and 0 when either is unknown (0, absent, garbage).
 *
 * Only a fall is penalised: a link that is steadily slow keeps its RTT cost, so
 * RTT-optimal routing is unchanged wherever nothing fell. 100 -> 2 Mbit/s gives ~257 ms.
 * The node already filters its samples (median of 3 probes), so the penalty is applied
 * as reported, not smoothed: a fall must act within seconds.
 */

/** The reference transfer: one 64 KiB range request. */
export const PENALTY_REF_BYTES = 64 * 1024;

/** Capacities are bytes per second; the result is milliseconds. */
export function bandwidthPenaltyMs(
  currentBps: number | undefined,
  peakBps: number | undefined,
): number {
  if (currentBps === undefined || peakBps === undefined) return 0;
  if (!Number.isFinite(currentBps) || !Number.isFinite(peakBps)) return 0;
  if (currentBps <= 0 || peakBps <= 0 || currentBps >= peakBps / 2) return 0;
  return (PENALTY_REF_BYTES * 1000) / currentBps - (PENALTY_REF_BYTES * 1000) / peakBps;
}
