import { describe, expect, it } from 'vitest';
import { LatencyMatrix } from '../src/matrix/latency-matrix.ts';

const peer = (peerId: string, srttMs: number, jitterMs = 0, reachable = true) => ({
  peerId,
  srttMs,
  jitterMs,
  reachable,
});

describe('LatencyMatrix', () => {
  it('smooths small RTT steps with an EWMA (a rise charged at once), takes a level shift as it is', () => {
    const m = new LatencyMatrix({ alpha: 0.5, jitterWeight: 1 });
    m.applyReport('a', [peer('b', 100)], []);
    expect(m.links()).toEqual([{ from: 'a', to: 'b', rttMs: 100, costMs: 100 }]);
    m.applyReport('a', [peer('b', 110)], []);
    // 10 %: smoothed, rtt 105; charged max(jitter 0, the rise over the smoothed RTT 110 - 100).
    expect(m.links()).toEqual([{ from: 'a', to: 'b', rttMs: 105, costMs: 115 }]);
    m.applyReport('a', [peer('b', 110)], []);
    // rtt 107.5; rise 110 - 105.
    expect(m.links()).toEqual([{ from: 'a', to: 'b', rttMs: 107.5, costMs: 112.5 }]);
    // Degraded (RTT doubled): a step of >= 20 % and >= 10 ms is taken at once, no rise left.
    m.applyReport('a', [peer('b', 200)], []);
    expect(m.links()).toEqual([{ from: 'a', to: 'b', rttMs: 200, costMs: 200 }]);
    // Healed: at once too (through the EWMA: 150, 125, 112.5, ... for 4 more reports).
    m.applyReport('a', [peer('b', 100)], []);
    expect(m.links()).toEqual([{ from: 'a', to: 'b', rttMs: 100, costMs: 100 }]);
    // 15 %, 15 ms: smoothed. A fall under the shift's size is no swing either.
    m.applyReport('a', [peer('b', 115)], []);
    expect(m.links()).toEqual([{ from: 'a', to: 'b', rttMs: 107.5, costMs: 122.5 }]);
    m.applyReport('a', [peer('b', 100)], []);
    expect(m.links()).toEqual([{ from: 'a', to: 'b', rttMs: 103.75, costMs: 103.75 }]);
    // A short link: 20 -> 28 ms is 40 % but under 10 ms, smoothed.
    m.applyReport('a', [peer('c', 20)], []);
    m.applyReport('a', [peer('c', 28)], []);
    expect(m.links()).toEqual([{ from: 'a', to: 'c', rttMs: 24, costMs: 32 }]);
  });

  it("caps the smoothed jitter at twice the node's newest figure + 1 ms", () => {
    const m = new LatencyMatrix({ jitterWeight: 0.5 });
    const r = (jitterMs: number) => [{ ...peer('b', 52 + jitterMs, jitterMs), baseRttMs: 52 }];
    m.applyReport('a', r(2), []);
    expect(m.links()[0]!.costMs).toBe(53);
    // A queue behind a fallen link: the PINGs of the last 3 s average 2.7 s over their
    // least. Smoothed on the way up: 2 + 0.3 x 2698.
    m.applyReport('a', r(2700), []);
    expect(m.links()[0]!.costMs).toBeCloseTo(52 + 0.5 * 811.4, 6);
    for (let i = 0; i < 10; i++) m.applyReport('a', r(2700), []);
    // Drained: the node's window holds no queued PING any more; the EWMA alone would
    // still be at ~1,850 ms, the cap puts it at 2 x 3 + 1.
    m.applyReport('a', r(3), []);
    expect(m.links()[0]!.costMs).toBe(52 + 0.5 * 7);
    // A steady link's figures still smooth: 7 + 0.3 x (5 - 7) = 6.4, under 2 x 5 + 1.
    m.applyReport('a', r(5), []);
    expect(m.links()[0]!.costMs).toBeCloseTo(52 + 0.5 * 6.4, 6);
  });

  it('estimates a link from its base RTT when reported, from SRTT when not', () => {
    const m = new LatencyMatrix({ alpha: 0.5, jitterWeight: 0.5 });
    // SRTT 106 averages in 6 ms of per-packet jitter; the base RTT (least recent PING) is 100.
    m.applyReport('a', [{ ...peer('b', 106, 4), baseRttMs: 100 }, peer('c', 50, 2)], []);
    expect(m.links()).toEqual([
      { from: 'a', to: 'b', rttMs: 100, costMs: 102 },
      { from: 'a', to: 'c', rttMs: 50, costMs: 51 },
    ]);
    // 0, negative or garbage base: unknown, SRTT is used.
    m.applyReport(
      'a',
      [
        { ...peer('b', 106, 4), baseRttMs: 0 },
        { ...peer('c', 50, 2), baseRttMs: Number.NaN },
      ],
      [],
    );
    expect(m.links().map((l) => l.rttMs)).toEqual([103, 50]);
  });

  it('treats each report as a full snapshot: missing or unreachable peers drop at once', () => {
    const m = new LatencyMatrix();
    m.applyReport('a', [peer('b', 10), peer('c', 20)], []);
    m.applyReport('a', [peer('b', 10, 0, false)], []);
    expect(m.links()).toEqual([]);
  });

  it('ignores self links and garbage values', () => {
    const m = new LatencyMatrix();
    m.applyReport(
      'a',
      [peer('a', 1), peer('b', Number.NaN), peer('c', -1), peer('d', 1e9), peer('e', 5)],
      [],
    );
    expect(m.links().map((l) => l.to)).toEqual(['e']);
  });

  it('keeps the best reachable upstream per origin as the leg', () => {
    const m = new LatencyMatrix();
    m.applyReport(
      'a',
      [],
      [
        { origin: 'o', upstream: 'tcp://x:1', rttMs: 30, reachable: true },
        { origin: 'o', upstream: 'tcp://y:1', rttMs: 10, reachable: false },
        { origin: 'o', upstream: 'tcp://z:1', rttMs: 20, reachable: true },
      ],
    );
    expect(m.legs()).toEqual([{ node: 'a', origin: 'o', rttMs: 20, costMs: 20 }]);
  });

  it('removeNode drops its reports and every link towards it', () => {
    const m = new LatencyMatrix();
    m.applyReport('a', [peer('b', 10)], []);
    m.applyReport(
      'b',
      [peer('a', 10)],
      [{ origin: 'o', upstream: 'u', rttMs: 1, reachable: true }],
    );
    m.removeNode('b');
    expect(m.links()).toEqual([]);
    expect(m.legs()).toEqual([]);
  });
});
