import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { loadWorld, startWorld, type WorldHandle } from '@relaymesh/world';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { alive, routePath, waitForRoutes } from './helpers.ts';
import { LINE4, startScenarioMesh, waitForPath } from './scenario-mesh.ts';

// Issue 5: a WebSocket echo through two hops (a-1 > b-1 > c-1 in the line4 world), with
// `ws` as the client. The echo server runs in this process and is declared as an origin
// of region origin-d.
let handle: WorldHandle | undefined;
let server: WebSocketServer | undefined;
afterEach(async () => {
  for (const c of server?.clients ?? []) c.terminate();
  await new Promise((r) => (server ? server.close(r) : r(undefined)));
  server = undefined;
  await handle?.close();
  handle = undefined;
});

function nextMessage(ws: WebSocket, ms: number): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no message within ${ms} ms`)), ms);
    ws.once('message', (data, binary) => {
      clearTimeout(timer);
      resolve({ data: data as Buffer, binary });
    });
  });
}

describe('WebSocket through the mesh', () => {
  it('echoes text and binary messages (up to 1 MiB) through two hops and closes cleanly', {
    timeout: 60_000,
  }, async () => {
    server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 2 * 1024 * 1024 });
    server.on('connection', (ws) => {
      ws.on('message', (data, binary) => ws.send(data, { binary }));
    });
    await once(server, 'listening');
    const wsPort = (server.address() as AddressInfo).port;
    handle = await startWorld(loadWorld(LINE4), { fileSizeBytes: 1024 * 1024 });
    await handle.registerEndpoints([{ host: '127.0.0.1', port: wsPort, region: 'origin-d' }]);
    const mesh = await startScenarioMesh(handle, [
      ...handle.clusterOrigins(),
      { name: 'ws-echo', hosts: ['ws.d.example'], upstreams: [`http://127.0.0.1:${wsPort}`] },
    ]);
    await waitForRoutes(mesh.coordinatorAddress, [{ from: 'a-1', origin: 'ws-echo' }], 30_000);
    // The first routes come from the first samples; the world makes a-1 > b-1 > c-1 clearly
    // best. (The ws server answers a plain GET with 426: the path header is still there.)
    await waitForPath(
      mesh.coordinatorAddress,
      mesh.node('a-1'),
      'ws-echo',
      'ws.d.example',
      ['a-1', 'b-1', 'c-1'],
      30_000,
    );
    expect(await routePath(mesh.coordinatorAddress, 'a-1', 'ws-echo')).toEqual([
      'a-1',
      'b-1',
      'c-1',
    ]);

    const ws = new WebSocket(`ws://127.0.0.1:${mesh.node('a-1').httpPort}/echo`, {
      headers: { host: 'ws.d.example' },
    });
    await Promise.race([
      once(ws, 'open'),
      new Promise((_, reject) => setTimeout(() => reject(new Error('no open in 10 s')), 10_000)),
    ]);
    for (let i = 0; i < 50; i++) {
      const text = `hello ${i} ${'x'.repeat(i * 37)}`;
      const reply = nextMessage(ws, 10_000);
      ws.send(text);
      const got = await reply;
      expect(got.binary).toBe(false);
      expect(got.data.toString()).toBe(text);
    }
    for (const size of [1, 16 * 1024, 256 * 1024, 1024 * 1024]) {
      const payload = Buffer.alloc(size, size % 251);
      payload.writeUInt8(7, 0);
      const reply = nextMessage(ws, 10_000);
      ws.send(payload, { binary: true });
      const got = await reply;
      expect(got.binary).toBe(true);
      expect(got.data.equals(payload)).toBe(true);
    }
    const closed = once(ws, 'close');
    ws.close(1000, 'done');
    const [code] = (await closed) as [number];
    expect(code).toBe(1000);

    const pids = handle.pids();
    await handle.close();
    expect(alive(pids)).toEqual([]);
  });
});
