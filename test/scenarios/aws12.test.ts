import { download } from '@relaymesh/relay-node';
import { loadWorld, type Mesh, startMesh, startWorld, type WorldHandle } from '@relaymesh/world';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alive, MESH_CLI, routePath, sleep, TOKEN, waitForRoutes } from './helpers.ts';

// Issue 5, aws12: twelve regions, one real node each, origins in Cape Town, Calgary and
// UAE. From every entry to every origin, a request through the entry's HTTP port must take
// the route `relaymesh routes` reports (x-relaymesh-path, --debug-headers). The egress
// links run in one process (`shared`) to keep the process count down on two cores.
let handle: WorldHandle | undefined;
let mesh: Mesh | undefined;
const pids: number[] = [];

beforeAll(async () => {
  handle = await startWorld(loadWorld('aws12'), { egress: 'shared', fileSizeBytes: 1024 * 1024 });
  mesh = await startMesh(handle, {
    cli: MESH_CLI,
    token: TOKEN,
    nodeArgs: ['--debug-headers'],
    readyTimeoutMs: 30_000,
  });
  pids.push(...handle.pids());
}, 90_000);

afterAll(async () => {
  await handle?.close();
  handle = undefined;
  expect(alive(pids)).toEqual([]);
}, 30_000);

interface Checked {
  from: string;
  origin: string;
  status: number;
  path: string[];
  reported: string[] | undefined;
  /**
   * When the path differs: the last log lines (warn and up) of the entry and of its first
   * hops; with no route reported, also every node's lines that name the origin.
   */
  logs?: Record<string, string[]>;
}

const same = (a: readonly string[] | undefined, b: readonly string[]) =>
  JSON.stringify(a) === JSON.stringify(b);

/**
 * One request from the entry's own region through its HTTP port, compared with `routes`.
 * The route may change between the request and the read, and an entry whose first hop's
 * tunnel is down at that moment takes an alternate (its local failover): up to three tries
 * 1.5 s apart, so the entry's table and tunnels can catch up. A path still different after
 * that comes back with the logs that say why.
 */
async function check(w: WorldHandle, m: Mesh, from: string, origin: string): Promise<Checked> {
  const node = m.node(from);
  const o = w.originAddress(origin);
  const request = () =>
    download({
      dialer: w.dialerFor(node.region),
      port: node.httpPort,
      hostHeader: o.hosts[0] ?? '',
      path: '/',
      ...(o.kind === 'file' ? { range: { start: 0, end: 1023 } } : {}),
      timeoutMs: 20_000,
    });
  let r = await request();
  let reported = await routePath(m.coordinatorAddress, from, origin);
  for (let tries = 1; tries < 3 && !same(reported, r.path); tries++) {
    await sleep(1500);
    reported = await routePath(m.coordinatorAddress, from, origin);
    r = await request();
  }
  const out: Checked = { from, origin, status: r.status, path: r.path, reported };
  if (!same(reported, r.path)) {
    const ids = new Set([from, r.path[1], reported?.[1]].filter((id) => id !== undefined));
    out.logs = Object.fromEntries([...ids].map((id) => [id, m.node(id).process.tail()]));
    // No route at all: every node's lines about this origin (an exit that lost it says so).
    if (reported === undefined)
      for (const n of m.nodes) {
        const about = n.process.tail().filter((l) => l.includes(`"${origin}"`));
        if (about.length > 0) out.logs[n.id] = about;
      }
  }
  return out;
}

describe('aws12 scenario', () => {
  it('every entry reaches every origin along the route relaymesh routes reports', {
    timeout: 120_000,
  }, async () => {
    const w = handle as WorldHandle;
    const m = mesh as Mesh;
    const pairs = m.nodes.flatMap((n) => w.origins.map((o) => ({ from: n.id, origin: o.name })));
    expect(pairs).toHaveLength(36);
    await waitForRoutes(m.coordinatorAddress, pairs, 60_000);
    // Entries in parallel, each entry's origins in turn (bounded load on two cores).
    const results = (
      await Promise.all(
        m.nodes.map(async (n) => {
          const out: Checked[] = [];
          for (const o of w.origins) out.push(await check(w, m, n.id, o.name));
          return out;
        }),
      )
    ).flat();
    const bad = results.filter((r) => ![200, 206].includes(r.status) || !same(r.reported, r.path));
    expect(bad).toEqual([]);
    // Not every request is served by its entry alone: paths cross the mesh.
    expect(results.filter((r) => r.path.length > 1).length).toBeGreaterThan(0);
  });
});
