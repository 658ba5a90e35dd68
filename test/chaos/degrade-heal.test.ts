import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type LinkFault, loadWorld } from '@relaymesh/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  alivePids,
  type ChaosWorld,
  routes,
  sleep,
  startChaosWorld,
  Traffic,
  waitFor,
} from './chaos-helpers.ts';
import { pathRtt } from './optimum.ts';

// Issue 4 ("degrade one link of a best path: its routes move within 10 s; heal it: they
// move back, without flapping") and issue 6 ("a link degrades: routes move within 10 s
// with hysteresis, and move back after it heals"), on a world built so that the answer is
// unambiguous: the entry a-1 reaches the origin (region d-o, no node there) best through
// b-1 (50 + 30 ms), second through c-1 (45 + 50 ms), direct is 200 ms. Doubling a<->b
// (100 ms) makes the c path 27 % and 35 ms better, in cost and in RTT (a large gain for the
// coordinator's hysteresis: 2 recomputations); healed, the b path is 16 % and 15 ms better
// (past the 10 % and 5 ms rule: 3 recomputations).
// (On aws12 under a busy machine the routes in force change from run to run, so which
// link qualifies does too.) Traffic runs throughout: a route change fails no request.

const WORLD = {
  name: 'degrade4',
  seed: 4,
  regions: [{ id: 'd-a' }, { id: 'd-b' }, { id: 'd-c' }, { id: 'd-o' }],
  nodes: [
    { id: 'a-1', region: 'd-a' },
    { id: 'b-1', region: 'd-b' },
    { id: 'c-1', region: 'd-c' },
  ],
  origins: [
    { name: 'echo', region: 'd-o', kind: 'http', hosts: ['echo.o.example'] },
    { name: 'files', region: 'd-o', kind: 'file', hosts: ['files.o.example'] },
  ],
  links: [
    { from: 'd-a', to: 'd-b', rttMs: 50 },
    { from: 'd-b', to: 'd-o', rttMs: 30 },
    { from: 'd-a', to: 'd-c', rttMs: 45 },
    { from: 'd-c', to: 'd-o', rttMs: 50 },
    { from: 'd-a', to: 'd-o', rttMs: 200 },
    { from: 'd-b', to: 'd-c', rttMs: 120 },
  ],
};

/**
 * Coordinator `--settle-rounds`: a route settles in its first 10 recomputations (about 10 s;
 * at once to any path 2 % and 1 ms better, docs/architecture.md), then the full hysteresis
 * holds it. The bandwidth scenario runs first, its fall inside the settle phase; the RTT
 * scenario after it, on settled routes and warm estimates (a cold start's origin legs took
 * over 30 s to come within 5 ms).
 */
const SETTLE_ROUNDS = 10;

let cw: ChaosWorld;
let dir: string;
let pids: number[] = [];
/** When every node had its first routes (performance.now()). */
let routesAt = 0;

beforeAll(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'chaos-degrade-'));
  const file = path.join(dir, 'degrade4.json');
  writeFileSync(file, JSON.stringify(WORLD));
  cw = await startChaosWorld(loadWorld(file), { settleRounds: SETTLE_ROUNDS });
  routesAt = performance.now();
  pids = cw.handle.pids();
}, 90_000);

afterAll(async () => {
  if (cw) {
    pids = [...new Set([...pids, ...cw.handle.pids()])];
    await cw.handle.close();
  }
  rmSync(dir, { recursive: true, force: true });
  expect(alivePids(pids)).toEqual([]);
}, 60_000);

/**
 * Waits (up to 30 s) until a-1's route to `origin` is the b path, and has been for the last
 * `steadyMs` (a fault must hit a route that holds: a suite run once watched from a route
 * that had moved to c during the traffic's warm-up, and counted that move as the fault's).
 * On a timeout the error carries the route in force with its alternates, which is what says
 * why (a suite run once timed out here, with nothing to go on).
 */
async function waitForBPath(origin: string, steadyMs = 0): Promise<void> {
  const route = async () => (await routes(cw)).find((r) => r.from === 'a-1' && r.origin === origin);
  let since: number | undefined;
  try {
    await waitFor(`the best path via b-1 for ${steadyMs} ms`, 30_000, async () => {
      if ((await route())?.path.join(',') !== 'a-1,b-1') since = undefined;
      else since ??= performance.now();
      return since !== undefined && performance.now() - since >= steadyMs;
    });
  } catch (err) {
    throw new Error(`${(err as Error).message}; route in force: ${JSON.stringify(await route())}`);
  }
}

/**
 * Polls `current` every 200 ms (at most 2,000 times) and records each change of the route
 * after `initial`, with its time since the watch began.
 */
