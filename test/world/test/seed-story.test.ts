import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadWorld, startWorld, type WorldHandle } from '../src/index.ts';

// The story the seed world encodes, checked on the world itself: from Chengdu, Tokyo is
// slow direct and fast through Beijing. The Beijing relay here is a plain TCP pipe (the
// nginx of the story, not a relaymesh node), so the numbers are the world's, not the mesh's.
let handle: WorldHandle | undefined;
const relays: net.Server[] = [];
afterEach(async () => {
  for (const r of relays.splice(0)) r.close();
  await handle?.close();
  handle = undefined;
});

/** Downloads `path` of the files origin through `port` for up to `maxMs`; bytes per second. */
async function download(
  w: WorldHandle,
  port: number,
  headers: http.OutgoingHttpHeaders,
  maxMs: number,
): Promise<{ bytes: number; bytesPerSec: number }> {
  const socket = await w
    .dialerFor('cn-chengdu', { timeoutMs: 5000 })
    .dial({ host: '127.0.0.1', port });
  return new Promise((resolve, reject) => {
    const req = http.request({ createConnection: () => socket, path: '/file', headers }, (res) => {
      let bytes = 0;
      let firstAt = 0;
      const finish = () => {
        const secs = (performance.now() - firstAt) / 1000;
        socket.destroy();
        resolve({ bytes, bytesPerSec: bytes / secs });
      };
      const timer = setTimeout(finish, maxMs);
      res.on('data', (d: Buffer) => {
        if (firstAt === 0) firstAt = performance.now();
        bytes += d.length;
      });
      res.on('end', () => {
        clearTimeout(timer);
        finish();
      });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('seed world story', () => {
  it('Chengdu to Tokyo: about 30 KB/s direct, about 100 Mbit/s through Beijing', {
    retry: 1,
  }, async () => {
    handle = await startWorld(loadWorld('seed'), { fileSizeBytes: 16 * 1024 * 1024 });
    const w = handle;
    const files = w.originAddress('files');

    // A relay in Beijing: every connection is piped to the origin through Beijing's proxy.
    const relay = net.createServer((client) => {
      client.on('error', () => {});
      w.dialerFor('cn-north-1')
        .dial({ host: files.host, port: files.port })
        .then((upstream) => {
          upstream.on('error', () => client.destroy());
          client.on('close', () => upstream.destroy());
          client.pipe(upstream).pipe(client);
        })
        .catch(() => client.destroy());
    });
    relays.push(relay);
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const relayPort = (relay.address() as net.AddressInfo).port;
    await w.registerEndpoints([{ host: '127.0.0.1', port: relayPort, region: 'cn-north-1' }]);

    const direct = await download(w, files.port, { range: 'bytes=0-99999' }, 2000);
    const viaBeijing = await download(w, relayPort, {}, 10_000);
    console.log(
      `seed: direct ${(direct.bytesPerSec / 1000).toFixed(1)} KB/s, via Beijing ${((viaBeijing.bytesPerSec * 8) / 1e6).toFixed(1)} Mbit/s`,
    );
    // Mathis for 176 ms and 11 % loss: 30.5 KB/s.
    expect(direct.bytesPerSec).toBeGreaterThan(30_500 * 0.8);
    expect(direct.bytesPerSec).toBeLessThan(30_500 * 1.2);
    expect(viaBeijing.bytes).toBe(16 * 1024 * 1024);
    expect(viaBeijing.bytesPerSec * 8).toBeGreaterThan(0.9 * 100e6);
  });
});
