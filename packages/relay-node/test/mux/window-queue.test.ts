import { describe, expect, it } from 'vitest';
import { CreditBudget } from '../../src/index.ts';
import { ReceiveWindow, RttEstimator, WindowedMin } from '../../src/mux/window.ts';

const MiB = 1024 * 1024;

/** A window whose clock, SRTT and min RTT the test sets. */
function window(opts: { initial: number; srtt: number; minRtt: () => number | undefined }) {
  let now = 0;
  const w = new ReceiveWindow({
    initial: opts.initial,
    max: 16 * MiB,
    budget: new CreditBudget(1024 * MiB),
    now: () => now,
    srtt: () => opts.srtt,
    minRtt: opts.minRtt,
    queueBudgetMs: 2,
  });
  return { w, advance: (ms: number) => (now += ms), now: () => now };
}

describe('ReceiveWindow queueing brake', () => {
  it('does not grow a window whose unarrived bytes take far longer than the min RTT to drain', () => {
    // Loopback (min RTT 0.1 ms) with SRTT inflated to 5 ms by the queue: half the 4 MiB
    // window is consumed in 4 ms (~0.5 MB/ms) while the other half is still on its way.
    // Draining 2 MiB at that rate takes ~4 ms > 0.125 + 2 ms: queue, not pipe.
    const { w, advance } = window({ initial: 4 * MiB, srtt: 5, minRtt: () => 0.1 });
    expect(w.receive(2 * MiB)).toBe(true);
    advance(4);
    expect(w.consume(2 * MiB)).toBe(2 * MiB);
    expect(w.size).toBe(4 * MiB);
  });

  it('grows the same window at the same pace when its sender is waiting for credit', () => {
    // Everything granted has arrived (credit 0): the window, not a queue, is the limit.
    const { w, advance } = window({ initial: 4 * MiB, srtt: 5, minRtt: () => 0.1 });
    expect(w.receive(4 * MiB)).toBe(true);
    advance(4);
    expect(w.consume(2 * MiB)).toBe(2 * MiB + 4 * MiB);
    expect(w.size).toBe(8 * MiB);
  });

  it('without a min RTT sample the brake is off (the RTT rule alone decides)', () => {
    const { w, advance } = window({ initial: 4 * MiB, srtt: 5, minRtt: () => undefined });
    expect(w.receive(2 * MiB)).toBe(true);
    advance(4);
    expect(w.consume(2 * MiB)).toBe(2 * MiB + 4 * MiB);
  });

  it('grows a window-limited stream on a 150 ms path: the bytes in flight are the pipe', () => {
    // 1 MiB per 150 ms RTT: each half is consumed in 75 ms while the other half is in
    // flight, which at that rate drains in 75 ms < 1.25 x 150 + 2 ms.
    const { w, advance } = window({ initial: 1 * MiB, srtt: 150, minRtt: () => 150 });
    for (let i = 0; i < 3; i++) {
      expect(w.receive(w.size / 2)).toBe(true);
      advance(75);
      w.consume(w.size / 2);
    }
    expect(w.size).toBe(8 * MiB);
  });

  it('measures the rate over 10 ms, not per update: a burst of updates does not look fast', () => {
    // 2 MiB consumed in 10 ms (0.2 MB/ms), the second 1 MiB half in the same millisecond
    // as the first update, while 1 MiB more is on its way each time.
    const { w, advance } = window({ initial: 2 * MiB, srtt: 20, minRtt: () => 0.1 });
    expect(w.receive(1 * MiB)).toBe(true);
    advance(10);
    expect(w.consume(1 * MiB)).toBe(1 * MiB); // 1 MiB in flight, 0.1 MB/ms: 10 ms > 2.1 ms
    expect(w.receive(1 * MiB)).toBe(true);
    expect(w.consume(1 * MiB)).toBe(1 * MiB); // same ms: per-update rate would be infinite
    expect(w.size).toBe(2 * MiB);
  });
});

describe('windowed min RTT', () => {
  it('keeps the lowest sample of the last window, then re-learns a higher RTT', () => {
    const m = new WindowedMin(10_000);
    expect(m.get(0)).toBeUndefined();
    m.add(50, 0);
    m.add(80, 100);
    m.add(150, 500);
    expect(m.get(9_999)).toBe(50);
    expect(m.get(10_050)).toBe(80); // the 50 ms sample expired
    expect(m.get(10_200)).toBe(150);
    expect(m.get(60_000)).toBe(150); // the newest sample never expires
    m.add(120, 60_000);
    expect(m.get(60_000)).toBe(120); // a lower sample replaces higher ones at once
  });

  it('stays bounded when samples only ever rise', () => {
    const m = new WindowedMin(10_000);
    for (let i = 0; i < 1000; i++) m.add(i, i);
    // Only the newest 64 are kept: the window is shortened, the answer is one of them.
    expect(m.get(1000)).toBe(1000 - 64);
  });

  it('a degraded path (50 -> 150 ms) freezes growth only until the old minimum expires', () => {
    let now = 0;
    const rtt = new RttEstimator();
    rtt.add(50, now);
    const make = () =>
      new ReceiveWindow({
        initial: 1 * MiB,
        max: 16 * MiB,
        budget: new CreditBudget(1024 * MiB),
        now: () => now,
        srtt: () => rtt.srtt,
        minRtt: () => rtt.recentMin(now),
        queueBudgetMs: 2,
      });
    // PINGs every 500 ms now say 150 ms.
    const pingsUntil = (t: number) => {
      while (now < t) {
        now += 500;
        rtt.add(150, now);
      }
    };
    /** One window-limited half-window epoch on the 150 ms path; returns the new size. */
    const epoch = (w: ReceiveWindow) => {
      w.receive(w.size / 2);
      now += 75;
      w.consume(w.size / 2);
      return w.size;
    };
    pingsUntil(5_000);
    expect(rtt.recentMin(now)).toBe(50);
    // 512 KiB in flight at 7 KB/ms takes 75 ms to drain: > 1.25 x 50 + 2 ms, looks like
    // queue against the stale 50 ms minimum.
    expect(epoch(make())).toBe(1 * MiB);
    pingsUntil(10_500);
    expect(rtt.recentMin(now)).toBe(150);
    expect(epoch(make())).toBe(2 * MiB);
  });
});

describe('RttEstimator', () => {
  it('keeps the all-time min while the windowed one moves on', () => {
    const rtt = new RttEstimator();
    rtt.add(10, 0);
    rtt.add(30, 11_000);
    expect(rtt.min).toBe(10);
    expect(rtt.recentMin(11_000)).toBe(30);
    expect(rtt.samples).toBe(2);
    expect(rtt.last).toBe(30);
  });
});
