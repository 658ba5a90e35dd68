import type { RoutingGraph } from '../../src/paths/index.ts';

/** Every simple path (entry ... exit, <= maxLinks links) to an origin with its cost. */
export interface BrutePath {
  path: string[];
  costMs: number;
}

/**
 * The oracle: enumerates all simple paths by depth-first search, straight from the
 * RoutingGraph (no shared code with the implementation under test).
 */
export function allPaths(
  graph: RoutingGraph,
  entry: string,
  origin: string,
  maxLinks: number,
  hopPenaltyMs: number,
): BrutePath[] {
  const nodes = new Set(graph.nodes);
  const adj = new Map<string, Map<string, number>>();
  for (const l of graph.links) {
    if (l.from === l.to || !nodes.has(l.from) || !nodes.has(l.to)) continue;
    const m = adj.get(l.from) ?? new Map<string, number>();
    m.set(l.to, Math.min(m.get(l.to) ?? Number.POSITIVE_INFINITY, l.costMs));
    adj.set(l.from, m);
  }
  const leg = new Map<string, number>();
  for (const g of graph.legs) {
    if (g.origin !== origin || !nodes.has(g.node)) continue;
    leg.set(g.node, Math.min(leg.get(g.node) ?? Number.POSITIVE_INFINITY, g.costMs));
  }
  const out: BrutePath[] = [];
  const walk = (path: string[], cost: number) => {
    const last = path[path.length - 1]!;
    const l = leg.get(last);
    if (l !== undefined) out.push({ path: [...path], costMs: cost + l });
    if (path.length - 1 === maxLinks) return;
    for (const [next, c] of adj.get(last) ?? []) {
      if (path.includes(next)) continue;
      path.push(next);
      walk(path, cost + c + hopPenaltyMs);
      path.pop();
    }
  };
  if (nodes.has(entry)) walk([entry], 0);
  return out.sort((a, b) => a.costMs - b.costMs);
}

/** Deterministic PRNG (mulberry32) so failures reproduce from the printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random directed graph: n nodes, each link present with probability p. */
export function randomGraph(
  rand: () => number,
  n: number,
  p: number,
  origins: number,
): RoutingGraph {
  const nodes = Array.from({ length: n }, (_, i) => `n${i}`);
  const links = [];
  for (const from of nodes) {
    for (const to of nodes) {
      if (from === to || rand() >= p) continue;
      // Integer costs make exact ties likely, which is what breaks sloppy tie handling.
      const rtt = 1 + Math.floor(rand() * 60);
      links.push({ from, to, rttMs: rtt, costMs: rtt + Math.floor(rand() * 3) });
    }
  }
  const names = Array.from({ length: origins }, (_, i) => `o${i}`);
  const legs = [];
  for (const origin of names) {
    for (const node of nodes) {
      if (rand() < 0.35) {
        const rtt = 1 + Math.floor(rand() * 80);
        legs.push({ node, origin, rttMs: rtt, costMs: rtt });
      }
    }
  }
  return { nodes, links, legs, origins: names };
}

/** Parses test/world/data/latency-matrix.csv: directed `src,dst,rtt_ms`, # comments. */
export function parseMatrix(text: string): Map<string, Map<string, number>> {
  const m = new Map<string, Map<string, number>>();
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) continue;
    const [src, dst, rtt] = t.split(',');
    const v = Number(rtt);
    if (src === undefined || dst === undefined || !Number.isFinite(v)) continue; // header
    const row = m.get(src) ?? new Map<string, number>();
    row.set(dst, v);
    m.set(src, row);
  }
  return m;
}
