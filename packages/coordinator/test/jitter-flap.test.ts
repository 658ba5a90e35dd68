import { describe, expect, it } from 'vitest';
import { LatencyMatrix } from '../src/matrix/latency-matrix.ts';
import { planRoutes, type RouteState } from '../src/paths/index.ts';
import { prng } from './paths/brute-force.ts';

// Route stability next to a lossy link, replayed for an hour of reports: the entry a
// reaches the origin through b over a 300 ms link with the world's `lossy` jitter
// (lognormal, median 6 ms, sigma 1.6, per direction: docs/world.md) or through c over a
// steady 340 ms link (`cloud` jitter, 1 % of RTT). The two paths' costs are near a tie,
// where the lossy link's spikes are most likely to flip the route. PINGs twice a second;
// each report carries what a node reports: the least of its last 6 PINGs and their mean
// excess over it (packages/relay-node/src/mux/window.ts, RttEstimator).

function lognormal(r: () => number, median: number, sigma: number): number {
  const u = Math.max(r(), 1e-12);
  const z = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
  return median * Math.exp(sigma * z);
}

/** The node side of one link: PING samples and the window figures it reports. */
class PingWindow {
  readonly #samples: number[] = [];
  readonly #rttMs: number;
  readonly #oneWay: () => number;

  constructor(rttMs: number, oneWay: () => number) {
    this.#rttMs = rttMs;
    this.#oneWay = oneWay;
  }

  ping(): void {
    const s = this.#samples;
    s.push(this.#rttMs + this.#oneWay() + this.#oneWay());
    if (s.length > 6) s.shift();
    // A fall restarts the window: the newest 3 all faster than every older sample by
    // max(10 ms, 20 % of the older least one).
    const n = s.length - 3;
    if (n < 1) return;
    const oldMin = Math.min(...s.slice(0, n));
    if (oldMin - Math.max(...s.slice(n)) >= Math.max(10, 0.2 * oldMin)) s.splice(0, n);
  }

  report(peerId: string) {
    const base = Math.min(...this.#samples);
    const mean = this.#samples.reduce((a, b) => a + b, 0) / this.#samples.length;
    return { peerId, srttMs: mean, baseRttMs: base, jitterMs: mean - base, reachable: true };
  }
}

function routeChanges(seed: number, rounds: number): number {
  const r = prng(seed);
  const lossy = new PingWindow(300, () => lognormal(r, 6, 1.6));
  const steady = new PingWindow(340, () => lognormal(r, 1.7, 1.0));
  const m = new LatencyMatrix();
  const leg = [{ origin: 'o', upstream: 'u', rttMs: 1, reachable: true }];
  m.applyReport('b', [], leg);
  m.applyReport('c', [], leg);
  let states = new Map<string, RouteState>();
  let path: string | undefined;
  let changes = 0;
  for (let i = 0; i < rounds; i++) {
    for (let k = 0; k < 2; k++) {
      lossy.ping();
      steady.ping();
    }
    m.applyReport('a', [lossy.report('b'), steady.report('c')], []);
    const plan = planRoutes(
      { nodes: ['a', 'b', 'c'], links: m.links(), legs: m.legs(), origins: ['o'] },
      states,
      { settleRounds: 0 },
    );
    states = plan.states;
    const now = plan.routes.find((x) => x.from === 'a')!.path.join(',');
    if (path !== undefined && now !== path) changes++;
    path = now;
  }
  return changes;
}

describe('a near-tie next to a lossy link (replayed hour of reports)', () => {
  it('changes route at most 10 times an hour', () => {
    // With this rule (EWMA capped at 2 x the newest figure + 1 ms): 2-8 per hour over
    // seeds 1-6. The node's figure taken unsmoothed: 19-26 (the lossy link's spikes lift
    // its cost for 3 reports in a row); the previous rule (EWMA, |sample - rtt| as a
    // swing) on the same reports: 5-12.
    const perHour = [1, 2, 3, 4, 5, 6].map((seed) => routeChanges(seed, 3600));
    expect(Math.max(...perHour)).toBeLessThanOrEqual(10);
  });
});
