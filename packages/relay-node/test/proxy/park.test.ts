import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import { DirectDialer, silentLogger } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { DataPlane, OriginTable, RouteTable } from '../../src/index.ts';
import type { EntryConnector } from '../../src/proxy/entry-connector.ts';
import { relayBody } from '../../src/proxy/http/body-relay.ts';
import { StallWatch } from '../../src/proxy/http/stall-watch.ts';
import type { HopStream } from '../../src/proxy/types.ts';
import {
  entrySideSockets,
  hasSs,
  peerlessEntryPlane,
  startOrigin,
  type TestOrigin,
} from './mesh.ts';

// Parking (docs/reliability.md, "Slow clients"): a response whose client accepts no bytes
// for parkAfterMs lets go of its origin request (and of the socket buffers on that side),
// keeps the client connection, and fetches the rest with a Range request (If-Range) when
// the client reads again. The client gets one intact body; if the origin no longer has the
// same bytes, an aborted response, never a spliced one.

// More than every socket buffer on the way can hold (loopback buffers auto-tune to tens of
// MiB), so the origin is still sending when the client stalls.
const TOTAL = 128 * 1024 * 1024;
const BLOCK = 64 * 1024;
const PATTERN = createHash('sha512')
  .update('park')
  .digest()
  .toString('hex')
  .repeat(BLOCK / 128);

/** Bytes [from, to) of the body: 64 KiB blocks of a pattern, each starting with its index. */
function* body(from: number, to: number): Generator<Buffer> {
  for (let k = Math.floor(from / BLOCK); k * BLOCK < to; k++) {
    const block = Buffer.from(PATTERN, 'latin1');
    block.writeUInt32BE(k, 0);
    const start = Math.max(from - k * BLOCK, 0);
    yield block.subarray(start, Math.min(BLOCK, to - k * BLOCK));
  }
}

const expectedSha = (() => {
  const h = createHash('sha256');
  for (const b of body(0, TOTAL)) h.update(b);
  return h.digest('hex');
})();

interface Seen {
  range: string | undefined;
  ifRange: string | undefined;
  /** The origin's response closed before it finished (the entry let go of it). */
  cut: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let origin: TestOrigin | undefined;
let plane: DataPlane | undefined;

afterEach(async () => {
  await plane?.destroy();
  await origin?.close();
  plane = undefined;
  origin = undefined;
});

/**
 * An origin serving TOTAL bytes with Range and If-Range; `etag()` is its current ETag
 * (undefined: none, and no Last-Modified either, so nothing can be resumed safely).
 */
async function entry(
  etag: () => string | undefined,
  o: { parkAfterMs: number; sendTimeoutMs?: number; maxHeldStalls?: number },
): Promise<{ port: number; seen: Seen[] }> {
  const seen: Seen[] = [];
  origin = await startOrigin((req, res) => {
    const ifRange = req.headers['if-range'];
    const s: Seen = {
      range: req.headers.range,
      ifRange: typeof ifRange === 'string' ? ifRange : undefined,
      cut: false,
    };
    seen.push(s);
    const tag = etag();
    const m = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    const ranged = m !== null && (s.ifRange === undefined || s.ifRange === tag);
    const from = ranged ? Number(m?.[1]) : 0;
    const headers: http.OutgoingHttpHeaders = { 'content-length': TOTAL - from };
    if (tag) headers.etag = tag;
    if (ranged) headers['content-range'] = `bytes ${from}-${TOTAL - 1}/${TOTAL}`;
    res.writeHead(ranged ? 206 : 200, headers);
    const chunks = body(from, TOTAL);
    const more = () => {
      for (let c = chunks.next(); !c.done; c = chunks.next()) {
        if (!res.write(c.value)) return void res.once('drain', more);
      }
      res.end();
    };
    res.on('error', () => {});
    res.once('close', () => {
      s.cut = !res.writableFinished;
    });
    req.resume();
    more();
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
    entry: {
      parkAfterMs: o.parkAfterMs,
      sendTimeoutMs: o.sendTimeoutMs ?? 0,
      ...(o.maxHeldStalls === undefined ? {} : { maxHeldStalls: o.maxHeldStalls }),
    },
    exit: { healthChecks: false },
  });
  const { http: address } = await plane.start();
  return { port: (address as AddressInfo).port, seen };
}

interface Download {
  status: number;
  bytes: number;
  sha: string;
  complete: boolean;
  /** What the origin had seen when the client started reading again. */
  seenAtResume: Seen[];
}

/** GET /file; stops reading after the first bytes for `pauseMs`, then reads to the end. */
function stallingDownload(port: number, pauseMs: number, seen: Seen[]): Promise<Download> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { port, host: '127.0.0.1', path: '/file', headers: { host: 'o.test' }, agent: false },
      (res) => {
        const h = createHash('sha256');
        let bytes = 0;
        let seenAtResume: Seen[] = [];
        res.once('data', () => {
          res.pause();
          setTimeout(() => {
            seenAtResume = seen.map((s) => ({ ...s }));
            res.resume();
          }, pauseMs);
        });
        res.on('data', (d: Buffer) => {
          bytes += d.length;
          h.update(d);
        });
        const done = () =>
          resolve({
            status: res.statusCode ?? 0,
            bytes,
            sha: h.digest('hex'),
            complete: res.complete,
            seenAtResume,
          });
        res.once('end', done);
        res.once('error', done);
      },
    );
    req.once('error', reject);
  });
}

