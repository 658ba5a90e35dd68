import type * as grpc from '@grpc/grpc-js';
import {
  type CoordinatorClient,
  createCoordinatorStub,
  type ListNodesResponse__Output,
  parseClusterConfig,
} from '@relaymesh/shared';
import { FakeClock } from '@relaymesh/shared/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { Coordinator } from '../src/index.ts';

// The recomputation after reports is a throttle: a report that comes a period (1 s) or more
// after the last recomputation is acted on at once, an earlier one when the period is up.
// It used to run a period after the report that found no recomputation pending, which
// added up to a period to each of the hysteresis' rounds (docs/reliability.md: a settled
// route's rounds came 1-2 s apart). Real gRPC on port 0, the coordinator on a FakeClock.

const TOKEN = 'throttle-test-token-0123456789';
const config = parseClusterConfig(
  `token: ${TOKEN}\norigins:\n  - {name: o, hosts: [o.test], upstreams: ["tcp://127.0.0.1:9"]}\n`,
);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

const turn = () => new Promise<void>((r) => setImmediate(r));

/** Polls `check` on event-loop turns (gRPC delivery) without moving the fake clock. */
async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 5000;
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    if (await check()) return;
    await turn();
  }
  throw new Error(`never: ${what}`);
}

async function session(stub: CoordinatorClient, nodeId: string) {
  const sessionId = await new Promise<string>((resolve, reject) =>
    stub.Register({ nodeId, region: 'r', advertise: `ws://127.0.0.1:1/${nodeId}` }, (err, res) =>
      err || !res ? reject(err) : resolve(res.sessionId),
    ),
  );
  const call = stub.Session();
  call.on('data', () => {});
  call.on('error', () => {});
  cleanups.push(() => call.cancel());
  call.write({ hello: { nodeId, sessionId } });
  return {
    report(peers: object[], originRttMs: number) {
      const origins = [
        { origin: 'o', upstream: 'tcp://127.0.0.1:9', rttMs: originRttMs, reachable: true },
      ];
      call.write({ report: { peers, origins } });
    },
  };
}

describe('route recomputation after reports', () => {
  it('runs at once a period after the last one, and at most once a period', async () => {
    const clock = new FakeClock(1_000_000);
    const coord = new Coordinator({ config, listen: '127.0.0.1:0', clock, warmupMs: 0 });
    await coord.start();
    cleanups.push(() => coord.destroy());
    const stub = createCoordinatorStub(coord.address!, TOKEN);
    cleanups.push(() => stub.close());
    const links = async () => {
      const res = await new Promise<ListNodesResponse__Output>((resolve, reject) =>
        stub.ListNodes({}, (err: grpc.ServiceError | null, r?: ListNodesResponse__Output) =>
          err || !r ? reject(err) : resolve(r),
        ),
      );
      return res.links.map((l) => `${l.from}>${l.to}`).join(' ');
    };
    const pathOfA = () => coord.routes({ from: 'a' })[0]?.path.join(',');
    const viaB = { peerId: 'b', srttMs: 10, baseRttMs: 10, jitterMs: 0, reachable: true };

    const a = await session(stub, 'a');
    const b = await session(stub, 'b');
    // First reports: routes at once (a reaches o through b: 10 + 1 + 5 against 100).
    b.report([], 5);
    a.report([viaB], 100);
    await until('a routes through b', () => {
      clock.advance(0);
      return pathOfA() === 'a,b';
    });

    // 1.5 s later the link a->b is gone: recomputed at once, the clock not moved.
    clock.advance(1500);
    a.report([{ ...viaB, reachable: false }], 100);
    await until('the report is in', async () => (await links()) === '');
    clock.advance(0);
    expect(pathOfA()).toBe('a');

    // 200 ms later it is back: the recomputation waits for the end of the period.
    clock.advance(200);
    a.report([viaB], 100);
    await until('the report is in', async () => (await links()) === 'a>b');
    clock.advance(799);
    expect(pathOfA()).toBe('a');
    clock.advance(1);
    expect(pathOfA()).toBe('a,b');
  });
});
