import * as grpc from '@grpc/grpc-js';
import type { Coordinator } from '@relaymesh/coordinator';
import { createCoordinatorStub, type NodeMessage } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinatorClient, type RouteTableSnapshot } from '../../src/control/index.ts';
import { captureLogger, FixedMeasurements, startCoordinator, TOKEN, waitFor } from './helpers.ts';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function client(
  address: string,
  id: string,
  m: FixedMeasurements,
  token = TOKEN,
): CoordinatorClient {
  const c = new CoordinatorClient({
    address,
    token,
    node: { id, region: `region-${id}`, advertise: `ws://127.0.0.1:1/${id}`, version: 'test' },
    measurements: m,
    backoff: { initialMs: 50, maxMs: 300 },
  });
  cleanups.push(() => c.destroy());
  return c;
}

function origin(rttMs: number) {
  return [{ origin: 'tokyo-files', upstream: 'http://127.0.0.1:9', rttMs, reachable: true }];
}

/** a -> origin direct is slow; a -> b -> origin is fast; b is the exit near the origin. */
async function meshOfTwo(coord: Coordinator) {
  const ma = new FixedMeasurements();
  const mb = new FixedMeasurements();
  ma.setPeer('b', 20);
  ma.originList = origin(200);
  mb.setPeer('a', 20);
  mb.originList = origin(2);
  const a = client(coord.address!, 'a', ma);
  const b = client(coord.address!, 'b', mb);
  const tables: RouteTableSnapshot[] = [];
  a.on('routes', (t: RouteTableSnapshot) => tables.push(t));
  a.start();
  b.start();
  await waitFor(() => a.route('tokyo-files')?.path.length === 2, 8000, 'a to route via b');
  return { a, b, ma, mb, tables };
}

