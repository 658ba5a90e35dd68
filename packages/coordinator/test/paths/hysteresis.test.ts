import { describe, expect, it } from 'vitest';
import { decide, planRoutes, type RouteState, type RoutingGraph } from '../../src/paths/index.ts';

const OPTS = { minImprovementRatio: 0.1, minImprovementMs: 5, sustainCount: 3 };

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

function routeOf(plan: ReturnType<typeof planRoutes>, from = 'a') {
  return plan.routes.find((r) => r.from === from)!;
}

describe('decide', () => {
  const best = { path: ['a', 'b'], costMs: 80, rttMs: 80 };
  const cur: RouteState = { path: ['a'], betterCount: 0 };

  it('adopts the best when there is no current path or it is dead', () => {
    expect(decide(undefined, undefined, best, OPTS).useBest).toBe(true);
    expect(decide(cur, undefined, best, OPTS).useBest).toBe(true);
  });

  it('needs both 10 % and 5 ms', () => {
    // 4 ms better on 40 ms: 10 % but not 5 ms.
    expect(decide(cur, 44, { ...best, costMs: 40 }, OPTS).state.betterCount).toBe(0);
    // 6 ms better on 100 ms: 5 ms but not 10 %.
    expect(decide(cur, 106, { ...best, costMs: 100 }, OPTS).state.betterCount).toBe(0);
    expect(decide(cur, 100, best, OPTS).state.betterCount).toBe(1);
  });

  it('switches on the third consecutive clearly-better round only', () => {
    let state = cur;
    const outcomes: boolean[] = [];
    for (let i = 0; i < 3; i++) {
      const d = decide(state, 100, best, OPTS);
      outcomes.push(d.useBest);
      state = d.state;
    }
    expect(outcomes).toEqual([false, false, true]);
    expect(state.path).toEqual(['a', 'b']);
  });
});

describe('planRoutes', () => {
  it('keeps the current path through a short dip and switches after a sustained gain', () => {
    let plan = planRoutes(graph(100, 150), new Map(), OPTS);
    expect(routeOf(plan).path).toEqual(['a']);
    // b becomes much better for two rounds, then goes back: no switch.
    for (let i = 0; i < 2; i++) plan = planRoutes(graph(100, 50), plan.states, OPTS);
    expect(routeOf(plan).path).toEqual(['a']);
    expect(routeOf(plan).alternates[0]!.path).toEqual(['a', 'b']);
    plan = planRoutes(graph(100, 150), plan.states, OPTS);
    expect(routeOf(plan).path).toEqual(['a']);
    // Sustained for three rounds: switch on the third.
    const seen: string[][] = [];
    for (let i = 0; i < 3; i++) {
      plan = planRoutes(graph(100, 50), plan.states, OPTS);
      seen.push(routeOf(plan).path);
    }
    expect(seen).toEqual([['a'], ['a'], ['a', 'b']]);
    // The kept path is reported at its current cost, not the cost it had when chosen.
    expect(routeOf(plan).rttMs).toBe(50);
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