function watchRoute(current: () => Promise<string | undefined>, initial: string) {
  const seen = [initial];
  const changes: { at: number; path: string }[] = [];
  const t0 = performance.now();
  let polling = true;
  const poller = (async () => {
    for (let i = 0; polling && i < 2000; i++) {
      const p = await current();
      if (p !== undefined && p !== seen[seen.length - 1]) {
        seen.push(p);
        changes.push({ at: Math.round(performance.now() - t0), path: p });
      }
      await sleep(200);
    }
  })();
  return {
    seen,
    changes,
    t0,
    stop: async () => {
      polling = false;
      await poller;
    },
  };
}

/**
 * Degrades d-a <-> d-b with `fault`, waits (up to 20 s) for the route to leave b-1, holds
 * the fault `holdMs`, heals, waits (up to `backWithinMs`) for the route to come back to
 * a-1,b-1, then 6 s more (healed for a while: it must stay back). Times are from the watch's
 * start; a wait that runs out gives Infinity, for the caller's assertions. Always heals.
 */
async function degradeHoldHeal(
  watch: ReturnType<typeof watchRoute>,
  o: { fault: LinkFault; holdMs: number; backWithinMs: number },
) {
  let movedMs = Number.POSITIVE_INFINITY;
  let backMs = Number.POSITIVE_INFINITY;
  let degradedChanges = 0;
  let healAt = Number.POSITIVE_INFINITY;
  try {
    await cw.handle.controlLinks('d-a', 'd-b', o.fault);
    movedMs = await waitFor('the route leaves the degraded link', 20_000, () =>
      watch.changes.some((c) => !c.path.includes('b-1')),
    ).catch(() => Number.POSITIVE_INFINITY);
    await sleep(o.holdMs);
    degradedChanges = watch.changes.length;
    healAt = performance.now() - watch.t0;
    await cw.handle.controlLinks('d-a', 'd-b', { fault: 'heal' });
    backMs = await waitFor(
      'the route comes back',
      o.backWithinMs,
      () => watch.seen[watch.seen.length - 1] === 'a-1,b-1',
    ).catch(() => Number.POSITIVE_INFINITY);
    await sleep(6000);
  } finally {
    await cw.handle.controlLinks('d-a', 'd-b', { fault: 'heal' });
    await watch.stop();
  }
  return { movedMs, backMs, degradedChanges, healAt };
}

// Issue 6's other half: "bandwidth falls". Every link is 100 Mbit/s; a-1 downloads 64 KiB
// ranges of `files` every 50 ms (~10 Mbit/s) while a<->b falls to 2 Mbit/s. RTT alone sees
// the fall only while our own traffic queues on the link, so the route would flap back as
// soon as it left; the capacity probes (docs/data-plane.md) remember what the link carried,
// and the coordinator charges the fall (docs/architecture.md, link cost).
describe('chaos: the bandwidth of a link on the best path falls (100 -> 2 Mbit/s)', () => {
  it('routes move within 10 s, stay away while degraded, move back after the heal, no flapping', {
    timeout: 120_000,
  }, async () => {
    const world = cw.handle.world;
    const files = world.origins.find((o) => o.name === 'files');
    if (files === undefined) throw new Error('world has no files origin');
    const current = async () =>
      (await routes(cw)).find((r) => r.from === 'a-1' && r.origin === 'files')?.path.join(',');
    await waitForBPath('files');
    // Traffic first, so the tunnel a<->b is busy when the bandwidth falls.
    const traffic = new Traffic({
      host: 'files.o.example',
      port: cw.mesh.node('a-1').httpPort,
      kind: 'file',
      contentSeed: files.contentSeed,
      sizeBytes: 1 << 20,
      everyMs: 50,
    }).start();
    await sleep(3000);
    await waitForBPath('files', 2000);
    const watch = watchRoute(current, 'a-1,b-1');
    const { changes, t0 } = watch;
    const { movedMs, backMs, degradedChanges, healAt } = await degradeHoldHeal(watch, {
      fault: { fault: 'degrade', bandwidthBps: 2_000_000 },
      holdMs: 15_000, // degraded, the traffic gone from the link: the route must hold
      backWithinMs: 20_000,
    });
    const samples = await traffic.stop();
    const failed = samples.filter((s) => !s.ok);
    // The route leaves the link movedMs after the fall; requests sent later must not fail.
    const movedAt = t0 + movedMs;
    const failedBeforeFall = failed.filter((s) => s.sentAt < t0);
    const failedAfterMove = failed.filter((s) => s.sentAt > movedAt);
    const paths: Record<string, number> = {};
    for (const s of samples) paths[s.path] = (paths[s.path] ?? 0) + 1;
    const errors: Record<string, number> = {};
    for (const s of failed) errors[s.error ?? '?'] = (errors[s.error ?? '?'] ?? 0) + 1;
    console.log(
      JSON.stringify({
        scenario: 'bandwidth-fall-heal',
        link: 'd-a<->d-b 100 -> 2 Mbit/s',
        movedMs: Math.round(movedMs),
        heldDegradedMs: Math.round(healAt - movedMs),
        backAfterHealMs: Math.round(backMs),
        changes,
        requests: samples.length,
        failed: failed.length,
        failedBeforeFall: failedBeforeFall.length,
        failedAfterMove: failedAfterMove.length,
        errors,
        requestsByPath: paths,
      }),
    );
    expect(movedMs).toBeLessThanOrEqual(10_000);
    // Away once, to the c path, held there for 15 s while degraded; back once after the heal.
    expect(changes.slice(0, degradedChanges).map((c) => c.path)).toEqual(['a-1,c-1']);
    // The penalty ends after two good probes (1 s apart) and a report, the jitter once three
    // PINGs faster than the queued ones restart the node's window; then the route comes back
    // (settled: the 10 % rule, 3 recomputations; docs/reliability.md). It took 25-32 s while
    // the jitter was RFC 6298's rttvar, smoothed again by the coordinator.
    expect(backMs).toBeLessThanOrEqual(20_000);
    expect(changes.map((c) => c.path)).toEqual(['a-1,c-1', 'a-1,b-1']);
    // Only requests caught on the slow link before the move may fail (no retry mid-body).
    expect(failedBeforeFall).toEqual([]);
    expect(failedAfterMove).toEqual([]);
    expect(samples.filter((s) => s.corrupt)).toEqual([]);
    expect(paths['a-1,c-1']).toBeGreaterThan(0);
  });
});

