import { Coordinator, parseClusterConfig } from '@relaymesh/coordinator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryNodes } from '../../src/control/queries.ts';
import { RelayNode, type RelayNodeOptions } from '../../src/node/relay-node.ts';
import { blockingDialer, get, ORIGIN_HOST, startOrigin, TOKEN, waitFor } from './helpers.ts';

// Three in-process nodes and a real coordinator on loopback. Node `a` cannot reach the
// origin itself (its dialer refuses the origin's port), so its requests must cross the mesh.
let coordinator: Coordinator;
/** Live sockets, servers and timers of this process (pipes are vitest's own). */
const handles = () => process.getActiveResourcesInfo().filter((r) => r !== 'PipeWrap');
/** Handles beyond the baseline, by type. */
function excess(): string[] {
  const left = [...baseline];
  return handles().filter((h) => {
    const i = left.indexOf(h);
    if (i >= 0) left.splice(i, 1);
    return i < 0;
  });
}
let baseline: string[] = [];
let origin: Awaited<ReturnType<typeof startOrigin>>;
const nodes = new Map<string, RelayNode>();

function node(id: string): RelayNode {
  const n = nodes.get(id);
  if (!n) throw new Error(`no node ${id}`);
  return n;
}

function nodeOptions(id: string, extra: Partial<RelayNodeOptions> = {}): RelayNodeOptions {
  return {
    id,
    region: `region-${id}`,
    coordinator: coordinator.address as string,
    token: TOKEN,
    tunnelListen: { host: '127.0.0.1', port: 0 },
    httpListen: { host: '127.0.0.1', port: 0 },
    debugHeaders: true,
    timers: {
      tunnelBackoff: { initialMs: 50, maxMs: 500 },
      coordinatorBackoff: { initialMs: 50, maxMs: 500 },
    },
    closeGraceMs: 3000,
    ...extra,
  };
}

function coordinatorConfig() {
  return parseClusterConfig(`
token: ${TOKEN}
origins:
  - name: files
    hosts: [${ORIGIN_HOST}]
    upstreams: ["http://127.0.0.1:${origin.port}"]
`);
}

function entryPort(id: string): number {
  return node(id).addresses?.http?.port as number;
}

beforeAll(async () => {
  baseline = handles();
  origin = await startOrigin();
  coordinator = new Coordinator({
    config: coordinatorConfig(),
    listen: '127.0.0.1:0',
    heartbeatIntervalMs: 200,
    reportIntervalMs: 200,
    recomputeIntervalMs: 50,
    leaseMs: 2000,
    warmupMs: 0,
  });
  await coordinator.start();
  nodes.set('a', new RelayNode(nodeOptions('a', { dialer: blockingDialer(origin.port) })));
  nodes.set('b', new RelayNode(nodeOptions('b')));
  nodes.set('c', new RelayNode(nodeOptions('c')));
  await Promise.all([...nodes.values()].map((n) => n.start()));
}, 15_000);

afterAll(async () => {
  for (const n of nodes.values()) n.destroy();
  coordinator?.destroy();
  await origin?.close();
});

