import {
  type CompiledGraph,
  compileGraph,
  DEFAULT_PATH_OPTIONS,
  type PathEstimate,
  type PathOptions,
  type RoutingGraph,
} from './graph.ts';
import { computeRoutesOn, estimateNamedPath, type RouteCandidates } from './routes.ts';

/** When a route may move to a better path. */
export interface HysteresisOptions {
  /** The new best must beat the current path's current cost by this fraction... @default 0.1 */
  minImprovementRatio: number;
  /** ...and by at least this many ms. @default 5 */
  minImprovementMs: number;
  /** ...in this many consecutive recomputations. A dead current path switches at once. @default 3 */
  sustainCount: number;
  /**
   * A large gain needs only `largeSustainCount` consecutive recomputations (the last of them
   * with the large gain): the best must beat the current path by `largeImprovementRatio`
   * AND `largeImprovementMs` both in cost and in RTT (the smoothed base RTTs, without the
   * jitter terms). A link whose RTT doubled costs a route that much more, and its base RTT
   * (the least of the node's last 6 PINGs) rose only after 3 s of slower PINGs: that is
   * confirmation already. Gains in cost alone (a jittery link's spikes) keep the full rule:
   * counted on cost, the fast rule took a replayed lossy near-tie from 79 to 99 route changes
   * in 20 hours (packages/coordinator/test/jitter-flap.test.ts). @default 0.2
   */
  largeImprovementRatio: number;
  /** @default 20 */
  largeImprovementMs: number;
  /** @default 2 */
  largeSustainCount: number;
  /**
   * For its first `settleRounds` recomputations a route is still settling: the first
   * estimates after a (re)start are noisy (cold processes, inflated first samples), and a
   * path chosen from them must not be pinned by the full hysteresis. While settling, a
   * route moves at once to a path better by `settleImprovementRatio` AND
   * `settleImprovementMs`, which are inside the accuracy the routes promise (5 % or 3 ms of
   * the optimum), so a settled route is never held on a path worse than that. @default 45
   */
  settleRounds: number;
  /** @default 0.02 */
  settleImprovementRatio: number;
  /** @default 1 */
  settleImprovementMs: number;
  /**
   * A settled route also moves to a path that stays better by the settle thresholds (a
   * slow, sustained gain under the 10 % rule) once its slow score reaches this: +1 per
   * recomputation with such a path, -`slowMissPenalty` per recomputation without (never
   * below 0). Without it a route settled on a path 5-10 % worse than the best would stay
   * there for ever, outside the accuracy routes promise. @default 30
   */
  slowSustainCount: number;
  /**
   * What a recomputation without a 2 %/1 ms better path takes off the slow score. A real
   * gain carried on noisy estimates misses a round now and then; with 30 CONSECUTIVE
   * rounds required one miss started over, and such a gain might never be taken. With 2,
   * a path better in 9 of 10 rounds is taken after about 43 rounds, while one better in
   * fewer than 2 of 3 (noise around a near-tie) drifts back to 0 and never is. @default 2
   */
  slowMissPenalty: number;
}

export const DEFAULT_HYSTERESIS: HysteresisOptions = {
  minImprovementRatio: 0.1,
  minImprovementMs: 5,
  sustainCount: 3,
  largeImprovementRatio: 0.2,
  largeImprovementMs: 20,
  largeSustainCount: 2,
  settleRounds: 45,
  settleImprovementRatio: 0.02,
  settleImprovementMs: 1,
  slowSustainCount: 30,
  slowMissPenalty: 2,
};

/** Per (entry, origin) memory between recomputations. */
export interface RouteState {
  path: readonly string[];
  /** Consecutive recomputations in which a clearly better path existed. */
  betterCount: number;
  /** Slow score: see {@link HysteresisOptions.slowSustainCount}. */
  slowScore: number;
  /** Recomputations since the route first appeared (see `settleRounds`). */
  rounds: number;
}

/** One route as served: the path in use and its alternates. */
export interface PlannedRoute {
  from: string;
  origin: string;
  path: string[];
  rttMs: number;
  costMs: number;
  alternates: PathEstimate[];
}

export interface RoutePlan {
  routes: PlannedRoute[];
  /** Keyed by {@link routeKey}; pass back as `previous` next time. */
  states: Map<string, RouteState>;
}

/** Map key of an (entry, origin) pair. */
export function routeKey(from: string, origin: string): string {
  return `${from}\u0000${origin}`;
}

