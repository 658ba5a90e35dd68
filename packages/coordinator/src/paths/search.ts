import type { CompiledGraph } from './graph.ts';

const INF = Number.POSITIVE_INFINITY;

/**
 * Best cost from every node to one origin with at most h links, for every h in 0..maxLinks
 * (hop-limited Bellman-Ford run backwards from the origin). Row h of `down` is both the
 * answer for entries with budget h and an admissible lower bound for the pruned searches.
 */
export interface DownTable {
  readonly originIdx: number;
  /** down[h * n + v]: least cost from v to the origin using at most h links. */
  readonly down: Float64Array;
  /** succ[h * n + v]: next node on that best path, -1 = v is the exit. */
  readonly succ: Int32Array;
  /** floor[h]: min over v of down[h * n + v], a bound that needs no node lookup. */
  readonly floor: Float64Array;
}

/** Builds the DownTable of one origin. O(maxLinks * links). */
export function buildDownTable(g: CompiledGraph, originIdx: number): DownTable {
  const { n, maxLinks, outStart, edgeTo, edgeCost } = g;
  const leg = g.legCost[originIdx]!;
  const down = new Float64Array((maxLinks + 1) * n);
  const succ = new Int32Array((maxLinks + 1) * n).fill(-1);
  down.set(leg, 0);
  for (let h = 1; h <= maxLinks; h++) {
    const row = h * n;
    const prevRow = row - n;
    for (let v = 0; v < n; v++) {
      // Start from the shorter budget's answer: on ties the path with fewer links wins.
      let best = down[prevRow + v]!;
      let next = succ[prevRow + v]!;
      for (let e = outStart[v]!; e < outStart[v + 1]!; e++) {
        const c = edgeCost[e]! + down[prevRow + edgeTo[e]!]!;
        if (c < best) {
          best = c;
          next = edgeTo[e]!;
        }
      }
      down[row + v] = best;
      succ[row + v] = next;
    }
  }
  const floor = new Float64Array(maxLinks + 1).fill(INF);
  for (let h = 0; h <= maxLinks; h++) {
    for (let v = 0; v < n; v++) floor[h] = Math.min(floor[h]!, down[h * n + v]!);
  }
  return { originIdx, down, succ, floor };
}

/** The best path from `entry` per the DownTable, or undefined when none exists. */
export function bestPathFrom(g: CompiledGraph, t: DownTable, entry: number): number[] | undefined {
  let h = g.maxLinks;
  if (t.down[h * g.n + entry] === INF) return undefined;
  const path = [entry];
  let v = entry;
  for (;;) {
    const next = t.succ[h * g.n + v]!;
    if (next < 0) return path;
    path.push(next);
    v = next;
    h--;
  }
}

/** A constrained search: the best continuation from `start` under restrictions. */
export interface SpurQuery {
  start: number;
  /** Cost already spent to reach `start` and links already used. */
  startCost: number;
  startLinks: number;
  /** Nodes the continuation must not visit (1 = forbidden). `start` is never revisited. */
  forbidden: Uint8Array;
  /** First hops out of `start` that are not allowed. */
  bannedFirstHops: ReadonlySet<number>;
  /** Whether the continuation may end at `start` itself (start is the exit). */
  exitAtStart: boolean;
}

/**
 * Least-cost continuation from `q.start` to the origin obeying the query, as the node list
 * after `start` (empty = exit at start) with its total cost; undefined when none exists.
 * Layered search pruned with the DownTable lower bound (A*-like), so exact and fast.
 */
export function searchSpur(g: CompiledGraph, t: DownTable, q: SpurQuery) {
  const { n, maxLinks, outStart, edgeTo, edgeCost } = g;
  const leg = g.legCost[t.originIdx]!;
  const layers = maxLinks - q.startLinks;
  if (layers < 0) return undefined;
  const floor = t.floor;
  const banned = q.bannedFirstHops.size > 0;
  const { dist, prev } = scratch((layers + 1) * n);
  const touched: number[] = [q.start];
  let best = INF;
  let bestAt = -1;
  dist[q.start] = q.startCost;
  let frontier = [q.start];
  for (let h = 0; h <= layers && frontier.length > 0; h++) {
    const next: number[] = [];
    // Exits of the whole layer first: a tight bound early prunes most expansions below.
    for (const v of frontier) {
      const d = dist[h * n + v]!;
      if ((v !== q.start || q.exitAtStart) && d + leg[v]! < best) {
        best = d + leg[v]!;
        bestAt = h * n + v;
      }
    }
    if (h === layers) break;
    for (const v of frontier) {
      const d = dist[h * n + v]!;
      if (d + t.down[(layers - h) * n + v]! >= best) continue;
      for (let e = outStart[v]!; e < outStart[v + 1]!; e++) {
        const u = edgeTo[e]!;
        if (u === q.start || q.forbidden[u] === 1) continue;
        if (h === 0 && banned && q.bannedFirstHops.has(u)) continue;
        const c = d + edgeCost[e]!;
        // Edges are sorted by cost: once even the cheapest finish cannot win, stop.
        if (c + floor[layers - h - 1]! >= best) break;
        const slot = (h + 1) * n + u;
        if (c >= dist[slot]! || c + t.down[(layers - h - 1) * n + u]! >= best) continue;
        if (dist[slot] === INF) {
          next.push(u);
          touched.push(slot);
        }
        dist[slot] = c;
        prev[slot] = v;
      }
    }
    frontier = next;
  }
  const suffix: number[] = [];
  for (let at = bestAt; at >= n; ) {
    const v = at % n;
    suffix.push(v);
    at = (Math.floor(at / n) - 1) * n + prev[at]!;
  }
  for (const slot of touched) dist[slot] = INF;
  return bestAt < 0 ? undefined : { suffix: suffix.reverse(), costMs: best };
}

let scratchDist = new Float64Array(0);
let scratchPrev = new Int32Array(0);

/**
 * Reused search buffers (all INF between calls): searches run thousands of times per
 * recomputation and fresh arrays made the garbage collector the second-largest cost.
 * Safe because searchSpur is synchronous and never re-entered.
 */
function scratch(size: number): { dist: Float64Array; prev: Int32Array } {
  if (scratchDist.length < size) {
    scratchDist = new Float64Array(size).fill(INF);
    scratchPrev = new Int32Array(size);
  }
  return { dist: scratchDist, prev: scratchPrev };
}
