import * as grpc from '@grpc/grpc-js';
import {
  type CoordinatorClient,
  type CoordinatorMessage__Output,
  createCoordinatorStub,
  ERROR_CODE_METADATA_KEY,
  fromGrpcError,
  parseClusterConfig,
} from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../src/index.ts';

const TOKEN = 'service-test-token-0123456789';
const config = parseClusterConfig(
  `token: ${TOKEN}\norigins:\n  - {name: o, hosts: [o.test], upstreams: ["tcp://127.0.0.1:9"]}\n`,
);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function setup(): Promise<{ coord: Coordinator; stub: CoordinatorClient }> {
  const coord = new Coordinator({ config, listen: '127.0.0.1:0', warmupMs: 0 });
  await coord.start();
  cleanups.push(() => coord.destroy());
  const stub = createCoordinatorStub(coord.address!, TOKEN);
  cleanups.push(() => stub.close());
  return { coord, stub };
}

function register(stub: CoordinatorClient, req: Record<string, string>) {
  return new Promise<{ err: grpc.ServiceError | null; sessionId?: string }>((resolve) =>
    stub.Register(req, (err, res) =>
      resolve({ err, ...(res ? { sessionId: res.sessionId } : {}) }),
    ),
  );
}

function sessionError(stub: CoordinatorClient, first: object): Promise<grpc.ServiceError> {
  const call = stub.Session();
  const got: CoordinatorMessage__Output[] = [];
  call.on('data', (m: CoordinatorMessage__Output) => got.push(m));
  call.write(first);
  return new Promise((resolve) =>
    call.on('error', (err: grpc.ServiceError) => {
      expect(got).toEqual([]);
      resolve(err);
    }),
  );
}

describe('coordinator gRPC service', () => {
  it('rejects malformed registrations with INVALID_ARGUMENT naming the field', async () => {
    const { stub } = await setup();
    const bad = await register(stub, { nodeId: 'a', region: 'r', advertise: 'http://127.0.0.1:1' });
    expect(bad.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(bad.err?.details).toContain('advertise');
    expect(bad.err?.metadata.get(ERROR_CODE_METADATA_KEY)).toEqual(['ERR_COORD_BAD_REQUEST']);
    expect(fromGrpcError(bad.err).code).toBe('ERR_COORD_BAD_REQUEST');
    const noId = await register(stub, { nodeId: '', region: 'r', advertise: 'ws://127.0.0.1:1' });
    expect(noId.err?.code).toBe(grpc.status.INVALID_ARGUMENT);
    const ok = await register(stub, { nodeId: 'a', region: 'r', advertise: 'ws://127.0.0.1:1' });
    expect(ok.err).toBeNull();
    expect(ok.sessionId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('a session must start with the hello of a live registration', async () => {
    const { stub } = await setup();
    const { sessionId } = await register(stub, {
      nodeId: 'a',
      region: 'r',
      advertise: 'ws://127.0.0.1:1',
    });
    const noHello = await sessionError(stub, { heartbeat: { seq: 1 } });
    expect(noHello.code).toBe(grpc.status.INVALID_ARGUMENT);
    const stale = await sessionError(stub, { hello: { nodeId: 'a', sessionId: 'not-it' } });
    expect(stale.code).toBe(grpc.status.FAILED_PRECONDITION);
    expect(fromGrpcError(stale).code).toBe('ERR_COORD_SESSION_UNKNOWN');
    // Registering again supersedes the first session id.
    await register(stub, { nodeId: 'a', region: 'r', advertise: 'ws://127.0.0.1:1' });
    const superseded = await sessionError(stub, { hello: { nodeId: 'a', sessionId } });
    expect(superseded.code).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it('GetRoutes names unknown nodes and origins; ListNodes shows registered nodes', async () => {
    const { stub } = await setup();
    await register(stub, {
      nodeId: 'a',
      region: 'r',
      advertise: 'ws://127.0.0.1:1',
      httpAdvertise: 'http://127.0.0.1:2',
    });
    const call = <T>(fn: (cb: (err: grpc.ServiceError | null, res?: T) => void) => void) =>
      new Promise<{ err: grpc.ServiceError | null; res?: T }>((resolve) =>
        fn((err, res) => resolve({ err, ...(res === undefined ? {} : { res }) })),
      );
    const node = await call((cb) => stub.GetRoutes({ from: 'ghost' }, cb));
    expect(node.err?.code).toBe(grpc.status.NOT_FOUND);
    expect(node.err?.details).toBe('unknown node "ghost"');
    const origin = await call((cb) => stub.GetRoutes({ origin: 'nope' }, cb));
    expect(fromGrpcError(origin.err).code).toBe('ERR_COORD_UNKNOWN_ORIGIN');
    const list = await call<{ nodes: unknown[] }>((cb) => stub.ListNodes({}, cb));
    expect(list.res?.nodes).toEqual([
      {
        id: 'a',
        region: 'r',
        advertise: 'ws://127.0.0.1:1',
        httpAdvertise: 'http://127.0.0.1:2',
        status: 'up',
        version: '',
      },
    ]);
  });

  it('close() is graceful and idempotent; start after close fails with ERR_CLOSED', async () => {
    const { coord } = await setup();
    await Promise.all([coord.close(), coord.close()]);
    coord.destroy();
    await expect(coord.start()).rejects.toMatchObject({ code: 'ERR_CLOSED' });
  });
});
