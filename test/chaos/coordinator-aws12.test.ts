import os from 'node:os';
import { loadWorld, relayWins } from '@relaymesh/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  alivePids,
  type ChaosWorld,
  nodes,
  nodesUp,
  type Route,
  restartCoordinator,
  routes,
  routesWhole,
  sleep,
  startChaosWorld,
  stopCoordinator,
  Traffic,
  waitFor,
} from './chaos-helpers.ts';
import {
  emulationNoiseIn,
  noiseFarAbove,
  offOptimumIn,
  optimumRtt,
  pathRtt,
  worseThanDirectIn,
} from './optimum.ts';

// Issue 4 acceptance, measured on the aws12 world with the real coordinator and 12 real
// nodes: a coordinator restart under a running world, routes against the world's own
// optimum, a killed node out of every route within its lease. (A degraded link moved
// away from and back without flapping: degrade-heal.test.ts, on a world built for it.)

const LEASE_MS = 6000; // the coordinator's default --lease-ms, passed explicitly
let cw: ChaosWorld;
let pids: number[] = [];
const dead: string[] = [];

beforeAll(async () => {
  startedAt = performance.now();
  cw = await startChaosWorld(loadWorld('aws12'), { leaseMs: LEASE_MS });
  pids = cw.handle.pids();
}, 120_000);

afterAll(async () => {
  if (!cw) return;
  pids = [...new Set([...pids, ...cw.handle.pids()])];
  await cw.handle.close();
  expect(alivePids(pids)).toEqual([]);
}, 60_000);

const regionOf = (id: string) => cw.mesh.node(id).region;
/**
 * The estimates start high (the first PINGs and probes run while 12 nodes boot on two
 * cores) and are smoothed (least of the last 6 PINGs on the node, EWMA 0.5 in the prober,
 * EWMA 0.3 in the coordinator): about 30 s until they are within a few ms.
 */
const SETTLE_MS = 30_000;
let startedAt = 0;
let coldOff = -1;

const offOptimum = (list: Route[], noiseMs: number) => offOptimumIn(cw.handle.world, list, noiseMs);
const emulationNoiseMs = (list: Route[]) => emulationNoiseIn(cw.handle.world, list);