describe('entry parking of stalled responses', () => {
  it('lets go of the origin request while the client stalls and resumes it with If-Range: one intact body', {
    timeout: 15_000,
  }, async () => {
    const { port, seen } = await entry(() => '"v1"', { parkAfterMs: 200 });
    const d = await stallingDownload(port, 1000, seen);
    expect(d).toMatchObject({ status: 200, bytes: TOTAL, sha: expectedSha, complete: true });
    // Before the client read again, the first origin request had been cut (parked).
    expect(d.seenAtResume).toEqual([{ range: undefined, ifRange: undefined, cut: true }]);
    expect(seen).toHaveLength(2);
    expect(seen[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
    expect(seen[1]?.ifRange).toBe('"v1"');
  });

  it('over maxHeldStalls, parks a stalled response long before parkAfterMs; the body stays intact', {
    timeout: 15_000,
  }, async () => {
    // Budget 0: every stall is over it. parkAfterMs is 5 s; the early park comes after
    // 50 ms (500 ms if the client socket drained once while the kernel grew its buffers),
    // so the origin request is cut while the client has not read a byte.
    const { port, seen } = await entry(() => '"v1"', { parkAfterMs: 5000, maxHeldStalls: 0 });
    const client = net.connect(port, '127.0.0.1');
    client.on('error', () => {});
    client.write('GET /file HTTP/1.1\r\nHost: o.test\r\n\r\n');
    client.pause();
    for (let i = 0; i < 150 && !seen[0]?.cut; i++) await sleep(20);
    expect(seen).toEqual([{ range: undefined, ifRange: undefined, cut: true }]);
    // Now it reads: the rest comes with a Range request, one intact body.
    const h = createHash('sha256');
    let head = Buffer.alloc(0);
    let bodyBytes = 0;
    await new Promise<void>((resolve, reject) => {
      client.on('data', (d: Buffer) => {
        if (head !== undefined && bodyBytes === 0) {
          const all = Buffer.concat([head, d]);
          const end = all.indexOf('\r\n\r\n');
          if (end < 0) {
            head = all;
            return;
          }
          head = all.subarray(0, end);
          d = all.subarray(end + 4);
        }
        bodyBytes += d.length;
        h.update(d);
        if (bodyBytes >= TOTAL) resolve();
      });
      client.once('close', () => reject(new Error(`closed after ${bodyBytes} body bytes`)));
      client.resume();
    });
    client.destroy();
    expect(head.toString('latin1')).toMatch(/^HTTP\/1\.1 200 /);
    expect(bodyBytes).toBe(TOTAL);
    expect(h.digest('hex')).toBe(expectedSha);
    expect(seen).toHaveLength(2);
    expect(seen[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('does not park a response it could not resume safely (no validator): the origin request is held', {
    timeout: 15_000,
  }, async () => {
    const { port, seen } = await entry(() => undefined, { parkAfterMs: 200 });
    const d = await stallingDownload(port, 1000, seen);
    expect(d).toMatchObject({ status: 200, bytes: TOTAL, sha: expectedSha, complete: true });
    expect(d.seenAtResume).toEqual([{ range: undefined, ifRange: undefined, cut: false }]);
    expect(seen).toHaveLength(1);
  });

  it('aborts the client response when the origin changed while parked (never splices two versions)', {
    timeout: 15_000,
  }, async () => {
    let version = 1;
    const { port, seen } = await entry(() => `"v${version}"`, { parkAfterMs: 200 });
    const download = stallingDownload(port, 1000, seen);
    for (let i = 0; i < 100 && !seen[0]?.cut; i++) await sleep(20);
    version = 2;
    const d = await download;
    expect(d.status).toBe(200);
    expect(d.complete).toBe(false);
    expect(d.bytes).toBeLessThan(TOTAL);
    expect(seen[1]?.ifRange).toBe('"v1"');
  });

  it.skipIf(!hasSs())(
    'a parked client that never reads again is still reset at the send timeout',
    { timeout: 15_000 },
    async () => {
      const { port, seen } = await entry(() => '"v1"', { parkAfterMs: 100, sendTimeoutMs: 800 });
      const client = net.connect(port, '127.0.0.1');
      client.on('error', () => {});
      client.write('GET /file HTTP/1.1\r\nHost: o.test\r\n\r\n');
      client.pause(); // never reads
      for (let i = 0; i < 100 && !seen[0]?.cut; i++) await sleep(20);
      const parkedAt = performance.now();
      expect(seen[0]?.cut).toBe(true);
      // Parked: the client connection is still there.
      expect(entrySideSockets(port)).toHaveLength(1);
      for (let i = 0; i < 150 && entrySideSockets(port).length > 0; i++) await sleep(20);
      // Reset (no entry-side socket left, not even an orphan) before the origin was asked again.
      expect(entrySideSockets(port)).toEqual([]);
      expect(performance.now() - parkedAt).toBeLessThan(2000);
      expect(seen).toHaveLength(1);
      client.destroy();
    },
  );

  it('does not park a response whose every byte is already with the client socket (nothing to resume)', {
    timeout: 10_000,
  }, async () => {
    // The body's last chunk fills the client socket and the stream's end comes after it:
    // the stream stays paused (its end unread) while nothing is left to fetch. Parking it
    // would ask the origin for an empty range and abort a complete response.
    const size = 8 * 1024 * 1024 + 1024;
    const opened: unknown[] = [];
    const connector = {
      open(o: unknown) {
        opened.push(o);
        throw new Error('no path in this test');
      },
      pathBroke() {},
    } as unknown as EntryConnector;
    const server = http.createServer((req, res) => {
      const stream = new PassThrough() as unknown as HopStream;
      res.writeHead(200, { 'content-length': size });
      const head = { method: 'GET', target: '/f', headers: [], bodyLength: 0 };
      const plan = {
        origin: { name: 'o', hosts: ['o.test'], upstreams: [] },
        head,
        total: size,
        offset: 0,
        size,
        closedRange: false,
        validator: '"v1"',
      };
      const stallWatch = new StallWatch({ parkAfterMs: 100 });
      const ctx = { connector, log: silentLogger(), stallWatch, sendTimeoutMs: 0 };
      void relayBody(ctx, res, { stream, path: ['en'], id: 'r1' }, size, plan as never);
      stream.write(Buffer.alloc(1024, 1));
      setTimeout(() => stream.write(Buffer.alloc(size - 1024, 2)), 20);
      setTimeout(() => stream.end(), 60);
      req.resume();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const got = await new Promise<{ status: number; bytes: number; complete: boolean }>(
        (resolve, reject) => {
          http
            .get({ port, host: '127.0.0.1', path: '/f', agent: false }, (res) => {
              res.pause(); // stalls well past parkAfterMs, then reads everything
              setTimeout(() => res.resume(), 600);
              let bytes = 0;
              res.on('data', (d: Buffer) => {
                bytes += d.length;
              });
              const done = () =>
                resolve({ status: res.statusCode ?? 0, bytes, complete: res.complete });
              res.once('end', done);
              res.once('error', done);
            })
            .once('error', reject);
        },
      );
      expect(got).toEqual({ status: 200, bytes: size, complete: true });
      expect(opened).toEqual([]);
    } finally {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  it('refuses a park delay that is not an integer >= 0', () => {
    for (const parkAfterMs of [-1, 1.5, Number.NaN]) {
      expect(() => peerlessEntryPlane({ parkAfterMs })).toThrow(
        expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
      );
    }
  });
});
