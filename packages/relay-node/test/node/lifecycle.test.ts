import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { Coordinator, parseClusterConfig } from '@relaymesh/coordinator';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RelayNode, type RelayNodeOptions } from '../../src/node/relay-node.ts';
import { blockingDialer, get, ORIGIN_HOST, startOrigin, TOKEN, waitFor } from './helpers.ts';

// Two in-process nodes: `a` cannot reach the origins itself, so everything it carries
// goes a → b → origin. A TCP echo origin is reached through a `--forward` at a.
let coordinator: Coordinator;
let origin: Awaited<ReturnType<typeof startOrigin>>;
let echo: net.Server;
let a: RelayNode;
let b: RelayNode;

function options(id: string, extra: Partial<RelayNodeOptions>): RelayNodeOptions {
  return {
    id,
    region: `region-${id}`,
    coordinator: coordinator.address as string,
    token: TOKEN,
    tunnelListen: { host: '127.0.0.1', port: 0 },
    httpListen: { host: '127.0.0.1', port: 0 },
    debugHeaders: true,
    timers: { tunnelBackoff: { initialMs: 50, maxMs: 500 } },
    ...extra,
  };
}

beforeAll(async () => {
  origin = await startOrigin();
  echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
  const echoPort = (echo.address() as AddressInfo).port;
  coordinator = new Coordinator({
    config: parseClusterConfig(`
token: ${TOKEN}
origins:
  - name: files
    hosts: [${ORIGIN_HOST}]
    upstreams: ["http://127.0.0.1:${origin.port}"]
  - name: echo
    hosts: [echo.example.test]
    upstreams: ["tcp://127.0.0.1:${echoPort}"]
`),
    listen: '127.0.0.1:0',
    heartbeatIntervalMs: 200,
    reportIntervalMs: 200,
    recomputeIntervalMs: 50,
    warmupMs: 0,
  });
  await coordinator.start();
  // a's firewall refuses both origins; only b reaches them.
  const blocked = blockingDialer(origin.port, echoPort);
  a = new RelayNode(
    options('a', { dialer: blocked, forwards: [{ host: '127.0.0.1', port: 0, origin: 'echo' }] }),
  );
  b = new RelayNode(options('b', { closeGraceMs: 200 }));
  await Promise.all([a.start(), b.start()]);
  await waitFor(
    () => a.routes.pathsFor('files').length > 0 && a.routes.pathsFor('echo').length > 0,
    8000,
    'routes at a',
  );
}, 15_000);

afterAll(async () => {
  a?.destroy();
  b?.destroy();
  coordinator?.destroy();
  echo?.close();
  await origin?.close();
});

describe('RelayNode lifecycle', () => {
  it('carries a --forward TCP connection to a tcp origin across the mesh', async () => {
    expect(a.routes.pathsFor('echo')[0]).toEqual(['a', 'b']);
    const port = a.addresses?.forwards[0]?.port as number;
    const socket = net.connect(port, '127.0.0.1');
    socket.setEncoding('utf8');
    let got = '';
    socket.on('data', (d) => {
      got += d;
    });
    socket.write('ping through the mesh');
    await waitFor(() => got === 'ping through the mesh', 5000, 'the echo');
    socket.destroy();
  });

  it('close() is bounded by the grace: a request slower than it is cut', async () => {
    expect(a.routes.pathsFor('files')[0]).toEqual(['a', 'b']);
    // /slow takes 400 ms at the origin; b's grace is 200 ms.
    const inFlight = get(a.addresses?.http?.port as number, '/slow').catch((e: Error) => e);
    await new Promise((r) => setTimeout(r, 100));
    const started = Date.now();
    await b.close();
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(150);
    expect(took).toBeLessThan(1500);
    const res = await inFlight;
    // Cut mid-request: the entry answers an error itself, or the connection drops.
    if (res instanceof Error) expect(res.message).toBeTruthy();
    else expect(res.status).toBeGreaterThanOrEqual(500);
  });
});
