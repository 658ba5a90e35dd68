import { describe, expect, it } from 'vitest';
import { bandwidthPenaltyMs, PENALTY_REF_BYTES } from '../src/matrix/bandwidth-penalty.ts';
import { LatencyMatrix } from '../src/matrix/latency-matrix.ts';

const mbit = (n: number) => (n * 1_000_000) / 8; // bytes per second

describe('bandwidthPenaltyMs', () => {
  it('charges a fall from 100 to 2 Mbit/s the extra time of a 64 KiB transfer (~257 ms)', () => {
    const ms = bandwidthPenaltyMs(mbit(2), mbit(100));
    const bits = PENALTY_REF_BYTES * 8;
    expect(ms).toBeCloseTo((bits / 2e6 - bits / 100e6) * 1000, 6);
    expect(ms).toBeGreaterThan(256);
    expect(ms).toBeLessThan(258);
  });

  it('charges nothing above half the peak, nor a steadily slow link', () => {
    expect(bandwidthPenaltyMs(mbit(51), mbit(100))).toBe(0);
    expect(bandwidthPenaltyMs(mbit(50), mbit(100))).toBe(0);
    expect(bandwidthPenaltyMs(mbit(2), mbit(2))).toBe(0);
    expect(bandwidthPenaltyMs(mbit(49), mbit(100))).toBeGreaterThan(0);
  });

  it('charges nothing when a figure is unknown or garbage', () => {
    for (const [c, p] of [
      [undefined, mbit(100)],
      [mbit(2), undefined],
      [0, mbit(100)],
      [mbit(2), 0],
      [-1, mbit(100)],
      [Number.NaN, mbit(100)],
      [mbit(2), Number.POSITIVE_INFINITY],
    ] as const) {
      expect(bandwidthPenaltyMs(c, p)).toBe(0);
    }
  });
});

describe('LatencyMatrix with capacity', () => {
  const peer = (capacityBps?: number, peakCapacityBps?: number) => ({
    peerId: 'b',
    srttMs: 50,
    jitterMs: 0,
    reachable: true,
    ...(capacityBps === undefined ? {} : { capacityBps }),
    ...(peakCapacityBps === undefined ? {} : { peakCapacityBps }),
  });

  it('adds the penalty of the newest report to the cost at once, not the RTT', () => {
    const m = new LatencyMatrix({ jitterWeight: 0 });
    m.applyReport('a', [peer(mbit(100), mbit(100))], []);
    expect(m.links()).toEqual([{ from: 'a', to: 'b', rttMs: 50, costMs: 50 }]);
    m.applyReport('a', [peer(mbit(2), mbit(100))], []);
    const [l] = m.links();
    expect(l!.rttMs).toBe(50);
    expect(l!.costMs).toBeCloseTo(50 + bandwidthPenaltyMs(mbit(2), mbit(100)), 6);
    // Healed: the penalty is gone with the first report that says so.
    m.applyReport('a', [peer(mbit(90), mbit(100))], []);
    expect(m.links()[0]!.costMs).toBe(50);
    // Older nodes report no capacity: cost as before.
    m.applyReport('a', [peer()], []);
    expect(m.links()[0]!.costMs).toBe(50);
  });
});
