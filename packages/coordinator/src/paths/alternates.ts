import type { CompiledGraph } from './graph.ts';
import { type DownTable, searchSpur } from './search.ts';

/** A found path in index form with its cost. */
export interface IndexedPath {
  nodes: number[];
  costMs: number;
}

function key(nodes: readonly number[]): string {
  return nodes.join(',');
}

/**
 * Best path from nodes[0] sharing no node with `chosen` except the entry; it may end at
 * the entry only when no chosen path already does.
 */
function disjointPath(g: CompiledGraph, t: DownTable, chosen: readonly IndexedPath[]) {
  const entry = chosen[0]!.nodes[0]!;
  // Reused (cleared below): this runs twice per route, thousands of times per recompute.
  if (forbiddenScratch.length < g.n) forbiddenScratch = new Uint8Array(g.n);
  const forbidden = forbiddenScratch;
  for (const p of chosen) for (const v of p.nodes) if (v !== entry) forbidden[v] = 1;
  const found = searchSpur(g, t, {
    start: entry,
    startCost: 0,
    startLinks: 0,
    forbidden,
    bannedFirstHops: NO_NODES,
    exitAtStart: !chosen.some((p) => p.nodes.length === 1),
  });
  for (const p of chosen) for (const v of p.nodes) forbidden[v] = 0;
  return found && { nodes: [entry, ...found.suffix], costMs: found.costMs };
}

const NO_NODES: ReadonlySet<number> = new Set();
let forbiddenScratch = new Uint8Array(0);

function prefixCost(g: CompiledGraph, nodes: readonly number[], links: number): number {
  let cost = 0;
  for (let i = 0; i < links; i++)
    cost += g.edgeCost[g.edgeOf.get(nodes[i]! * g.n + nodes[i + 1]!)!]!;
  return cost;
}

/**
 * The cheapest simple path not in `chosen` (Yen's spur step over every chosen path: for
 * each root prefix, ban the continuations the chosen paths take and search the rest).
 * Exact: any other path leaves its longest shared prefix through a non-banned step.
 */
function nextDistinctPath(g: CompiledGraph, t: DownTable, chosen: readonly IndexedPath[]) {
  const seen = new Set(chosen.map((p) => key(p.nodes)));
  const roots = new Set<string>();
  let best: IndexedPath | undefined;
  for (const p of chosen) {
    for (let i = 0; i < p.nodes.length; i++) {
      const root = p.nodes.slice(0, i + 1);
      const rootKey = key(root);
      if (roots.has(rootKey)) continue;
      roots.add(rootKey);
      const same = chosen.filter(
        (c) => c.nodes.length > i && key(c.nodes.slice(0, i + 1)) === rootKey,
      );
      const forbidden = new Uint8Array(g.n);
      for (const v of root) forbidden[v] = 1;
      const found = searchSpur(g, t, {
        start: root[i]!,
        startCost: prefixCost(g, root, i),
        startLinks: i,
        forbidden,
        bannedFirstHops: new Set(
          same.filter((c) => c.nodes.length > i + 1).map((c) => c.nodes[i + 1]!),
        ),
        exitAtStart: !same.some((c) => c.nodes.length === i + 1),
      });
      if (found === undefined || (best !== undefined && found.costMs >= best.costMs)) continue;
      const nodes = [...root, ...found.suffix];
      if (!seen.has(key(nodes))) best = { nodes, costMs: found.costMs };
    }
  }
  return best;
}

/**
 * Up to `count` alternates to `primary`: node-disjoint ones (but for the entry) first,
 * each the cheapest disjoint from all chosen so far; then, where the graph allows no more
 * disjoint ones, the next cheapest distinct paths.
 */
export function findAlternates(
  g: CompiledGraph,
  t: DownTable,
  primary: IndexedPath,
  count: number,
): IndexedPath[] {
  const chosen: IndexedPath[] = [primary];
  while (chosen.length <= count) {
    const p = disjointPath(g, t, chosen);
    if (p === undefined) break;
    chosen.push(p);
  }
  while (chosen.length <= count) {
    const p = nextDistinctPath(g, t, chosen);
    if (p === undefined) break;
    chosen.push(p);
  }
  return chosen.slice(1);
}