describe('chaos: coordinator acceptance on aws12 (issue 4)', () => {
  it('the coordinator stopped and restarted under the running world: nodes re-register, routes whole within seconds, no request fails, nothing crashes', async () => {
    // Let the estimates settle first (see emulationNoiseMs and docs/reliability.md): the
    // table computed at the cold start was chosen from start-up samples, and hysteresis
    // keeps a path unless another is 10 % better; the restarted coordinator computes
    // from the settled estimates, which the next test checks against the world.
    await sleep(Math.max(0, startedAt + SETTLE_MS - performance.now()));
    const rs = await routes(cw);
    coldOff = offOptimum(rs, emulationNoiseMs(rs)).length;
    const r = rs.find((x) => x.path.length >= 1 && !dead.includes(x.from)) as Route;
    const origin = cw.handle.originAddress(r.origin);
    const traffic = new Traffic({
      host: origin.hosts[0] as string,
      port: cw.mesh.node(r.from).httpPort,
      kind: origin.kind === 'file' ? 'file' : 'echo',
      contentSeed: origin.contentSeed,
      sizeBytes: origin.sizeBytes,
      everyMs: 50,
    }).start();
    await sleep(1000);
    const stoppedAt = performance.now();
    await stopCoordinator(cw);
    await sleep(3000);
    const t0 = performance.now();
    await restartCoordinator(cw);
    const live = cw.mesh.nodes.filter((n) => !dead.includes(n.id)).length;
    const registeredMs = await waitFor(
      'every live node re-registered',
      20_000,
      async () => (await nodesUp(cw)) === live,
    );
    await waitFor('routes whole again', 20_000, async () =>
      routesWhole(cw, await routes(cw), dead),
    );
    const wholeMs = performance.now() - t0;
    await sleep(1000);
    const samples = await traffic.stop();
    const failed = samples.filter((s) => !s.ok);
    console.log(
      JSON.stringify({
        scenario: 'coordinator-restart',
        route: r.path,
        origin: r.origin,
        stoppedAt: Math.round(stoppedAt - t0),
        failures: failed.map((f) => [
          Math.round(f.sentAt - t0),
          Math.round(f.doneAt - t0),
          f.error,
        ]),
        exited: cw.mesh.nodes
          .filter((n) => n.process.exited)
          .map((n) => [n.id, n.process.tail().slice(-3)]),
        coldStartOffOptimum: coldOff,
        reregisteredMs: Math.round(registeredMs),
        routesWholeMs: Math.round(wholeMs),
        requests: samples.length,
        failed: failed.length,
      }),
    );
    // Backoff cap 5 s + warm-up 1 s (the mesh's) + the first report and recomputation.
    expect(wholeMs).toBeLessThanOrEqual(10_000);
    expect(failed).toEqual([]);
    expect(samples.length).toBeGreaterThan(50);
    expect(cw.mesh.nodes.filter((n) => n.process.exited).map((n) => n.id)).toEqual(dead);
  }, 90_000);

  it('every route is within 5 % or 3 ms of the world optimum; relay wins go through a relay', async (ctx) => {
    const world = cw.handle.world;
    const t0 = performance.now();
    // The table of the restarted coordinator (previous test), from settled estimates;
    // polled a little while its hysteresis catches up with the last estimates.
    let rs: Route[] = [];
    let off: unknown[] = [];
    let noiseMs = 0;
    const noise: number[] = [];
    for (let i = 0; i < 30 && performance.now() - t0 < 30_000; i++) {
      rs = await routes(cw);
      noiseMs = emulationNoiseMs(rs);
      noise.push(noiseMs);
      off = offOptimum(rs, noiseMs);
      const complete = rs.length === world.nodes.length * world.origins.length;
      if (complete && off.length === 0 && noiseMs <= 3) break;
      // The strict check will be skipped: stop once what is still asserted holds.
      const sound = complete && worseThanDirectIn(world, rs, noiseMs).length === 0;
      if (sound && noiseFarAbove(noise)) break;
      await sleep(2000);
    }
    const settledMs = performance.now() - t0;
    const originRegions = world.origins.map((o) => o.region);
    // A relay win smaller than the accuracy routes promise (5 % or 3 ms) is a tie within
    // that accuracy: the direct path is then also "within 5 % or 3 ms of the optimum",
    // and the hop penalty and per-link jitter term rightly break such ties toward fewer
    // hops. Wins larger than the tolerance must go through a relay.
    const allWins = relayWins(world, { to: originRegions, minGainMs: 5 });
    const wins = allWins.filter((w) => w.directMs - w.viaMs > Math.max(3, 0.05 * w.directMs));
    const missed: unknown[] = [];
    let checked = 0;
    for (const w of wins) {
      for (const n of world.nodes.filter((x) => x.region === w.from)) {
        for (const o of world.origins.filter((x) => x.region === w.to)) {
          const r = rs.find((x) => x.from === n.id && x.origin === o.name);
          checked++;
          const viaRelay = r?.path.some((id) => ![w.from, w.to].includes(regionOf(id)));
          if (!viaRelay) missed.push({ win: w, path: r?.path });
        }
      }
    }
    console.log(
      JSON.stringify({
        scenario: 'optimum',
        routes: rs.length,
        settledMs: Math.round(settledMs),
        noiseMs: Number(noiseMs.toFixed(1)),
        noiseHistoryMs: noise.map((x) => Number(x.toFixed(1))),
        loadavg: os.loadavg()[0]?.toFixed(1),
        offOptimum: off.length,
        relayWins: checked,
        narrowRelayWins: allWins.length - wins.length,
        relayWinsMissed: missed.length,
        worstDeviationPct: Number(
          Math.max(
            ...rs.map(
              (r) =>
                (pathRtt(world, r.path, r.origin) / optimumRtt(world, r.from, r.origin).rttMs - 1) *
                100,
            ),
          ).toFixed(1),
        ),
        maxErrorMs: Number(
          Math.max(
            ...rs.map((r) => Math.abs(r.rttMs - optimumRtt(world, r.from, r.origin).rttMs)),
          ).toFixed(1),
        ),
      }),
    );
    expect(rs).toHaveLength(world.nodes.length * world.origins.length);
    // Whatever the machine: routing never makes a route worse than the entry going
    // direct by more than the tolerance plus what the emulation adds.
    expect(worseThanDirectIn(world, rs, noiseMs)).toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(5);
    // The 3 ms tolerance can only be checked when the emulation itself is that
    // accurate: a busy machine (other suites on the two cores) adds tens of ms to every
    // PING and probe and a jitter the coordinator rightly charges to every extra hop.
    if (noiseMs > 3) {
      ctx.skip(
        `emulation noise ${noiseMs.toFixed(1)} ms > 3 ms (load ${os.loadavg()[0]?.toFixed(1)})`,
      );
      return;
    }
    expect(off).toEqual([]);
    expect(missed).toEqual([]);
  }, 60_000);

  it('a killed node is marked down and out of every route within its lease', async () => {
    const rs = await routes(cw);
    // The node on the most paths (as a relay or exit of others).
    const uses = new Map<string, number>();
    for (const r of rs) for (const id of r.path.slice(1)) uses.set(id, (uses.get(id) ?? 0) + 1);
    const victim = [...uses].sort((x, y) => y[1] - x[1])[0]?.[0] as string;
    const t0 = performance.now();
    cw.mesh.node(victim).process.kill();
    dead.push(victim);
    const outMs = await waitFor(`${victim} is out of every route`, 20_000, async () => {
      const now = await routes(cw);
      return (
        now.length > 0 &&
        now.every(
          (r) =>
            r.from !== victim &&
            !r.path.includes(victim) &&
            r.alternates.every((x) => !x.path.includes(victim)),
        )
      );
    });
    const downMs = await waitFor(`${victim} is marked down`, 20_000, async () => {
      const n = await nodes(cw);
      return n?.nodes.find((x) => x.id === victim)?.status === 'down';
    });
    const total = performance.now() - t0;
    console.log(
      JSON.stringify({
        scenario: 'node-kill-lease',
        victim,
        pathsThroughIt: uses.get(victim),
        outOfRoutesMs: Math.round(outMs),
        markedDownMs: Math.round(total),
        leaseMs: LEASE_MS,
      }),
    );
    // Lease from the last heartbeat (at most 1 s before the kill) plus one recomputation;
    // polled every 250 ms.
    expect(outMs).toBeLessThanOrEqual(LEASE_MS + 1000);
    expect(total).toBeLessThanOrEqual(LEASE_MS + 1000);
    expect(downMs).toBeGreaterThanOrEqual(0);
    expect(routesWhole(cw, await routes(cw), dead)).toBe(true);
  }, 60_000);
});
