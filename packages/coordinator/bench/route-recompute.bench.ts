/**
 * Route recomputation for 100 nodes x 20 origins (full mesh, 9,900 directed links).
 * Baseline in the same run: one plain all-pairs Floyd-Warshall on the same graph (no hop
 * limit, no alternates), the textbook way to get every shortest path. Prints one JSON line.
 *
 *   node --import tsx packages/coordinator/bench/route-recompute.bench.ts
 */
import { planRoutes, type RoutingGraph } from '../src/paths/index.ts';

const NODES = 100;
const ORIGINS = 20;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Nodes on a plane; RTT grows with distance plus noise, like real regions. */
function buildGraph(rand: () => number): RoutingGraph {
  const pos = Array.from({ length: NODES }, () => [rand() * 200, rand() * 100] as const);
  const nodes = pos.map((_, i) => `n${i}`);
  const links = [];
  for (let a = 0; a < NODES; a++) {
    for (let b = 0; b < NODES; b++) {
      if (a === b) continue;
      const [ax, ay] = pos[a]!;
      const [bx, by] = pos[b]!;
      const rtt = 2 + Math.hypot(ax - bx, ay - by) * (1 + rand() * 0.6);
      links.push({ from: nodes[a]!, to: nodes[b]!, rttMs: rtt, costMs: rtt + rand() * 3 });
    }
  }
  const origins = Array.from({ length: ORIGINS }, (_, i) => `o${i}`);
  const legs = origins.flatMap((origin) => {
    const home = Math.floor(rand() * NODES);
    return nodes.map((node, i) => {
      const [ax, ay] = pos[i]!;
      const [bx, by] = pos[home]!;
      const rtt = 1 + Math.hypot(ax - bx, ay - by) * 1.5;
      return { node, origin, rttMs: rtt, costMs: rtt };
    });
  });
  return { nodes, links, legs, origins };
}

function floydWarshall(graph: RoutingGraph): number {
  const n = graph.nodes.length;
  const index = new Map(graph.nodes.map((id, i) => [id, i]));
  const d = new Float64Array(n * n).fill(Number.POSITIVE_INFINITY);
  for (let i = 0; i < n; i++) d[i * n + i] = 0;
  for (const l of graph.links) d[index.get(l.from)! * n + index.get(l.to)!] = l.costMs + 1;
  for (let k = 0; k < n; k++) {
    for (let i = 0; i < n; i++) {
      const ik = d[i * n + k]!;
      for (let j = 0; j < n; j++) {
        const c = ik + d[k * n + j]!;
        if (c < d[i * n + j]!) d[i * n + j] = c;
      }
    }
  }
  return d[n - 1]!;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

/** Wall time and process CPU time of one call, in ms. CPU time is what the work costs even
 * when a busy machine preempts the process; wall time is what a caller waits. */
function timed(fn: () => void): { wall: number; cpu: number } {
  const c = process.cpuUsage();
  const t = performance.now();
  fn();
  const wall = performance.now() - t;
  const d = process.cpuUsage(c);
  return { wall, cpu: (d.user + d.system) / 1000 };
}

const rand = prng(42);
const graph = buildGraph(rand);
const recompute: { wall: number; cpu: number }[] = [];
const baseline: { wall: number; cpu: number }[] = [];
let states = new Map();
let routes = 0;
for (let i = 0; i < ROUNDS; i++) {
  recompute.push(
    timed(() => {
      const plan = planRoutes(graph, states);
      states = plan.states;
      routes = plan.routes.length;
    }),
  );
  baseline.push(timed(() => floydWarshall(graph)));
}
const warm = (xs: { wall: number; cpu: number }[], k: 'wall' | 'cpu') =>
  median(xs.slice(3).map((x) => x[k]));
const recomputeMs = warm(recompute, 'wall');
const baselineMs = warm(baseline, 'wall');
const recomputeCpuMs = warm(recompute, 'cpu');
const baselineCpuMs = warm(baseline, 'cpu');
console.log(
  JSON.stringify({
    bench: 'coordinator.route-recompute',
    nodes: NODES,
    origins: ORIGINS,
    links: graph.links.length,
    routes,
    alternates: 2,
    maxLinks: 4,
    value: Number(recomputeMs.toFixed(2)),
    unit: 'ms per full recomputation (median wall time)',
    baseline: Number(baselineMs.toFixed(2)),
    baselineIs: 'one all-pairs Floyd-Warshall on the same graph',
    ratio: Number((recomputeMs / baselineMs).toFixed(2)),
    cpuMs: Number(recomputeCpuMs.toFixed(2)),
    baselineCpuMs: Number(baselineCpuMs.toFixed(2)),
    targetMs: 50,
    withinTarget: recomputeMs < 50,
  }),
);
