import { describe, expect, it } from 'vitest';
import { CreditBudget } from '../../src/index.ts';
import { ReceiveWindow } from '../../src/mux/window.ts';

const KiB = 1024;
const MiB = 1024 * 1024;

/** A window on a path whose PING RTT is tiny (loopback) and a clock the test moves. */
function loopbackWindow() {
  let now = 0;
  const w = new ReceiveWindow({
    initial: 256 * KiB,
    max: 16 * MiB,
    budget: new CreditBudget(1024 * MiB),
    now: () => now,
    srtt: () => 0.1,
    minRtt: () => 0.1,
    queueBudgetMs: 2,
  });
  return { w, advance: (ms: number) => (now += ms) };
}

describe('ReceiveWindow credit loop', () => {
  it('grows a blocked sender whose updates take longer than the PING RTT to come back', () => {
    const { w, advance } = loopbackWindow();
    // The sender used all its credit; we read half of it and send an update (probe starts).
    expect(w.receive(256 * KiB)).toBe(true);
    advance(5);
    expect(w.consume(128 * KiB)).toBe(128 * KiB);
    // The first byte the update allowed arrives 15 ms later: that is the credit loop.
    advance(15);
    expect(w.receive(128 * KiB)).toBe(true);
    // The next half went in 15 ms < 2 x 15 ms: the window is the bottleneck, double it.
    expect(w.consume(128 * KiB)).toBe(128 * KiB + 256 * KiB);
    expect(w.size).toBe(512 * KiB);
  });

  it('with SRTT alone (no blocked sender, so no loop sample) the same pace does not grow', () => {
    const { w, advance } = loopbackWindow();
    // Half the credit is still unused when the update goes out: no probe.
    expect(w.receive(128 * KiB)).toBe(true);
    advance(5);
    expect(w.consume(128 * KiB)).toBe(128 * KiB);
    advance(15);
    expect(w.receive(128 * KiB)).toBe(true);
    expect(w.consume(128 * KiB)).toBe(128 * KiB);
    expect(w.size).toBe(256 * KiB);
  });

  it('counts a loop sample up to 20 ms: a reader that takes 100 ms per half does not grow', () => {
    const { w, advance } = loopbackWindow();
    expect(w.receive(256 * KiB)).toBe(true);
    advance(5);
    expect(w.consume(128 * KiB)).toBe(128 * KiB);
    advance(100); // the data past the old grant is seen 100 ms later (our reader was busy)
    expect(w.receive(128 * KiB)).toBe(true);
    expect(w.consume(128 * KiB)).toBe(128 * KiB);
    expect(w.size).toBe(256 * KiB);
  });
});
