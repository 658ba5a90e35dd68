import { loadWorld } from '@relaymesh/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  alivePids,
  type ChaosWorld,
  failoverFigures,
  hops,
  nodes,
  nodesUp,
  type Route,
  restartCoordinator,
  routes,
  routesWhole,
  type Sample,
  sleep,
  startChaosWorld,
  stopCoordinator,
  Traffic,
  waitFor,
} from './chaos-helpers.ts';

// Issue 6 (routing half): local failover at the entry on the aws12 world with the real
// mesh (12 node processes, the coordinator, origins in Cape Town, Calgary and the UAE).
// Every scenario runs continuous traffic (a request every 40 ms, each on its own
// connection, each body compared byte for byte) and asserts the figures: time from the
// fault to the first success over another path, failures after it (0), failures before
// the fault (0). Requests in flight at the fault may fail: retrying them is the proxy's job
// (request-level resilience), not the route table's.

let cw: ChaosWorld;
const dead: string[] = [];
let pids: number[] = [];

beforeAll(async () => {
  cw = await startChaosWorld(loadWorld('aws12'));
  pids = cw.handle.pids();
}, 120_000);

afterAll(async () => {
  if (!cw) return;
  pids = [...new Set([...pids, ...cw.handle.pids()])];
  await cw.handle.close();
  expect(alivePids(pids)).toEqual([]);
}, 60_000);

interface Scenario {
  route: Route;
  victim: string;
  traffic: Traffic;
}

/**
 * A route whose best path goes through another node `victim` (prefer a relay in the
 * middle) and has an alternate without it; not through nodes already used or dead. Among
 * those, the quickest: the kill's figure counts until the first rerouted request has
 * completed, so on a long route it measures that request more than the failover (on
 * afs1-1 > euc1-1 > mes1-1 > mec1-1 one 64 KiB range took 0.6-0.8 s before the kill, and
 * the first success after it came 0.61-1.04 s after the kill, sent 26-194 ms after it).
 */
function pick(rs: Route[], avoid: string[]): { route: Route; victim: string } {
  const usable = rs.filter(
    (r) =>
      r.path.length >= 2 &&
      !r.path.some((n) => avoid.includes(n)) &&
      r.alternates.some((a) => a.path.length >= 1 && !a.path.includes(r.path[1] as string)),
  );
  // A relay proper first: a victim outside the origin's region (traffic goes through it).
  const relay = (r: Route) =>
    cw.mesh.node(r.path[1] as string).region !== cw.handle.originAddress(r.origin).region ? 0 : 1;
  usable.sort((a, b) => relay(a) - relay(b) || a.rttMs - b.rttMs || b.path.length - a.path.length);
  const route = usable[0];
  if (!route) throw new Error(`no route with a usable alternate: ${JSON.stringify(rs)}`);
  return { route, victim: route.path[1] as string };
}

function trafficFor(route: Route): Traffic {
  const origin = cw.handle.originAddress(route.origin);
  return new Traffic({
    host: origin.hosts[0] as string,
    port: cw.mesh.node(route.from).httpPort,
    kind: origin.kind === 'file' ? 'file' : 'echo',
    contentSeed: origin.contentSeed,
    sizeBytes: origin.sizeBytes,
    everyMs: 40,
  });
}

async function setUp(avoid: string[]): Promise<Scenario> {
  await waitFor('routes are whole', 30_000, async () => routesWhole(cw, await routes(cw), dead));
  const { route, victim } = pick(await routes(cw), [...avoid, ...dead]);
  const traffic = trafficFor(route).start();
  // Traffic settles on the best path first: the fault must hit a path in use. Up to 20 s:
  // a CI run (load 3) saw none through it within 10 s, right after the blackhole's heal.
  try {
    await waitFor(`traffic flows through ${victim}`, 20_000, () =>
      traffic.samples.some((s) => s.ok && hops(s.path).includes(victim)),
    );
  } catch (err) {
    // What the entry did instead (a precondition, not the failover under test): the paths
    // its answers took, or why they failed.
    const seen: Record<string, number> = {};
    for (const s of await traffic.stop()) {
      const k = s.ok ? s.path || '(direct)' : `failed: ${s.error ?? s.status}`;
      seen[k] = (seen[k] ?? 0) + 1;
    }
    const what = `${route.from} -> ${route.origin}, coordinator path ${route.path.join(',')}`;
    throw new Error(`${(err as Error).message} (${what}; traffic ${JSON.stringify(seen)})`);
  }
  await sleep(500);
  return { route, victim, traffic };
}