function samePath(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/**
 * Decides whether to keep the current path or move to the computed best. Keep unless the
 * current path is dead, or the best has been better by >= ratio AND >= ms (against the
 * current path's cost now, not when it was chosen) for `sustainCount` rounds in a row
 * (`largeSustainCount` when it is better by the large thresholds now).
 * A route still settling (fewer than `settleRounds` rounds old) uses the small settle
 * thresholds and moves at once; a settled one also moves when a path better by the settle
 * thresholds has been there often enough for its slow score to reach `slowSustainCount`.
 */
export function decide(
  current: RouteState | undefined,
  currentNow: Pick<PathEstimate, 'costMs' | 'rttMs'> | undefined,
  best: PathEstimate,
  opts: HysteresisOptions,
): { useBest: boolean; state: RouteState } {
  const rounds = current === undefined ? 0 : current.rounds + 1;
  const take = (): { useBest: boolean; state: RouteState } => ({
    useBest: true,
    state: { path: best.path, betterCount: 0, slowScore: 0, rounds },
  });
  if (current === undefined || currentNow === undefined || samePath(current.path, best.path)) {
    return take();
  }
  const keep = (betterCount: number, slowScore: number) => ({
    useBest: false,
    state: { path: current.path, betterCount, slowScore, rounds },
  });
  const currentCostMs = currentNow.costMs;
  const gain = currentCostMs - best.costMs;
  const better =
    gain >= opts.settleImprovementMs && gain >= opts.settleImprovementRatio * currentCostMs;
  if (rounds < opts.settleRounds) return better ? take() : keep(0, 0);
  const slowScore = better
    ? current.slowScore + 1
    : Math.max(0, current.slowScore - opts.slowMissPenalty);
  if (slowScore >= opts.slowSustainCount) return take();
  const clearlyBetter =
    gain >= opts.minImprovementMs && gain >= opts.minImprovementRatio * currentCostMs;
  if (!clearlyBetter) return keep(0, slowScore);
  const betterCount = current.betterCount + 1;
  const needed = largeGain(currentNow, best, opts)
    ? Math.min(opts.sustainCount, opts.largeSustainCount)
    : opts.sustainCount;
  return betterCount >= needed ? take() : keep(betterCount, slowScore);
}

/** The best beats the current path by the large thresholds, in cost and in RTT. */
function largeGain(
  current: Pick<PathEstimate, 'costMs' | 'rttMs'>,
  best: PathEstimate,
  opts: HysteresisOptions,
): boolean {
  const by = (now: number, then: number) =>
    now - then >= opts.largeImprovementMs && now - then >= opts.largeImprovementRatio * now;
  return by(current.costMs, best.costMs) && by(current.rttMs, best.rttMs);
}

function applyOne(
  g: CompiledGraph,
  c: RouteCandidates,
  previous: RouteState | undefined,
  opts: HysteresisOptions,
  alternateCount: number,
): { route: PlannedRoute; state: RouteState } {
  const current = previous && estimateNamedPath(g, c.origin, previous.path);
  const { useBest, state } = decide(previous, current, c.best, opts);
  if (useBest || current === undefined || previous === undefined) {
    return {
      route: { from: c.from, origin: c.origin, ...c.best, alternates: c.alternates },
      state,
    };
  }
  const kept = { path: [...previous.path], ...current };
  const alternates = [c.best, ...c.alternates]
    .filter((a) => !samePath(a.path, kept.path))
    .slice(0, alternateCount);
  return { route: { from: c.from, origin: c.origin, ...kept, alternates }, state };
}

/**
 * Computes routes and applies hysteresis against the previous plan's states. Pure: same
 * graph and states in, same plan out. Routes with no path today are dropped (and forgotten).
 */
export function planRoutes(
  graph: RoutingGraph,
  previous: ReadonlyMap<string, RouteState>,
  options: Partial<PathOptions & HysteresisOptions> = {},
): RoutePlan {
  const opts = { ...DEFAULT_PATH_OPTIONS, ...DEFAULT_HYSTERESIS, ...options };
  const g = compileGraph(graph, opts);
  const routes: PlannedRoute[] = [];
  const states = new Map<string, RouteState>();
  for (const c of computeRoutesOn(g, opts.alternates)) {
    const k = routeKey(c.from, c.origin);
    const { route, state } = applyOne(g, c, previous.get(k), opts, opts.alternates);
    routes.push(route);
    states.set(k, state);
  }
  return { routes, states };
}
