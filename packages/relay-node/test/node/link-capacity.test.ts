import { describe, expect, it } from 'vitest';
import { LinkCapacity, queued } from '../../src/node/link-capacity.ts';

const calm = { srttMs: 50, minMs: 50 };
const M = 1_000_000 / 8; // bytes per second of 1 Mbit/s

/** The first clock time in [from, to] (steps of 50 ms) at which a probe is due. */
function dueAt(c: LinkCapacity, from: number, to: number, rtt = calm): number | undefined {
  for (let t = from; t <= to; t += 50) if (c.due(t, rtt)) return t;
  return undefined;
}

describe('LinkCapacity', () => {
  it('probes 1 s after the tunnel comes up, then every 30 s', () => {
    const c = new LinkCapacity(0);
    expect(dueAt(c, 0, 60_000)).toBe(1000);
    c.started(1000);
    c.sample(1100, 40 * M);
    expect(dueAt(c, 1000, 60_000)).toBe(31_000);
  });

  it('current is the median of the last 3 samples; peak the max of 10 minutes', () => {
    const c = new LinkCapacity(0);
    expect(c.currentBps).toBeUndefined();
    expect(c.peakBps(0)).toBeUndefined();
    c.sample(1000, 40 * M);
    expect(c.currentBps).toBe(40 * M);
    c.sample(2000, 2 * M); // one low sample: not a fall yet
    expect(c.currentBps).toBe(40 * M);
    expect(c.degraded(2000)).toBe(false);
    c.sample(3000, 2 * M); // two: a fall
    expect(c.currentBps).toBe(2 * M);
    expect(c.peakBps(3000)).toBe(40 * M);
    expect(c.degraded(3000)).toBe(true);
    // Ten minutes after the 40 Mbit/s sample, the slow link is its own peak: no fall.
    c.sample(600_500, 2 * M);
    expect(c.peakBps(601_001)).toBe(2 * M);
    expect(c.degraded(601_001)).toBe(false);
  });

  it('confirms a low sample after 1 s, probes every 3 s while fallen, confirms a good one after 1 s', () => {
    const c = new LinkCapacity(0);
    c.started(1000);
    c.sample(1000, 40 * M);
    c.started(10_000);
    c.sample(10_200, 2 * M);
    expect(dueAt(c, 10_000, 40_000)).toBe(11_000); // confirm
    c.started(11_000);
    c.sample(11_300, 2 * M);
    expect(c.degraded(11_300)).toBe(true);
    expect(dueAt(c, 11_000, 40_000)).toBe(14_000); // degraded: every 3 s
    c.started(14_000);
    c.sample(14_100, 2 * M);
    expect(dueAt(c, 14_000, 40_000)).toBe(17_000); // still fallen: 3 s
    c.started(17_000);
    c.sample(17_100, 40 * M); // healed: one good sample is not enough...
    expect(c.degraded(17_100)).toBe(true);
    expect(dueAt(c, 17_000, 40_000)).toBe(18_000); // ...and is confirmed 1 s later
    c.started(18_000);
    c.sample(18_100, 40 * M);
    expect(c.degraded(18_100)).toBe(false);
    expect(dueAt(c, 18_000, 60_000)).toBe(48_000); // back to every 30 s
  });

  it('a queue (SRTT above min by > max(10 ms, 25 %)) probes at most every 2 s', () => {
    expect(queued({ srttMs: 60, minMs: 50 })).toBe(false);
    expect(queued({ srttMs: 63, minMs: 50 })).toBe(true);
    expect(queued({ srttMs: 130, minMs: 100 })).toBe(true);
    expect(queued({ srttMs: 124, minMs: 100 })).toBe(false);
    expect(queued({ srttMs: 14, minMs: 2 })).toBe(true);
    expect(queued({ srttMs: 11, minMs: 2 })).toBe(false);
    expect(queued({ srttMs: undefined, minMs: 2 })).toBe(false);
    const c = new LinkCapacity(0);
    c.started(1000);
    c.sample(1100, 40 * M);
    const busy = { srttMs: 200, minMs: 50 };
    expect(dueAt(c, 1000, 60_000, busy)).toBe(3000);
  });

  it('a failed probe (older peer) waits the regular period even under a queue', () => {
    const c = new LinkCapacity(0);
    c.started(1000);
    c.failed();
    expect(dueAt(c, 1000, 60_000, { srttMs: 200, minMs: 50 })).toBe(31_000);
    c.started(31_000);
    c.sample(31_100, 10 * M);
    expect(dueAt(c, 31_000, 60_000, { srttMs: 200, minMs: 50 })).toBe(33_000);
  });

  it('interval 0 disables probing; garbage samples are ignored', () => {
    const off = new LinkCapacity(0, { intervalMs: 0 });
    expect(dueAt(off, 0, 120_000, { srttMs: 500, minMs: 50 })).toBeUndefined();
    const c = new LinkCapacity(0);
    for (const v of [0, -5, Number.NaN, Number.POSITIVE_INFINITY]) c.sample(1000, v);
    expect(c.currentBps).toBeUndefined();
  });

  it('samples above 50 Mbit/s count as 50: timing noise of fast probes is no fall', () => {
    const c = new LinkCapacity(0);
    for (const [t, mbps] of [
      [1000, 900],
      [2000, 60],
      [3000, 70],
    ] as const) {
      c.sample(t, mbps * M);
    }
    expect(c.peakBps(3000)).toBe(50 * M);
    expect(c.currentBps).toBe(50 * M);
    expect(c.degraded(3000)).toBe(false);
    c.sample(4000, 2 * M);
    c.sample(5000, 2 * M);
    expect(c.degraded(5000)).toBe(true);
  });

  it('probes carry 100 ms of the current rate, 4 KiB to the maximum', () => {
    const c = new LinkCapacity(0);
    expect(c.probeBytes(65536)).toBe(65536);
    c.sample(1000, 40 * M);
    expect(c.probeBytes(65536)).toBe(65536);
    c.sample(2000, 2 * M);
    c.sample(3000, 2 * M);
    expect(c.probeBytes(65536)).toBe(25_000);
    c.sample(4000, 0.1 * M);
    c.sample(5000, 0.1 * M);
    expect(c.probeBytes(65536)).toBe(4096);
    expect(c.probeBytes(1000)).toBe(1000);
  });

  it('a new tunnel probes soon, keeping the history', () => {
    const c = new LinkCapacity(0);
    c.started(1000);
    c.sample(1000, 40 * M);
    c.tunnelUp(5000);
    expect(dueAt(c, 5000, 60_000)).toBe(6000);
    expect(c.peakBps(5000)).toBe(40 * M);
  });
});