describe('RelayNode composed with a real coordinator', () => {
  it('keeps exactly one tunnel per peer pair: the lower id dials', async () => {
    await waitFor(
      () => [...nodes.values()].every((n) => n.peers.connectedPeers.length === 2),
      8000,
      'a full mesh of tunnels',
    );
    // a dials b and c; b dials c; c only accepts.
    expect([...node('a').listener.tunnels.keys()]).toEqual([]);
    expect([...node('b').listener.tunnels.keys()]).toEqual(['a']);
    expect([...node('c').listener.tunnels.keys()].sort()).toEqual(['a', 'b']);
  });

  it('registers with the advertised addresses derived from the bound ports', async () => {
    const report = await queryNodes({ address: coordinator.address as string, token: TOKEN });
    const a = report.nodes.find((n) => n.id === 'a');
    expect(a?.status).toBe('up');
    expect(a?.advertise).toBe(`ws://127.0.0.1:${node('a').addresses?.tunnel.port}`);
    expect(a?.httpAdvertise).toBe(`http://127.0.0.1:${entryPort('a')}`);
  });

  it('routes a request from a through the mesh along the coordinator path', async () => {
    const route = await waitFor(
      () => coordinator.routes({ from: 'a', origin: 'files' })[0],
      8000,
      'a route from a',
    );
    expect(route.path[0]).toBe('a');
    expect(route.path.length).toBeGreaterThanOrEqual(2); // a cannot reach the origin itself
    await waitFor(() => node('a').routes.pathsFor('files').length > 0, 5000, 'routes at a');
    const res = await get(entryPort('a'), '/hello');
    expect(res).toMatchObject({ status: 200, body: 'origin:/hello' });
    const now = coordinator.routes({ from: 'a', origin: 'files' })[0];
    expect(res.path).toBe(now?.path.join(','));
  });

  it('serves the origin locally where the node reaches it itself', async () => {
    await waitFor(() => node('b').routes.pathsFor('files').length > 0, 5000, 'routes at b');
    const res = await get(entryPort('b'), '/local');
    expect(res.status).toBe(200);
    expect(res.body).toBe('origin:/local');
    expect(res.path?.split(',')[0]).toBe('b');
  });

  it('an unknown host is refused at the entry (no open proxy)', async () => {
    const res = await get(entryPort('a'), '/', 'elsewhere.example.test');
    expect(res.status).toBeGreaterThanOrEqual(400);
    expect(res.error).toBeDefined();
  });

  it('a node that closes leaves: the coordinator marks it down, routes move, requests work', async () => {
    const leaving = coordinator.routes({ from: 'a', origin: 'files' })[0]?.path[1] ?? 'b';
    const other = leaving === 'b' ? 'c' : 'b';
    // A request in flight through the leaving node finishes: GO_AWAY, then drain.
    const inFlight = get(entryPort('a'), '/slow');
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await node(leaving).close();
    expect(Date.now() - started).toBeLessThan(3500);
    expect(await inFlight).toMatchObject({ status: 200, body: 'origin:/slow' });
    const report = await queryNodes({ address: coordinator.address as string, token: TOKEN });
    expect(report.nodes.find((n) => n.id === leaving)?.status).toBe('down');
    await waitFor(
      () => node('a').routes.pathsFor('files')[0]?.[1] === other,
      5000,
      `a's route to move to ${other}`,
    );
    const res = await get(entryPort('a'), '/after');
    expect(res).toMatchObject({ status: 200, body: 'origin:/after', path: `a,${other}` });
    expect(node('a').peers.connectedPeers).not.toContain(leaving);
    expect(node('a').peers.knownPeers.has(leaving)).toBe(false);
    // close is idempotent and destroy after close is harmless
    await node(leaving).close();
    node(leaving).destroy();
    await expect(node(leaving).start()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });

  it('a node that comes back on a new port is dialed again and carries traffic', async () => {
    const gone = ['b', 'c'].find((id) => node(id).coordinator?.connected !== true) as string;
    const back = new RelayNode(nodeOptions(gone));
    nodes.set(gone, back);
    await back.start();
    await waitFor(
      () => [...nodes.values()].every((n) => n.peers.connectedPeers.length === 2),
      8000,
      'the full mesh again',
    );
    await waitFor(() => back.routes.pathsFor('files').length > 0, 5000, 'routes at the new node');
    const res = await get(entryPort(gone), '/back');
    expect(res).toMatchObject({ status: 200, body: 'origin:/back' });
  });

  it('keeps serving on the last routes while the coordinator is gone', async () => {
    await coordinator.close(500);
    await waitFor(() => node('a').coordinator?.connected === false, 5000, 'a to notice');
    const res = await get(entryPort('a'), '/orphan');
    expect(res).toMatchObject({ status: 200, body: 'origin:/orphan' });
  });

  it('registers again with a restarted coordinator without cutting its tunnels', async () => {
    const address = coordinator.address as string;
    const before = node('a').peers.sessionFor('b');
    coordinator = new Coordinator({
      config: coordinatorConfig(),
      listen: address,
      heartbeatIntervalMs: 200,
      reportIntervalMs: 200,
      recomputeIntervalMs: 50,
      warmupMs: 300,
    });
    await coordinator.start();
    await waitFor(
      () => [...nodes.values()].every((n) => n.coordinator?.connected),
      8000,
      'every node registered again',
    );
    await waitFor(() => coordinator.routes({ from: 'a' }).length > 0, 8000, 'routes again');
    expect(node('a').peers.sessionFor('b')).toBe(before);
    const res = await get(entryPort('a'), '/again');
    expect(res).toMatchObject({ status: 200, body: 'origin:/again' });
  });

  it('destroy leaves no sockets, servers or timers behind', async () => {
    for (const n of nodes.values()) n.destroy();
    coordinator.destroy();
    await origin.close();
    const left = await waitFor(
      () => excess().length === 0,
      5000,
      `handles back to [${baseline}] (left: [${excess()}])`,
    ).catch((err: Error) => err.message);
    expect(left).toBe(true);
  });
});