function report(name: string, scenario: Scenario, samples: Sample[], faultAt: number) {
  const f = failoverFigures(samples, faultAt, (p) => !hops(p).includes(scenario.victim));
  const paths = [...new Set(samples.filter((s) => s.ok).map((s) => s.path))];
  console.log(
    JSON.stringify({
      scenario: name,
      entry: scenario.route.from,
      origin: scenario.route.origin,
      victim: scenario.victim,
      bestPath: scenario.route.path,
      paths,
      ...f,
      rerouteMs: Math.round(f.rerouteMs),
      rerouteSentMs: Math.round(f.rerouteSentMs),
    }),
  );
  return f;
}

describe('chaos: local failover at the entry (aws12)', () => {
  it('a killed relay is routed around within 1 s; no request sent after that fails', {
    timeout: 90_000,
  }, async () => {
    const s = await setUp([]);
    const victim = cw.mesh.node(s.victim);
    const faultAt = performance.now();
    victim.process.kill(); // SIGKILL: the kernel closes its sockets, nothing graceful
    dead.push(s.victim);
    await sleep(4000);
    const samples = await s.traffic.stop();
    const f = report('node-kill', s, samples, faultAt);
    expect(f.failedBeforeFault).toBe(0);
    // The figure; the first rerouted request completes a full request over the
    // alternate (a few hundred ms of emulated RTT) inside it.
    expect(f.rerouteMs).toBeLessThanOrEqual(1000);
    expect(f.failedAfterReroute).toBe(0);
    // Served all along: at most the requests in flight at the kill failed.
    expect(f.failedInFlight).toBeLessThanOrEqual(Math.ceil(f.rerouteSentMs / 40) + 25);
  });

  it('a blackholed link is detected by the keepalive and routed around within 5 s', {
    timeout: 90_000,
  }, async () => {
    const s = await setUp([]);
    const entryRegion = cw.mesh.node(s.route.from).region;
    const victimRegion = cw.mesh.node(s.victim).region;
    const faultAt = performance.now();
    const applied = await cw.handle.controlLinks(entryRegion, victimRegion, {
      fault: 'blackhole',
    });
    expect(applied.directions).toBeGreaterThan(0);
    await sleep(7000);
    const samples = await s.traffic.stop();
    await cw.handle.controlLinks(entryRegion, victimRegion, { fault: 'heal' });
    const f = report('blackhole', s, samples, faultAt);
    expect(f.failedBeforeFault).toBe(0);
    // Keepalive: dead 3-4 s after the last frame (ping 1 s, dead 3 s); plus the request
    // over the alternate. The bound, no headroom.
    expect(f.rerouteMs).toBeLessThanOrEqual(5000);
    expect(f.failedAfterReroute).toBe(0);
    // The tunnel comes back after the heal (redial with backoff) and the coordinator
    // sees the link again.
    const back = await waitFor('the healed link is reported again', 30_000, async () =>
      ((await nodes(cw))?.links ?? []).some(
        (l) =>
          (l.from === s.route.from && l.to === s.victim) ||
          (l.from === s.victim && l.to === s.route.from),
      ),
    );
    console.log(JSON.stringify({ scenario: 'blackhole-heal', linkBackMs: Math.round(back) }));
  });

  it('an exit whose link to the origin is blackholed: requests go through another exit once those on its kept-alive origin connections are in', {
    timeout: 90_000,
  }, async () => {
    await waitFor('routes are whole', 30_000, async () => routesWhole(cw, await routes(cw), dead));
    const region = (id: string) => cw.mesh.node(id).region;
    const originRegion = (r: Route) => cw.handle.originAddress(r.origin).region;
    // Whether a path crosses the region pair {a, b} (its own links, and its exit to the origin).
    const crosses = (path: string[], r: Route, a: string, b: string) =>
      [...path.map(region), originRegion(r)].some((x, i, all) => {
        const y = all[i + 1];
        return y !== undefined && ((x === a && y === b) || (x === b && y === a));
      });
    // A route whose exit reaches the origin over an inter-region link, with an alternate that
    // ends at another exit and does not cross that link: only the exit's origin leg breaks.
    const cut = (await routes(cw))
      .filter((r) => !r.path.some((n) => dead.includes(n)))
      .map((r) => {
        const exit = r.path[r.path.length - 1] as string;
        const [a, b] = [region(exit), originRegion(r)];
        const inner = r.path.slice(0, -1);
        const alt = r.alternates.find(
          (x) =>
            x.path[x.path.length - 1] !== exit &&
            !x.path.some((n) => dead.includes(n)) &&
            !crosses(x.path, r, a, b),
        );
        const ok = a !== b && alt !== undefined && !crosses(inner, r, a, b);
        return ok ? { route: r, exit, link: [a, b] as const } : undefined;
      })
      .find((x) => x !== undefined);
    if (!cut) throw new Error('no route whose exit could be cut from the origin alone');
    const traffic = trafficFor(cut.route).start();
    await waitFor(`traffic exits at ${cut.exit}`, 20_000, () =>
      traffic.samples.some((x) => x.ok && hops(x.path).at(-1) === cut.exit),
    );
    await sleep(500);
    const faultAt = performance.now();
    const applied = await cw.handle.controlLinks(cut.link[0], cut.link[1], { fault: 'blackhole' });
    expect(applied.directions).toBeGreaterThan(0);
    await sleep(8000);
    const samples = await traffic.stop();
    await cw.handle.controlLinks(cut.link[0], cut.link[1], { fault: 'heal' });
    const f = failoverFigures(samples, faultAt, (p) => hops(p).at(-1) !== cut.exit);
    // Sent after the fault. The first few may go to the origin on connections the exit kept
    // alive from before it: they hang in the silent link until the client gives up, as
    // requests in flight do in the blackhole test above. Once those are taken, the exit's
    // connects time out and every request goes through another exit.
    const sent = samples.filter((x) => x.sentAt >= faultAt);
    const firstOk = sent.findIndex((x) => x.ok);
    const hung = sent.slice(0, Math.max(0, firstOk));
    const after = sent.slice(Math.max(0, firstOk));
    const elsewhere = after.filter((x) => x.ok && hops(x.path).at(-1) !== cut.exit);
    console.log(
      JSON.stringify({
        scenario: 'exit-origin-blackhole',
        entry: cut.route.from,
        origin: cut.route.origin,
        exit: cut.exit,
        link: cut.link,
        bestPath: cut.route.path,
        sentAfter: after.length,
        servedElsewhere: elsewhere.length,
        slowestMs: Math.round(Math.max(0, ...after.map((x) => x.doneAt - x.sentAt))),
        hungSentAtMs: hung.map((x) => Math.round(x.sentAt - faultAt)),
        ...f,
        rerouteMs: Math.round(f.rerouteMs),
      }),
    );
    expect(f.failedBeforeFault).toBe(0);
    expect(hung.length).toBeLessThanOrEqual(20);
    expect(after.length).toBeGreaterThan(100);
    expect(after.filter((x) => !x.ok)).toEqual([]);
    expect(elsewhere.length).toBe(after.length);
  });

  // 30 s down (60 s until session 13; cut for the suite's 10-minute budget). The clocks a
  // node runs without the coordinator are both past their limits: the re-registration
  // backoff (200 ms x 1.6) reaches its 5 s cap ~9 s in, before the kill, and the 20 s after
  // the kill outlast the peer manager's 15 s forget timer. Minutes of outage, with faults
  // meanwhile: `node scripts/soak.mjs --coordinator-outage 180` (docs/reliability.md, Soak).
  it('the coordinator down for 30 s: traffic keeps flowing on the last routes, a relay killed meanwhile is routed around locally, nodes re-register', {
    timeout: 120_000,
  }, async () => {
    const s = await setUp([]);
    const downAt = performance.now();
    await stopCoordinator(cw);
    await sleep(10_000);
    const faultAt = performance.now();
    cw.mesh.node(s.victim).process.kill();
    dead.push(s.victim);
    await sleep(20_000);
    const outageMs = performance.now() - downAt;
    await restartCoordinator(cw);
    const live = cw.mesh.nodes.filter((n) => !dead.includes(n.id)).length;
    const registeredMs = await waitFor(
      'every live node re-registered',
      30_000,
      async () => (await nodesUp(cw)) === live,
    );
    const wholeMs = await waitFor('routes whole again', 30_000, async () =>
      routesWhole(cw, await routes(cw), dead),
    );
    await sleep(1000);
    const samples = await s.traffic.stop();
    const f = report('coordinator-outage', s, samples, faultAt);
    console.log(
      JSON.stringify({
        scenario: 'coordinator-outage',
        outageMs: Math.round(outageMs),
        reregisteredMs: Math.round(registeredMs),
        routesWholeMs: Math.round(wholeMs),
        requests: samples.length,
      }),
    );
    // Nothing failed because the coordinator was away: before the kill, zero.
    expect(f.failedBeforeFault).toBe(0);
    // The local failover did not need the coordinator.
    expect(f.rerouteMs).toBeLessThanOrEqual(1000);
    expect(f.failedAfterReroute).toBe(0);
    // No node crashed meanwhile.
    expect(
      cw.mesh.nodes
        .filter((n) => n.process.exited)
        .map((n) => n.id)
        .sort(),
    ).toEqual([...dead].sort());
  });
});
