import { describe, expect, it } from 'vitest';
import { decide, planRoutes, type RouteState, type RoutingGraph } from '../../src/paths/index.ts';

// Settling off: these cases are about the full hysteresis of a settled route.
const OPTS = {
  minImprovementRatio: 0.1,
  minImprovementMs: 5,
  sustainCount: 3,
  largeImprovementRatio: 0.2,
  largeImprovementMs: 20,
  largeSustainCount: 2,
  settleRounds: 0,
  settleImprovementRatio: 0.02,
  settleImprovementMs: 1,
  slowSustainCount: 1000,
  slowMissPenalty: 2,
};

/** a reaches the origin directly (leg) or through b; `direct` and `viaB` set the costs. */
function graph(direct: number, viaB: number): RoutingGraph {
  return {
    nodes: ['a', 'b'],
    links: [{ from: 'a', to: 'b', rttMs: viaB - 1, costMs: viaB - 1 }],
    legs: [
      { node: 'a', origin: 'o', rttMs: direct, costMs: direct },
      { node: 'b', origin: 'o', rttMs: 1, costMs: 1 },
    ],
    origins: ['o'],
  };
}

/** A current path's estimate now, its cost and RTT equal (no jitter terms). */
const at = (ms: number) => ({ costMs: ms, rttMs: ms });

function routeOf(plan: ReturnType<typeof planRoutes>, from = 'a') {
  return plan.routes.find((r) => r.from === from)!;
}

describe('decide', () => {
  const best = { path: ['a', 'b'], costMs: 80, rttMs: 80 };
  const cur: RouteState = { path: ['a'], betterCount: 0, slowScore: 0, rounds: 100 };

  it('adopts the best when there is no current path or it is dead', () => {
    expect(decide(undefined, undefined, best, OPTS).useBest).toBe(true);
    expect(decide(cur, undefined, best, OPTS).useBest).toBe(true);
  });

  it('needs both 10 % and 5 ms', () => {
    // 4 ms better on 40 ms: 10 % but not 5 ms.
    expect(decide(cur, at(44), { ...best, costMs: 40 }, OPTS).state.betterCount).toBe(0);
    // 6 ms better on 100 ms: 5 ms but not 10 %.
    expect(decide(cur, at(106), { ...best, costMs: 100 }, OPTS).state.betterCount).toBe(0);
    expect(decide(cur, at(100), best, OPTS).state.betterCount).toBe(1);
  });

  it('switches on the third consecutive clearly-better round only (10-20 % better)', () => {
    let state = cur;
    const outcomes: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      const d = decide(state, at(100), { ...best, costMs: 85, rttMs: 85 }, OPTS);
      outcomes.push(d.useBest);
      state = d.state;
    }
    expect(outcomes).toEqual([false, false, true]);
    expect(state.path).toEqual(['a', 'b']);
  });

  it('switches on the second round when the gain is large in cost and in RTT', () => {
    const run = (rounds: Array<{ now: { costMs: number; rttMs: number }; best: number }>) => {
      let state = cur;
      return rounds.map(({ now, best: b }) => {
        const d = decide(state, now, { ...best, costMs: b, rttMs: b }, OPTS);
        state = d.state;
        return d.useBest;
      });
    };
    // The current path's link doubled (100 -> 136 against 104: 24 % and 32 ms).
    expect(
      run([
        { now: at(136), best: 104 },
        { now: at(136), best: 104 },
      ]),
    ).toEqual([false, true]);
    // One large round alone moves nothing; a clear round then a large one does.
    expect(
      run([
        { now: at(136), best: 104 },
        { now: at(100), best: 100 },
      ]),
    ).toEqual([false, false]);
    expect(
      run([
        { now: at(118), best: 104 },
        { now: at(136), best: 104 },
      ]),
    ).toEqual([false, true]);
    // 20 % but under 20 ms (60 -> 47): the full rule.
    expect(run([0, 1, 2].map(() => ({ now: at(60), best: 47 })))).toEqual([false, false, true]);
    // Large in cost only (the jitter of a lossy link): the full rule.
    const jittery = { costMs: 136, rttMs: 108 };
    expect(run([0, 1, 2].map(() => ({ now: jittery, best: 104 })))).toEqual([false, false, true]);
  });
});

