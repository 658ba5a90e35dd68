import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  computeRoutes,
  estimateNamedPath,
  type RouteCandidates,
  type RoutingGraph,
} from '../../src/paths/index.ts';
import { allPaths, type BrutePath, parseMatrix, prng, randomGraph } from './brute-force.ts';

const EPS = 1e-9;
const MAX_LINKS = 4;
const PENALTY = 1;

function key(p: readonly string[]): string {
  return p.join('>');
}

function disjoint(a: readonly string[], b: readonly string[]): boolean {
  const rest = new Set(a.slice(1));
  return b.slice(1).every((v) => !rest.has(v)) && !(a.length === 1 && b.length === 1);
}

/** What alternates must be, derived from the full enumeration. */
function expectedAlternateCosts(all: BrutePath[], bestPath: string[], count: number): number[] {
  const chosen = [bestPath];
  const costs: number[] = [];
  while (chosen.length <= count) {
    const d = all.find((p) => chosen.every((c) => disjoint(c, p.path)));
    if (d === undefined) break;
    chosen.push(d.path);
    costs.push(d.costMs);
  }
  while (chosen.length <= count) {
    const seen = new Set(chosen.map(key));
    const d = all.find((p) => !seen.has(key(p.path)));
    if (d === undefined) break;
    chosen.push(d.path);
    costs.push(d.costMs);
  }
  return costs;
}

function checkPair(
  graph: RoutingGraph,
  r: RouteCandidates | undefined,
  entry: string,
  origin: string,
) {
  const all = allPaths(graph, entry, origin, MAX_LINKS, PENALTY);
  if (all.length === 0) {
    expect(r).toBeUndefined();
    return;
  }
  expect(r).toBeDefined();
  const route = r!;
  expect(route.best.costMs).toBeCloseTo(all[0]!.costMs, 9);
  const paths = [route.best, ...route.alternates];
  expect(new Set(paths.map((p) => key(p.path))).size).toBe(paths.length);
  for (const p of paths) {
    expect(p.path[0]).toBe(entry);
    const listed = all.find((q) => key(q.path) === key(p.path));
    expect(listed, `path ${key(p.path)} must be a valid simple path`).toBeDefined();
    expect(Math.abs(listed!.costMs - p.costMs)).toBeLessThan(EPS);
  }
  const expected = expectedAlternateCosts(all, route.best.path, 2);
  expect(route.alternates.map((a) => a.costMs)).toHaveLength(expected.length);
  for (const [i, a] of route.alternates.entries()) expect(a.costMs).toBeCloseTo(expected[i]!, 9);
}

describe('computeRoutes against brute force', () => {
  it('matches exhaustive enumeration on 400 seeded random graphs', () => {
    for (let seed = 1; seed <= 400; seed++) {
      const rand = prng(seed);
      const n = 1 + Math.floor(rand() * 8);
      const graph = randomGraph(rand, n, 0.2 + rand() * 0.7, 1 + Math.floor(rand() * 2));
      const routes = computeRoutes(graph, {
        maxLinks: MAX_LINKS,
        alternates: 2,
        hopPenaltyMs: PENALTY,
      });
      const byKey = new Map(routes.map((r) => [`${r.from}/${r.origin}`, r]));
      for (const entry of graph.nodes) {
        for (const origin of graph.origins) {
          try {
            checkPair(graph, byKey.get(`${entry}/${origin}`), entry, origin);
          } catch (err) {
            throw new Error(
              `seed ${seed} entry ${entry} origin ${origin}: ${(err as Error).message}`,
            );
          }
        }
      }
    }
  });

  it('matches exhaustive enumeration on 40 larger sparse graphs (9-14 nodes)', () => {
    for (let seed = 1001; seed <= 1040; seed++) {
      const rand = prng(seed);
      const n = 9 + Math.floor(rand() * 6);
      const graph = randomGraph(rand, n, 0.15 + rand() * 0.35, 1);
      const routes = computeRoutes(graph, {
        maxLinks: MAX_LINKS,
        alternates: 2,
        hopPenaltyMs: PENALTY,
      });
      const byKey = new Map(routes.map((r) => [`${r.from}/${r.origin}`, r]));
      for (const entry of graph.nodes) {
        try {
          checkPair(graph, byKey.get(`${entry}/o0`), entry, 'o0');
        } catch (err) {
          throw new Error(`seed ${seed} entry ${entry}: ${(err as Error).message}`);
        }
      }
    }
  });

  it('never uses more than maxLinks node-to-node links', () => {
    // A chain n0 -> n1 -> ... -> n6 where only n6 reaches the origin: 6 links needed.
    const nodes = Array.from({ length: 7 }, (_, i) => `n${i}`);
    const links = nodes.slice(1).map((to, i) => ({ from: nodes[i]!, to, rttMs: 1, costMs: 1 }));
    const graph = {
      nodes,
      links,
      legs: [{ node: 'n6', origin: 'o', rttMs: 1, costMs: 1 }],
      origins: ['o'],
    };
    const routes = computeRoutes(graph, { maxLinks: 4 });
    expect(routes.map((r) => r.from)).toEqual(['n2', 'n3', 'n4', 'n5', 'n6']);
    expect(routes[0]!.best.path).toEqual(['n2', 'n3', 'n4', 'n5', 'n6']);
  });

  it('reports rttMs without the hop penalty or jitter term, and costMs with them', () => {
    const graph = {
      nodes: ['a', 'b'],
      links: [{ from: 'a', to: 'b', rttMs: 10, costMs: 12 }],
      legs: [{ node: 'b', origin: 'o', rttMs: 3, costMs: 3 }],
      origins: ['o'],
    };
    const [r] = computeRoutes(graph, { hopPenaltyMs: 1 });
    expect(r).toMatchObject({ from: 'a', best: { path: ['a', 'b'], rttMs: 13, costMs: 16 } });
  });

  it('estimateNamedPath says dead for missing links, nodes or legs', () => {
    const graph = {
      nodes: ['a', 'b'],
      links: [{ from: 'a', to: 'b', rttMs: 10, costMs: 10 }],
      legs: [{ node: 'b', origin: 'o', rttMs: 3, costMs: 3 }],
      origins: ['o'],
    };
    expect(estimateNamedPath(graph, 'o', ['a', 'b'])?.rttMs).toBe(13);
    expect(estimateNamedPath(graph, 'o', ['b', 'a'])).toBeUndefined();
    expect(estimateNamedPath(graph, 'o', ['a'])).toBeUndefined();
    expect(estimateNamedPath(graph, 'o', ['a', 'zz'])).toBeUndefined();
  });
});