describe('coordinator + CoordinatorClient over real gRPC', () => {
  it('registers, streams reports and receives routes with increasing versions', async () => {
    const coord = await startCoordinator();
    cleanups.push(() => coord.destroy());
    const { a, ma, tables } = await meshOfTwo(coord);
    expect(a.route('tokyo-files')).toMatchObject({ from: 'a', path: ['a', 'b'], rttMs: 22 });
    expect(a.membership?.peers.map((p) => p.id)).toEqual(['b']);
    expect(a.membership?.origins[0]?.name).toBe('tokyo-files');
    // The link to b dies: a dead path switches at once, to the direct one.
    ma.setPeer('b', 20, false);
    await waitFor(() => a.route('tokyo-files')?.path.length === 1, 8000, 'failover to direct');
    const versions = tables.map((t) => t.version);
    expect(versions.length).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < versions.length; i++)
      expect(versions[i]!).toBeGreaterThan(versions[i - 1]!);
    // The query RPC sees the same thing.
    expect(coord.routes({ from: 'a' })[0]!.path).toEqual(['a']);
  });

  it('pushes a table only when paths change, and moves to a better path only when it lasts', async () => {
    const coord = await startCoordinator();
    cleanups.push(() => coord.destroy());
    const { a, ma, tables } = await meshOfTwo(coord);
    const settled = tables.length;
    const version = a.routes!.version;
    // Reports keep coming (every 100 ms) with a slightly different RTT: same paths, no push.
    ma.setPeer('b', 25);
    await new Promise((r) => setTimeout(r, 600));
    expect(tables.length).toBe(settled);
    expect(a.routes!.version).toBe(version);
    // The direct leg becomes much better than via b (10 ms vs ~27 ms). Hysteresis needs three
    // recomputations in a row; reports every 100 ms and recomputation every 50 ms get there.
    ma.originList = origin(10);
    await waitFor(() => a.route('tokyo-files')?.path.length === 1, 8000, 'switch to direct');
    expect(a.routes!.version).toBeGreaterThan(version);
    expect(a.route('tokyo-files')!.alternates[0]!.path).toEqual(['a', 'b']);
  });

  it('a listener that throws does not break the session', async () => {
    const coord = await startCoordinator();
    cleanups.push(() => coord.destroy());
    const ma = new FixedMeasurements();
    ma.originList = origin(5);
    const a = client(coord.address!, 'a', ma);
    let calls = 0;
    a.on('routes', () => {
      calls++;
      throw new Error('listener bug');
    });
    a.start();
    await waitFor(() => a.route('tokyo-files'), 8000, 'a route');
    ma.originList = [];
    await waitFor(() => a.routes?.routes.length === 0, 8000, 'the next table');
    expect(calls).toBe(2);
    expect(a.connected).toBe(true);
  });

  it('rejects a wrong or missing token with UNAUTHENTICATED, returns no data, logs a warning', async () => {
    const { logger, lines } = captureLogger();
    const coord = await startCoordinator({ logger });
    cleanups.push(() => coord.destroy());
    const bad = createCoordinatorStub(coord.address!, 'wrong-token-wrong-token');
    const none = new (grpc.makeGenericClientConstructor({}, 'x'))(
      coord.address!,
      grpc.credentials.createInsecure(),
    );
    cleanups.push(() => bad.close());
    cleanups.push(() => none.close());
    const unary = (fn: (cb: (err: grpc.ServiceError | null, res?: unknown) => void) => void) =>
      new Promise<{ err: grpc.ServiceError | null; res: unknown }>((resolve) =>
        fn((err, res) => resolve({ err, res })),
      );
    const reg = await unary((cb) =>
      bad.Register({ nodeId: 'x', region: 'r', advertise: 'ws://127.0.0.1:1' }, cb),
    );
    expect(reg.err?.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(reg.res).toBeUndefined();
    const list = await unary((cb) => bad.ListNodes({}, cb));
    expect(list.err?.code).toBe(grpc.status.UNAUTHENTICATED);
    const routes = await unary((cb) => bad.GetRoutes({}, cb));
    expect(routes.err?.code).toBe(grpc.status.UNAUTHENTICATED);
    // No metadata at all, through a raw call on the same method path.
    const raw = await unary((cb) =>
      none.makeUnaryRequest(
        '/relaymesh.v1.Coordinator/ListNodes',
        () => Buffer.alloc(0),
        (b: Buffer) => b,
        {},
        cb,
      ),
    );
    expect(raw.err?.code).toBe(grpc.status.UNAUTHENTICATED);
    // The session stream: no data, just the status.
    const stream = bad.Session();
    const data: unknown[] = [];
    stream.on('data', (d) => data.push(d));
    const err = await new Promise<grpc.ServiceError>((resolve) => stream.on('error', resolve));
    stream.write({ hello: { nodeId: 'x', sessionId: 'y' } } satisfies NodeMessage);
    expect(err.code).toBe(grpc.status.UNAUTHENTICATED);
    expect(data).toEqual([]);
    expect(
      lines.filter((l) => l.msg === 'rejected call with a wrong or missing cluster token').length,
    ).toBeGreaterThanOrEqual(5);
    expect(JSON.stringify(lines)).not.toContain('wrong-token-wrong-token');
  });

  it('a CoordinatorClient with the wrong token never gets routes and keeps retrying', async () => {
    const coord = await startCoordinator();
    cleanups.push(() => coord.destroy());
    const m = new FixedMeasurements();
    const c = client(coord.address!, 'a', m, 'not-the-right-token-at-all');
    const errors: string[] = [];
    c.on('disconnected', (e: { code: string }) => errors.push(e.code));
    c.start();
    await new Promise((r) => setTimeout(r, 400));
    expect(c.connected).toBe(false);
    expect(c.routes).toBeUndefined();
    expect(coord.routes()).toEqual([]);
  });

  it('removes a node whose heartbeats stop after the lease, and its routes with it', async () => {
    const coord = await startCoordinator({ leaseMs: 600 });
    cleanups.push(() => coord.destroy());
    const { a, b } = await meshOfTwo(coord);
    // Abrupt loss (no goodbye): only the lease can tell.
    b.destroy();
    // Not before the lease: a broken stream alone does not take the node down.
    await new Promise((r) => setTimeout(r, 150));
    expect(coord.routes({ from: 'a' })[0]!.path).toEqual(['a', 'b']);
    await waitFor(() => a.route('tokyo-files')?.path.length === 1, 5000, 'route without b');
    expect(a.route('tokyo-files')?.path).toEqual(['a']);
    expect(coord.routes().some((r) => r.from === 'b' || r.path.includes('b'))).toBe(false);
    await waitFor(() => a.membership?.peers.length === 0, 3000, 'membership without b');
  });

  it('a node that closes gracefully leaves at once', async () => {
    const coord = await startCoordinator({ leaseMs: 60_000 });
    cleanups.push(() => coord.destroy());
    const { a, b } = await meshOfTwo(coord);
    await b.close();
    await waitFor(() => a.route('tokyo-files')?.path.length === 1, 3000, 'route without b');
  });

  it('keeps the last routes while the coordinator is gone and re-registers when it returns', async () => {
    const coord = await startCoordinator();
    const address = coord.address!;
    const { a, tables } = await meshOfTwo(coord);
    const before = a.routes!;
    const disconnected = new Promise((r) => a.once('disconnected', r));
    await coord.close(1000);
    await disconnected;
    await new Promise((r) => setTimeout(r, 300));
    expect(a.connected).toBe(false);
    expect(a.routes).toBe(before);
    expect(a.route('tokyo-files')?.path).toEqual(['a', 'b']);

    const port = Number(address.split(':').at(-1));
    // Warm-up: the new coordinator hears every node before it sends any table.
    const again = await startCoordinator({ listen: `127.0.0.1:${port}`, warmupMs: 500 });
    cleanups.push(() => again.destroy());
    const t0 = Date.now();
    const seen = tables.length;
    await waitFor(
      () => a.connected && tables.length > seen,
      8000,
      're-registration and a new table',
    );
    expect(Date.now() - t0).toBeLessThan(8000);
    // Normally at once; a direct route first only if b came back after the warm-up.
    await waitFor(() => a.route('tokyo-files')?.path.length === 2, 8000, 'the relay path again');
    // Nothing but full tables after the restart: never one without the route.
    expect(tables.slice(seen).every((t) => t.routes.length === 1)).toBe(true);
  });
});
