import { describe, expect, it } from 'vitest';
import { LatencyMatrix, type PeerSample } from '../src/matrix/latency-matrix.ts';
import { planRoutes, type RouteState } from '../src/paths/index.ts';

// The chaos test's bandwidth scenario (test/chaos/degrade-heal.test.ts), replayed through
// the matrix and the hysteresis as a sequence of reports from the entry a, one
// recomputation per report (the coordinator recomputes once a second, nodes report once a
// second). The figures are those of a traced run (docs/reliability.md): a reaches the
// origin through b (52 + 1 + 30 ms) or c (47 + 1 + 50 ms); a<->b falls from 100 to
// 2 Mbit/s; a's PINGs to b queue behind our downloads (the node's jitter figure, the mean
// excess of its last 6 PINGs over their least, reaches ~2,700 ms) and its capacity probes
// see ~250 kB/s against a 6.25 MB/s peak.

const FULL = 6_250_000;
const SLOW = 250_000;

function reportB(jitterMs: number, capacityBps: number): PeerSample {
  return {
    peerId: 'b',
    srttMs: 52 + jitterMs,
    baseRttMs: 52,
    jitterMs,
    reachable: true,
    capacityBps,
    peakCapacityBps: FULL,
  };
}
const reportC: PeerSample = {
  peerId: 'c',
  srttMs: 48,
  baseRttMs: 47,
  jitterMs: 1,
  reachable: true,
  capacityBps: FULL,
  peakCapacityBps: FULL,
};
const leg = (rttMs: number) => [{ origin: 'o', upstream: 'u', rttMs, reachable: true }];

/** Feeds `steps` (one report of a's link to b each) and returns a's path after each. */
function replay(steps: Array<[jitterMs: number, capacityBps: number]>): string[] {
  const m = new LatencyMatrix();
  m.applyReport('b', [], leg(30));
  m.applyReport('c', [], leg(50));
  let states = new Map<string, RouteState>();
  const paths: string[] = [];
  for (const [jitter, capacity] of steps) {
    m.applyReport('a', [reportB(jitter, capacity), reportC], leg(200)); // direct: 200 ms
    const plan = planRoutes(
      { nodes: ['a', 'b', 'c'], links: m.links(), legs: m.legs(), origins: ['o'] },
      states,
    );
    states = plan.states;
    paths.push(plan.routes.find((r) => r.from === 'a')!.path.join(','));
  }
  return paths;
}

const repeat = <T>(n: number, v: T): T[] => Array.from({ length: n }, () => v);

describe('a link whose bandwidth falls and heals (replayed reports)', () => {
  const steady: Array<[number, number]> = repeat(50, [2, FULL]); // settled on a,b
  const fall: Array<[number, number]> = [
    [60, FULL],
    [700, FULL],
    [1600, FULL],
    [2700, FULL],
    [2700, SLOW], // the probes confirm the fall
  ];
  // 15 s on the slow link, the queue drained: the PINGs look normal, the penalty stays.
  const hold: Array<[number, number]> = repeat(15, [3, SLOW]);
  // Healed: the queue drains at the full rate, the PINGs of the last 3 s still carry it,
  // and the median of 3 probes shows the capacity back after two good ones.
  const heal: Array<[number, number]> = [
    [2200, SLOW],
    [1500, SLOW],
    [300, SLOW],
    [4, SLOW],
    [3, FULL],
    ...repeat(12, [2, FULL] as [number, number]),
  ];
  const paths = replay([...steady, ...fall, ...hold, ...heal]);
  const changes = paths.flatMap((p, i) => (i > 0 && p !== paths[i - 1] ? [{ i, p }] : []));
  const fellAt = steady.length;
  const healedAt = fellAt + fall.length + hold.length;
  const cleanAt = healedAt + 4; // first report without the jitter and the penalty

  it('moves away within 4 recomputations of the queue showing, and holds while slow', () => {
    expect(paths[fellAt - 1]).toBe('a,b');
    // The first report (60 ms) lifts the smoothed jitter to 19 ms, under the 10 % margin;
    // the next three are past it.
    expect(changes[0]).toEqual({ i: fellAt + 3, p: 'a,c' });
    expect(paths.slice(fellAt + 3, healedAt).every((p) => p === 'a,c')).toBe(true);
  });

  it('moves back on the hysteresis (3 recomputations) once the reports are clean, once', () => {
    // Both terms end as soon as the node's figures do: the smoothed jitter is capped at
    // twice the node's figure + 1 ms (the EWMA alone would hold 2,700 ms above the 10 %
    // margin for ~12 more reports), and the penalty ends with the report that shows the
    // capacity back.
    expect(changes[1]).toEqual({ i: cleanAt + 2, p: 'a,b' });
    expect(changes).toHaveLength(2);
  });
});