describe('computeRoutes on the real AWS matrix', () => {
  const text = readFileSync(
    new URL('../../../../test/world/data/latency-matrix.csv', import.meta.url),
    'utf8',
  );
  const matrix = parseMatrix(text);
  const regions = [...matrix.keys()].filter((r) => !r.startsWith('cn-'));
  const links = regions.flatMap((from) =>
    regions
      .filter((to) => to !== from && matrix.get(from)?.get(to) !== undefined)
      .map((to) => {
        const rtt = matrix.get(from)!.get(to)!;
        return { from, to, rttMs: rtt, costMs: rtt };
      }),
  );

  it('routes ca-west-1 -> an origin in me-south-1 through a relay, beating the direct link', () => {
    // The origin sits in me-south-1: only the node there reaches it, at intra-region RTT.
    const intra = matrix.get('me-south-1')!.get('me-south-1')!;
    const graph = {
      nodes: regions,
      links,
      legs: [{ node: 'me-south-1', origin: 'bahrain-files', rttMs: intra, costMs: intra }],
      origins: ['bahrain-files'],
    };
    const routes = computeRoutes(graph);
    const r = routes.find((x) => x.from === 'ca-west-1')!;
    const direct = matrix.get('ca-west-1')!.get('me-south-1')! + 1 + intra;
    expect(direct).toBeCloseTo(256.7 + 1 + intra, 6);
    expect(r.best.path[0]).toBe('ca-west-1');
    expect(r.best.path.at(-1)).toBe('me-south-1');
    expect(r.best.path.length).toBeGreaterThan(2);
    expect(r.best.costMs).toBeLessThan(direct - 30);
    // The one-relay path the data README names is a valid candidate at ~213 ms + penalties.
    const viaCa = estimateNamedPath(graph, 'bahrain-files', [
      'ca-west-1',
      'ca-central-1',
      'me-south-1',
    ]);
    expect(viaCa!.rttMs).toBeCloseTo(50.9 + 162.4 + intra, 6);
    expect(r.best.costMs).toBeLessThanOrEqual(viaCa!.rttMs + 2);
    // Today's data: via us-east-2 (214.8 ms), then via ca-central-1 and us-east-1 (215.9 ms).
    expect(r.best.path).toEqual(['ca-west-1', 'us-east-2', 'me-south-1']);
    expect(r.best.rttMs).toBeCloseTo(214.8, 6);
    expect(r.alternates.map((a) => a.path[1])).toEqual(['ca-central-1', 'us-east-1']);
    expect(r.alternates).toHaveLength(2);
    // Every path shares the only exit, so none is disjoint: alternates are the next best.
    for (const a of r.alternates) {
      expect(a.path.at(-1)).toBe('me-south-1');
      expect(a.costMs).toBeGreaterThanOrEqual(r.best.costMs);
    }
  });

  it('agrees with brute force for every entry towards three origins', () => {
    const legs = ['ap-northeast-1', 'eu-central-1', 'sa-east-1'].flatMap((home, i) =>
      regions.map((node) => {
        const rtt = matrix.get(node)!.get(home)!;
        return { node, origin: `o${i}`, rttMs: rtt, costMs: rtt };
      }),
    );
    // Brute force over 32 regions and 4 links is ~1e6 paths per entry: use 2 links here.
    const graph = { nodes: regions, links, legs, origins: ['o0', 'o1', 'o2'] };
    const routes = computeRoutes(graph, { maxLinks: 2 });
    for (const r of routes) {
      const all = allPaths(graph, r.from, r.origin, 2, PENALTY);
      expect(Math.abs(r.best.costMs - all[0]!.costMs)).toBeLessThan(EPS);
    }
    expect(routes).toHaveLength(regions.length * 3);
  });
});
