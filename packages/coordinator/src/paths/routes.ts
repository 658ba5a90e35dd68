import { findAlternates, type IndexedPath } from './alternates.ts';
import {
  type CompiledGraph,
  compileGraph,
  DEFAULT_PATH_OPTIONS,
  estimatePath,
  type PathEstimate,
  type PathOptions,
  type RoutingGraph,
} from './graph.ts';
import { bestPathFrom, buildDownTable } from './search.ts';

/** The computed best path and alternates for one (entry, origin) pair, before hysteresis. */
export interface RouteCandidates {
  from: string;
  origin: string;
  best: PathEstimate;
  alternates: PathEstimate[];
}

function toEstimate(g: CompiledGraph, originIdx: number, p: IndexedPath): PathEstimate {
  const est = estimatePath(g, originIdx, p.nodes)!;
  return { path: p.nodes.map((v) => g.ids[v]!), costMs: est.costMs, rttMs: est.rttMs };
}

/**
 * For every entry node and every origin, the least-cost path (entry ... exit, at most
 * `maxLinks` node-to-node links, cost = sum of link costs + hop penalty per link + the
 * exit's leg to the origin) and its alternates. Pairs with no path are absent. Pure and
 * deterministic: ties prefer fewer links, then lower node ids.
 */
export function computeRoutes(
  graph: RoutingGraph,
  options: Partial<PathOptions> = {},
): RouteCandidates[] {
  const opts = { ...DEFAULT_PATH_OPTIONS, ...options };
  return computeRoutesOn(compileGraph(graph, opts), opts.alternates);
}

/** {@link computeRoutes} on an already compiled graph. */
export function computeRoutesOn(g: CompiledGraph, alternateCount: number): RouteCandidates[] {
  const out: RouteCandidates[] = [];
  for (let o = 0; o < g.origins.length; o++) {
    const table = buildDownTable(g, o);
    for (let entry = 0; entry < g.n; entry++) {
      const nodes = bestPathFrom(g, table, entry);
      if (nodes === undefined) continue;
      const primary = { nodes, costMs: table.down[g.maxLinks * g.n + entry]! };
      const alternates = findAlternates(g, table, primary, alternateCount);
      out.push({
        from: g.ids[entry]!,
        origin: g.origins[o]!,
        best: toEstimate(g, o, primary),
        alternates: alternates.map((a) => toEstimate(g, o, a)),
      });
    }
  }
  return out.sort((a, b) => (a.from === b.from ? cmp(a.origin, b.origin) : cmp(a.from, b.from)));
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Current cost and RTT of a given path (node ids) to `origin` in `graph`; undefined when
 * the path is dead. Used by hysteresis to judge the path in use by today's numbers.
 */
export function estimateNamedPath(
  graph: RoutingGraph | CompiledGraph,
  origin: string,
  path: readonly string[],
  options: Partial<PathOptions> = {},
): { costMs: number; rttMs: number } | undefined {
  const g =
    'edgeOf' in graph ? graph : compileGraph(graph, { ...DEFAULT_PATH_OPTIONS, ...options });
  const o = g.origins.indexOf(origin);
  if (o < 0) return undefined;
  const nodes: number[] = [];
  for (const id of path) {
    const v = g.index.get(id);
    if (v === undefined) return undefined;
    nodes.push(v);
  }
  return estimatePath(g, o, nodes);
}