describe('chaos: a degraded link (RTT x2) on the best path of a settled route', () => {
  it('routes move within 10 s, move back after the heal, no flapping, no failed request', {
    timeout: 120_000,
  }, async () => {
    const world = cw.handle.world;
    const current = async () =>
      (await routes(cw)).find((r) => r.from === 'a-1' && r.origin === 'echo')?.path.join(',');
    await waitForBPath('echo');
    expect(pathRtt(world, ['a-1', 'b-1'], 'echo')).toBeCloseTo(80, 0);
    // Settled: at most one recomputation a second, at least one every 2 s while nodes
    // report, so 2 s per round is past SETTLE_ROUNDS (the scenario above took 30-40 s).
    await sleep(Math.max(0, routesAt + 2000 * SETTLE_ROUNDS - performance.now()));

    const traffic = new Traffic({
      host: 'echo.o.example',
      port: cw.mesh.node('a-1').httpPort,
      kind: 'echo',
      everyMs: 100,
    }).start();
    const routeAgeMs = performance.now() - routesAt;
    const watch = watchRoute(current, 'a-1,b-1');
    const { changes } = watch;
    const { movedMs, backMs, degradedChanges } = await degradeHoldHeal(watch, {
      fault: { fault: 'degrade', rttMs: 100 },
      holdMs: 8000, // degraded for a while: the new route must hold
      backWithinMs: 30_000,
    });
    const samples = await traffic.stop();
    const failed = samples.filter((s) => !s.ok);
    const paths: Record<string, number> = {};
    for (const s of samples) paths[s.path] = (paths[s.path] ?? 0) + 1;
    console.log(
      JSON.stringify({
        scenario: 'degrade-heal',
        link: 'd-a<->d-b 50 -> 100 ms',
        routeAgeMs: Math.round(routeAgeMs),
        movedMs: Math.round(movedMs),
        backAfterHealMs: Math.round(backMs),
        changes,
        requests: samples.length,
        failed: failed.length,
        requestsByPath: paths,
      }),
    );
    // The bound (routes polled every 200 ms), on a settled route: the 6 PINGs of
    // the node's window (3 s), a report (1 s), 2 recomputations (1 s apart).
    expect(movedMs).toBeLessThanOrEqual(10_000);
    // Away once, to the c path, and held there while degraded; back once after the heal.
    expect(changes.slice(0, degradedChanges).map((c) => c.path)).toEqual(['a-1,c-1']);
    expect(backMs).toBeLessThanOrEqual(30_000);
    expect(changes.map((c) => c.path)).toEqual(['a-1,c-1', 'a-1,b-1']);
    // Requests followed the routes, and a route change fails none of them.
    expect(failed).toEqual([]);
    expect(paths['a-1,c-1']).toBeGreaterThan(0);
  });
});
