import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { DirectDialer } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { DataPlane, OriginTable, RouteTable } from '../../src/index.ts';
import {
  entrySideSockets,
  hasSs,
  peerlessEntryPlane,
  startOrigin,
  type TestOrigin,
} from './mesh.ts';

// The entry's send timeout (docs/reliability.md, "Slow clients"): a client that stops
// reading a response is disconnected once its socket has stayed full for sendTimeoutMs,
// which frees its socket buffers and its origin connection; with the timeout off it
// keeps the connection, and a client that reads gets the whole body either way.

// More than every socket buffer on the way can hold, so the origin is still sending
// when the client stalls; produced only as fast as it drains.
const TOTAL = 64 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 0x62);

let origin: TestOrigin | undefined;
let plane: DataPlane | undefined;
let originClosed: number;

afterEach(async () => {
  await plane?.destroy();
  await origin?.close();
  plane = undefined;
  origin = undefined;
});

async function entry(sendTimeoutMs: number): Promise<number> {
  originClosed = 0;
  origin = await startOrigin((req, res) => {
    res.writeHead(200, { 'content-length': TOTAL });
    let left = TOTAL;
    const more = () => {
      for (; left > 0; left -= CHUNK.length) {
        if (!res.write(CHUNK)) {
          left -= CHUNK.length;
          return void res.once('drain', more);
        }
      }
      res.end();
    };
    more();
    res.on('error', () => {});
    res.once('close', () => {
      if (!res.writableFinished) originClosed += 1;
    });
    req.resume();
  });
  const routes = new RouteTable({ nodeId: 'en' });
  routes.update([{ from: 'en', origin: 'o', path: ['en'], rttMs: 1, alternates: [] }]);
  plane = new DataPlane({
    nodeId: 'en',
    catalog: new OriginTable([{ name: 'o', hosts: ['o.test'], upstreams: [origin.url] }]),
    routes,
    opener: {
      open() {
        throw new Error('one-node path: no peers');
      },
    },
    dialer: new DirectDialer(),
    httpListen: { host: '127.0.0.1', port: 0 },
    entry: { sendTimeoutMs },
    exit: { healthChecks: false },
  });
  const { http: address } = await plane.start();
  return (address as AddressInfo).port;
}

/**
 * Sends a GET, reads the first bytes, stops reading for `pauseMs`, then reads to the end
 * (a paused socket does not see the entry's close until it reads again).
 */
function stallingClient(port: number, pauseMs: number): Promise<number> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let bytes = 0;
    socket.once('connect', () =>
      socket.write('GET /file HTTP/1.1\r\nHost: o.test\r\nConnection: close\r\n\r\n'),
    );
    socket.once('data', () => {
      socket.pause();
      setTimeout(() => socket.resume(), pauseMs);
    });
    socket.on('data', (d: Buffer) => {
      bytes += d.length;
    });
    socket.on('error', () => {});
    socket.once('close', () => resolve(bytes));
    socket.once('end', () => socket.end());
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('entry send timeout', () => {
  it.skipIf(!hasSs())(
    'resets a client that accepts no bytes for sendTimeoutMs, freeing its socket, and ends its origin request',
    { timeout: 10_000 },
    async () => {
      const port = await entry(300);
      const client = net.connect(port, '127.0.0.1');
      client.on('error', () => {});
      client.write('GET /file HTTP/1.1\r\nHost: o.test\r\n\r\n');
      client.pause(); // never reads
      for (let i = 0; i < 200 && originClosed === 0; i++) await sleep(20);
      expect(originClosed).toBe(1);
      await sleep(50);
      // Reset (RST), not closed with FIN: a FIN-WAIT-1 orphan would keep megabytes of unsent
      // bytes in the kernel until the client read them.
      expect(entrySideSockets(port)).toEqual([]);
      client.destroy();
    },
  );

  it('a client that pauses less than sendTimeoutMs keeps its connection and gets the whole body', {
    timeout: 10_000,
  }, async () => {
    const port = await entry(2000);
    expect(await stallingClient(port, 300)).toBeGreaterThan(TOTAL);
  });

  it('with the timeout off, a client that pauses longer keeps its connection and gets the whole body', {
    timeout: 10_000,
  }, async () => {
    const port = await entry(0);
    // Head and body: more than the body alone.
    expect(await stallingClient(port, 600)).toBeGreaterThan(TOTAL);
  });

  it('a client that reads gets the whole body with the timeout on', {
    timeout: 10_000,
  }, async () => {
    const port = await entry(300);
    const res = await new Promise<{ status: number; bytes: number }>((resolve, reject) => {
      http
        .get({ port, host: '127.0.0.1', path: '/file', headers: { host: 'o.test' } }, (r) => {
          let bytes = 0;
          r.on('data', (d: Buffer) => {
            bytes += d.length;
          });
          r.once('end', () => resolve({ status: r.statusCode ?? 0, bytes }));
          r.once('error', reject);
        })
        .once('error', reject);
    });
    expect(res).toEqual({ status: 200, bytes: TOTAL });
  });

  it('refuses a send timeout that is not an integer >= 0', () => {
    for (const sendTimeoutMs of [-1, 1.5, Number.NaN]) {
      expect(() => peerlessEntryPlane({ sendTimeoutMs })).toThrow(
        expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
      );
    }
  });
});
