import os from 'node:os';
import { loadWorld } from '@relaymesh/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  alivePids,
  type ChaosWorld,
  nodes,
  type Route,
  routes,
  routesWhole,
  sleep,
  startChaosWorld,
  waitFor,
} from './chaos-helpers.ts';
import { emulationNoiseIn, noiseFarAbove, offOptimumIn, worseThanDirectIn } from './optimum.ts';

// Issue 4 on the seed world (Beijing, Hong Kong, Tokyo; origins in Tokyo): routes against
// the world's own optimum once the estimates have settled, and a killed node out of every
// route within its lease. Small and quick: three nodes.

const LEASE_MS = 6000;
let cw: ChaosWorld;
let pids: number[] = [];

beforeAll(async () => {
  cw = await startChaosWorld(loadWorld('seed'), { leaseMs: LEASE_MS });
  pids = cw.handle.pids();
}, 90_000);

afterAll(async () => {
  if (!cw) return;
  pids = [...new Set([...pids, ...cw.handle.pids()])];
  await cw.handle.close();
  expect(alivePids(pids)).toEqual([]);
}, 60_000);

describe('chaos: coordinator acceptance on seed (issue 4)', () => {
  it('every route is within 5 % or 3 ms of the world optimum', async (ctx) => {
    const world = cw.handle.world;
    let rs: Route[] = [];
    let off: unknown[] = [];
    let noiseMs = 0;
    const noise: number[] = [];
    // Start-up samples settle first (docs/reliability.md), bounded; not waited out when
    // the emulation stays far too noisy for the strict check (noiseFarAbove).
    for (let i = 0; i < 20; i++) {
      await sleep(2000);
      rs = await routes(cw);
      noiseMs = emulationNoiseIn(world, rs);
      noise.push(noiseMs);
      off = offOptimumIn(world, rs, noiseMs);
      if (rs.length === 9 && off.length === 0 && noiseMs <= 3) break;
      const sound = rs.length === 9 && worseThanDirectIn(world, rs, noiseMs).length === 0;
      // Start-up samples run high for a while: 20 s at least.
      if (sound && i >= 9 && noiseFarAbove(noise)) break;
    }
    console.log(
      JSON.stringify({
        scenario: 'seed-optimum',
        routes: rs.map((r) => [r.from, r.origin, r.path.join(','), r.rttMs]),
        noiseMs: Number(noiseMs.toFixed(1)),
        noiseHistoryMs: noise.map((x) => Number(x.toFixed(1))),
        offOptimum: off.length,
      }),
    );
    expect(rs).toHaveLength(world.nodes.length * world.origins.length);
    // Never worse than going direct beyond the tolerance plus the emulation's own noise.
    expect(worseThanDirectIn(world, rs, noiseMs)).toEqual([]);
    if (noiseMs > 3) {
      ctx.skip(
        `emulation noise ${noiseMs.toFixed(1)} ms > 3 ms (load ${os.loadavg()[0]?.toFixed(1)})`,
      );
      return;
    }
    expect(off).toEqual([]);
  }, 60_000);

  it('a killed node is marked down and out of every route within its lease', async () => {
    const t0 = performance.now();
    cw.mesh.node('hk-1').process.kill();
    await waitFor('hk-1 out of every route', 20_000, async () => {
      const rs = await routes(cw);
      return (
        rs.length > 0 &&
        rs.every(
          (r) =>
            r.from !== 'hk-1' &&
            !r.path.includes('hk-1') &&
            r.alternates.every((a) => !a.path.includes('hk-1')),
        )
      );
    });
    const outMs = performance.now() - t0;
    await waitFor('hk-1 marked down', 20_000, async () => {
      const n = await nodes(cw);
      return n?.nodes.find((x) => x.id === 'hk-1')?.status === 'down';
    });
    const downMs = performance.now() - t0;
    console.log(
      JSON.stringify({
        scenario: 'seed-kill-lease',
        outOfRoutesMs: Math.round(outMs),
        markedDownMs: Math.round(downMs),
      }),
    );
    // Lease from the last heartbeat (at most 1 s before the kill) plus one recomputation.
    expect(outMs).toBeLessThanOrEqual(LEASE_MS + 1000);
    expect(downMs).toBeLessThanOrEqual(LEASE_MS + 1000);
    expect(routesWhole(cw, await routes(cw), ['hk-1'])).toBe(true);
  }, 60_000);
});