describe('settling routes', () => {
  const SETTLING = { ...OPTS, settleRounds: 5 };

  it('a young route moves at once to a path better by 2 % and 1 ms, an old one does not', () => {
    // 8 % and 8 ms better: inside the full hysteresis, outside the settle thresholds.
    let plan = planRoutes(graph(100, 120), new Map(), SETTLING);
    expect(routeOf(plan).path).toEqual(['a']);
    plan = planRoutes(graph(100, 92), plan.states, SETTLING);
    expect(routeOf(plan).path).toEqual(['a', 'b']);
    // Settled (rounds >= 5): the same 8 % gain back to the direct path is held.
    for (let i = 0; i < 5; i++) plan = planRoutes(graph(100, 92), plan.states, SETTLING);
    for (let i = 0; i < 4; i++) plan = planRoutes(graph(92, 100), plan.states, SETTLING);
    expect(routeOf(plan).path).toEqual(['a', 'b']);
  });

  it('a settled route moves after a small gain sustained for slowSustainCount rounds', () => {
    const SLOW = { ...SETTLING, slowSustainCount: 4 };
    let plan = planRoutes(graph(100, 120), new Map(), SLOW);
    for (let i = 0; i < 6; i++) plan = planRoutes(graph(100, 120), plan.states, SLOW);
    expect(routeOf(plan).path).toEqual(['a']);
    // 6 % better: under the 10 % rule; moves on the 4th consecutive round only.
    const seen: string[][] = [];
    for (let i = 0; i < 4; i++) {
      plan = planRoutes(graph(100, 94), plan.states, SLOW);
      seen.push(routeOf(plan).path);
    }
    expect(seen).toEqual([['a'], ['a'], ['a'], ['a', 'b']]);
    // Back and forth (a near-tie seen through noise): the score never gets there.
    for (let i = 0; i < 20; i++) {
      plan = planRoutes(i % 2 === 0 ? graph(94, 100) : graph(100, 94), plan.states, SLOW);
    }
    expect(routeOf(plan).path).toEqual(['a', 'b']);
  });

  it('a noisy round costs the slow score slowMissPenalty, it does not start it over', () => {
    const SLOW = { ...OPTS, slowSustainCount: 6, slowMissPenalty: 2 };
    const cur: RouteState = { path: ['a'], betterCount: 0, slowScore: 0, rounds: 100 };
    const best = { path: ['a', 'b'], costMs: 94, rttMs: 94 };
    // The direct path (100) is 6 % worse than via b (94): a slow gain, not a clear one.
    const run = (gainRounds: boolean[]) => {
      let state: RouteState = cur;
      const moved: boolean[] = [];
      for (const g of gainRounds) {
        const d = decide(state, at(100), { ...best, costMs: g ? 94 : 100.5 }, SLOW);
        moved.push(d.useBest);
        state = d.state;
      }
      return { moved: moved.indexOf(true), score: state.slowScore };
    };
    const T = true;
    const F = false;
    // 5 rounds better (score 5), one miss (3), then 3 better: moves on the 3rd (score 6).
    expect(run([T, T, T, T, T, F, T, T, T, T])).toMatchObject({ moved: 8 });
    // Consecutive-only counting would never move on this: a miss every 4th round.
    expect(run([T, T, T, F, T, T, T, F, T, T, T, F, T, T, T, F, T, T, T])).toMatchObject({
      moved: 14,
    });
    // Better in only half the rounds: the score stays at 0 or 1.
    const half = run(Array.from({ length: 40 }, (_, i) => i % 2 === 0));
    expect(half.moved).toBe(-1);
    expect(half.score).toBeLessThanOrEqual(1);
    // The score never goes below 0: 3 misses then 6 gains move on the 6th gain.
    expect(run([F, F, F, T, T, T, T, T, T])).toMatchObject({ moved: 8 });
  });

  it('a young route ignores gains under 2 % or 1 ms (no flapping on near-equal paths)', () => {
    let plan = planRoutes(graph(100, 101), new Map(), SETTLING);
    expect(routeOf(plan).path).toEqual(['a']);
    plan = planRoutes(graph(100, 99.5), plan.states, SETTLING); // 0.5 ms better
    expect(routeOf(plan).path).toEqual(['a']);
    plan = planRoutes(graph(100, 98.5), plan.states, SETTLING); // 1.5 ms, 1.5 % better
    expect(routeOf(plan).path).toEqual(['a']);
  });
});

describe('planRoutes', () => {
  it('keeps the current path through a short dip and switches after a sustained gain', () => {
    let plan = planRoutes(graph(100, 150), new Map(), OPTS);
    expect(routeOf(plan).path).toEqual(['a']);
    // b becomes clearly better (15 %) for two rounds, then goes back: no switch.
    for (let i = 0; i < 2; i++) plan = planRoutes(graph(100, 85), plan.states, OPTS);
    expect(routeOf(plan).path).toEqual(['a']);
    expect(routeOf(plan).alternates[0]!.path).toEqual(['a', 'b']);
    plan = planRoutes(graph(100, 150), plan.states, OPTS);
    expect(routeOf(plan).path).toEqual(['a']);
    // Sustained for three rounds: switch on the third.
    const seen: string[][] = [];
    for (let i = 0; i < 3; i++) {
      plan = planRoutes(graph(100, 85), plan.states, OPTS);
      seen.push(routeOf(plan).path);
    }
    expect(seen).toEqual([['a'], ['a'], ['a', 'b']]);
    // The kept path is reported at its current cost, not the cost it had when chosen.
    expect(routeOf(plan).rttMs).toBe(85);
  });

  it('a large gain (half the cost) needs two rounds, and one round of it moves nothing', () => {
    let plan = planRoutes(graph(100, 150), new Map(), OPTS);
    plan = planRoutes(graph(100, 50), plan.states, OPTS);
    plan = planRoutes(graph(100, 150), plan.states, OPTS);
    expect(routeOf(plan).path).toEqual(['a']);
    plan = planRoutes(graph(100, 50), plan.states, OPTS);
    expect(routeOf(plan).path).toEqual(['a']);
    plan = planRoutes(graph(100, 50), plan.states, OPTS);
    expect(routeOf(plan).path).toEqual(['a', 'b']);
  });

  it('leaves a dead path at once', () => {
    let plan = planRoutes(graph(100, 50), new Map(), OPTS);
    expect(routeOf(plan).path).toEqual(['a', 'b']);
    const broken: RoutingGraph = { ...graph(100, 50), links: [] };
    plan = planRoutes(broken, plan.states, OPTS);
    expect(routeOf(plan).path).toEqual(['a']);
  });

  it('does not move for a small gain however long it lasts', () => {
    let plan = planRoutes(graph(100, 150), new Map(), OPTS);
    for (let i = 0; i < 10; i++) plan = planRoutes(graph(100, 95), plan.states, OPTS);
    expect(routeOf(plan).path).toEqual(['a']);
  });
});
