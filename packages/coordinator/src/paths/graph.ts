/**
 * The routing graph: what the path computation sees. Built by the coordinator from the
 * smoothed latency matrix; plain data, so the computation stays a pure function.
 */

/** A measured, live, directed link between two nodes. */
export interface LinkEstimate {
  from: string;
  to: string;
  /** Smoothed RTT: what we report as the link's latency. */
  rttMs: number;
  /** What routing minimises: smoothed RTT plus the jitter term (see latency matrix). */
  costMs: number;
}

/** A node's measured leg to an origin (its best reachable upstream). */
export interface OriginLegEstimate {
  node: string;
  origin: string;
  rttMs: number;
  costMs: number;
}

export interface RoutingGraph {
  /** Nodes that may appear in paths (up nodes). Order does not matter. */
  nodes: readonly string[];
  links: readonly LinkEstimate[];
  legs: readonly OriginLegEstimate[];
  /** Origins to compute routes for. */
  origins: readonly string[];
}

/**
 * Routing knobs.
 *
 * A "hop" is one node-to-node link: a path of `maxLinks` = 4 has at most 5 nodes (entry,
 * three relays, exit). The leg from the exit to the origin is not a hop.
 */
export interface PathOptions {
  /** Most node-to-node links in a path. @default 4 */
  maxLinks: number;
  /** Alternates kept per route besides the primary. @default 2 */
  alternates: number;
  /** Added per node-to-node link, so a relay must win by more than noise. @default 1 */
  hopPenaltyMs: number;
}

export const DEFAULT_PATH_OPTIONS: PathOptions = { maxLinks: 4, alternates: 2, hopPenaltyMs: 1 };

/** Smallest cost a link may have, so every cycle costs something and best walks are simple. */
const MIN_COST_MS = 0.001;

/** Index-based form of a RoutingGraph: CSR adjacency and per-origin leg arrays. */
export interface CompiledGraph {
  readonly n: number;
  readonly ids: readonly string[];
  readonly index: ReadonlyMap<string, number>;
  /** Out-edges of v are edgeTo[outStart[v] .. outStart[v+1]). */
  readonly outStart: Int32Array;
  readonly edgeTo: Int32Array;
  /** Link cost including the hop penalty. */
  readonly edgeCost: Float64Array;
  readonly edgeRtt: Float64Array;
  /** from * n + to -> edge index, for costing given paths. */
  readonly edgeOf: ReadonlyMap<number, number>;
  readonly origins: readonly string[];
  /** Per origin: leg cost / RTT per node, Infinity when the node cannot reach it. */
  readonly legCost: readonly Float64Array[];
  readonly legRtt: readonly Float64Array[];
  readonly maxLinks: number;
}

function finiteCost(value: number): boolean {
  return Number.isFinite(value) && value >= 0;
}

/** Sorts ids so that results do not depend on input order (ties break by id). */
export function compileGraph(graph: RoutingGraph, options: PathOptions): CompiledGraph {
  const ids = [...new Set(graph.nodes)].sort();
  const n = ids.length;
  const index = new Map(ids.map((id, i) => [id, i]));
  // Parallel arrays, one entry per distinct (from, to) pair, the cheapest report winning.
  const pairIndex = new Map<number, number>();
  const from: number[] = [];
  const to: number[] = [];
  const cost: number[] = [];
  const rtt: number[] = [];
  for (const l of graph.links) {
    const a = index.get(l.from);
    const b = index.get(l.to);
    if (a === undefined || b === undefined || a === b || !finiteCost(l.costMs)) continue;
    const at = pairIndex.get(a * n + b);
    if (at === undefined) {
      pairIndex.set(a * n + b, from.length);
      from.push(a);
      to.push(b);
      cost.push(l.costMs);
      rtt.push(l.rttMs);
    } else if (l.costMs < cost[at]!) {
      cost[at] = l.costMs;
      rtt[at] = l.rttMs;
    }
  }
  // Out-edges of each node cheapest first, so searches can stop scanning early.
  const order = from.map((_, i) => i);
  order.sort((x, y) => from[x]! - from[y]! || cost[x]! - cost[y]! || to[x]! - to[y]!);
  const outStart = new Int32Array(n + 1);
  const edgeTo = new Int32Array(order.length);
  const edgeCost = new Float64Array(order.length);
  const edgeRtt = new Float64Array(order.length);
  const edgeOf = new Map<number, number>();
  order.forEach((i, e) => {
    outStart[from[i]! + 1]!++;
    edgeTo[e] = to[i]!;
    edgeCost[e] = Math.max(MIN_COST_MS, cost[i]! + options.hopPenaltyMs);
    edgeRtt[e] = rtt[i]!;
    edgeOf.set(from[i]! * n + to[i]!, e);
  });
  for (let v = 0; v < n; v++) outStart[v + 1]! += outStart[v]!;
  const origins = [...new Set(graph.origins)].sort();
  const originIndex = new Map(origins.map((o, i) => [o, i]));
  const legCost = origins.map(() => new Float64Array(n).fill(Number.POSITIVE_INFINITY));
  const legRtt = origins.map(() => new Float64Array(n).fill(Number.POSITIVE_INFINITY));
  for (const leg of graph.legs) {
    const v = index.get(leg.node);
    const o = originIndex.get(leg.origin);
    if (v === undefined || o === undefined || !finiteCost(leg.costMs)) continue;
    if (leg.costMs < legCost[o]![v]!) {
      legCost[o]![v] = leg.costMs;
      legRtt[o]![v] = leg.rttMs;
    }
  }
  return {
    n,
    ids,
    index,
    outStart,
    edgeTo,
    edgeCost,
    edgeRtt,
    edgeOf,
    origins,
    legCost,
    legRtt,
    maxLinks: options.maxLinks,
  };
}

/** A path with its cost (what routing minimises) and RTT estimate (what we report). */
export interface PathEstimate {
  path: string[];
  costMs: number;
  rttMs: number;
}

/**
 * Cost and RTT of a given node path to an origin in the graph as it is now; undefined when
 * the path is dead (a node or link is missing, the exit cannot reach the origin, too long).
 */
export function estimatePath(g: CompiledGraph, originIdx: number, path: readonly number[]) {
  if (path.length === 0 || path.length - 1 > g.maxLinks) return undefined;
  if (new Set(path).size !== path.length) return undefined;
  let cost = 0;
  let rtt = 0;
  for (let i = 0; i + 1 < path.length; i++) {
    const e = g.edgeOf.get(path[i]! * g.n + path[i + 1]!);
    if (e === undefined) return undefined;
    cost += g.edgeCost[e]!;
    rtt += g.edgeRtt[e]!;
  }
  const exit = path[path.length - 1]!;
  const legCost = g.legCost[originIdx]![exit]!;
  if (legCost === Number.POSITIVE_INFINITY) return undefined;
  return { costMs: cost + legCost, rttMs: rtt + g.legRtt[originIdx]![exit]! };
}
