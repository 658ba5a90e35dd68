import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { createRootLogger, DirectDialer, type Logger, silentLogger } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { DataPlane, OriginTable, RouteTable } from '../../src/index.ts';
import { dropUnreadOnClose } from '../../src/mux/drop-unread.ts';
import type { EntryConnector } from '../../src/proxy/entry-connector.ts';
import {
  FIRST_SLICE_BYTES,
  type ResumePlan,
  relayBody,
  SLICED_PREFIX_BYTES,
} from '../../src/proxy/http/body-relay.ts';
import { StallWatch } from '../../src/proxy/http/stall-watch.ts';
import type { HopStream } from '../../src/proxy/types.ts';
import {
  entrySideSockets,
  hasSs,
  patternBody,
  peerlessEntryPlane,
  readRawBody,
  readRawResponse,
  startOrigin,
  type TestOrigin,
  writeAll,
} from './mesh.ts';

// Parking (docs/reliability.md, "Slow clients"): a response whose client accepts no bytes
// for parkAfterMs lets go of its origin request (and of the socket buffers on that side),
// keeps the client connection, and fetches the rest with a Range request (If-Range) when
// the client reads again. The client gets one intact body; if the origin no longer has the
// same bytes, an aborted response, never a spliced one.

// More than every socket buffer on the way can hold (loopback buffers auto-tune to tens of
// MiB), so the origin is still sending when the client stalls.
const TOTAL = 128 * 1024 * 1024;
const { bytes: body, sha: expectedSha } = patternBody('park', TOTAL);

interface Seen {
  range: string | undefined;
  ifRange: string | undefined;
  /** The origin's response closed before it finished (the entry let go of it). */
  cut: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The resume plan of a 200 to GET /f of `size` bytes with a strong ETag: parkable. */
function parkablePlan(size: number): ResumePlan {
  return {
    origin: { name: 'o', hosts: ['o.test'], upstreams: [] },
    head: { method: 'GET', target: '/f', headers: [], bodyLength: 0 },
    total: size,
    offset: 0,
    size,
    closedRange: false,
    validator: '"v1"',
  };
}

/**
 * Listens with `server` on a Unix socket and sends it GET /f from a client that does not
 * read (paused). A Unix socket's buffers (~200 KiB) fill well within the sliced prefix,
 * like a remote client's that does not read; loopback TCP takes megabytes first.
 */
async function pausedClientOverUnixSocket(server: http.Server): Promise<net.Socket> {
  const path = join(mkdtempSync(join(tmpdir(), 'relaymesh-park-')), 'entry.sock');
  await new Promise<void>((r) => server.listen(path, r));
  const client = net.connect(path);
  client.on('error', () => {});
  client.write('GET /f HTTP/1.1\r\nHost: o.test\r\n\r\n');
  client.pause();
  return client;
}

/** A full garbage collection, without starting the test process with --expose-gc. */
function collectGarbage(): void {
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

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
  o: {
    parkAfterMs: number;
    sendTimeoutMs?: number;
    maxHeldStalls?: number;
    parkedPerSourceWarn?: number;
    logger?: Logger;
  },
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
    res.once('close', () => {
      s.cut = !res.writableFinished;
    });
    req.resume();
    writeAll(res, body(from, TOTAL));
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
      ...(o.parkedPerSourceWarn === undefined
        ? {}
        : { parkedPerSourceWarn: o.parkedPerSourceWarn }),
    },
    exit: { healthChecks: false },
    ...(o.logger ? { logger: o.logger } : {}),
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
    const r = await readRawBody(client, TOTAL);
    client.destroy();
    expect(r.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(r).toMatchObject({ bytes: TOTAL, sha: expectedSha });
    expect(seen).toHaveLength(2);
    expect(seen[1]?.range).toMatch(/^bytes=[1-9]\d*-$/);
  });

  it('counts parked responses per client address and names an address holding many', {
    timeout: 20_000,
  }, async () => {
    const lines: Array<Record<string, unknown>> = [];
    const logger = createRootLogger({
      name: 'test',
      destination: new Writable({
        write(chunk, _enc, cb) {
          for (const l of String(chunk).split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l));
          cb();
        },
      }),
    });
    const { port } = await entry(() => '"v1"', {
      parkAfterMs: 5000,
      maxHeldStalls: 0,
      parkedPerSourceWarn: 3,
      logger,
    });
    const e = plane?.entry;
    if (!e) throw new Error('no entry');
    // Four clients from 127.0.0.2 and one from 127.0.0.3 ask and do not read.
    const open = (localAddress: string) => {
      const c = net.connect({ port, host: '127.0.0.1', localAddress });
      c.on('error', () => {});
      c.write('GET /file HTTP/1.1\r\nHost: o.test\r\n\r\n');
      c.pause();
      return c;
    };
    const many = Array.from({ length: 4 }, () => open('127.0.0.2'));
    const one = open('127.0.0.3');
    for (let i = 0; i < 250 && e.stalls.parkedNow < 5; i++) await sleep(20);
    expect(e.stalls).toMatchObject({ parkedNow: 5, parkedSources: 2 });
    expect(e.parkedBySource()).toEqual([
      { source: '127.0.0.2', parked: 4 },
      { source: '127.0.0.3', parked: 1 },
    ]);
    const warned = () =>
      lines.filter((l) => l.msg === 'one client address holds many parked responses');
    expect(warned().map((l) => [l.remote, l.parked])).toEqual([['127.0.0.2', 3]]);
    // The four go: their parked responses end with their connections.
    for (const c of many) c.destroy();
    for (let i = 0; i < 250 && e.stalls.parkedNow > 1; i++) await sleep(20);
    expect(e.parkedBySource()).toEqual([{ source: '127.0.0.3', parked: 1 }]);
    // The last one reads again: resumed, it is no longer parked, and its body is whole.
    const r = await readRawBody(one, TOTAL);
    one.destroy();
    expect(r.head).toMatch(/^HTTP\/1\.1 200 /);
    expect(r).toMatchObject({ bytes: TOTAL, sha: expectedSha });
    expect(e.stalls).toMatchObject({ parkedNow: 0, parkedSources: 0 });
    expect(e.parkedBySource()).toEqual([]);
    expect(warned()).toHaveLength(1);
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
    // would ask the origin for an empty range and abort a complete response. The first
    // SLICED_PREFIX_BYTES go in 16 KiB pieces the client reads; then it stops reading and
    // the last chunk, past the sliced prefix, is handed to the socket whole.
    const prefix = SLICED_PREFIX_BYTES;
    const size = prefix + 8 * 1024 * 1024;
    const opened: unknown[] = [];
    const connector = {
      open(o: unknown) {
        opened.push(o);
        throw new Error('no path in this test');
      },
      pathBroke() {},
    } as unknown as EntryConnector;
    let sendLast: (() => void) | undefined;
    const server = http.createServer((req, res) => {
      const stream = new PassThrough() as unknown as HopStream;
      res.writeHead(200, { 'content-length': size });
      const plan = parkablePlan(size);
      const stallWatch = new StallWatch({ parkAfterMs: 100 });
      const ctx = { connector, log: silentLogger(), stallWatch, sendTimeoutMs: 0 };
      void relayBody(ctx, res, { stream, path: ['en'], id: 'r1' }, size, () => plan);
      for (let i = 0; i < prefix; i += FIRST_SLICE_BYTES)
        stream.write(Buffer.alloc(FIRST_SLICE_BYTES, 1));
      sendLast = () => {
        stream.write(Buffer.alloc(size - prefix, 2));
        setTimeout(() => stream.end(), 40);
      };
      req.resume();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      const got = await new Promise<{ status: number; bytes: number; complete: boolean }>(
        (resolve, reject) => {
          http
            .get({ port, host: '127.0.0.1', path: '/f', agent: false }, (res) => {
              let bytes = 0;
              res.on('data', (d: Buffer) => {
                bytes += d.length;
                if (bytes < prefix || !sendLast) return;
                // The prefix is in: stall well past parkAfterMs, then read everything.
                res.pause();
                sendLast();
                sendLast = undefined;
                setTimeout(() => res.resume(), 600);
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

  it('a parked client that never read keeps none of the upstream chunks, only slices of them', {
    timeout: 10_000,
  }, async () => {
    // A socket keeps the buffer of a write it could not finish until the client reads. Were
    // the upstream chunk the client socket refused handed over whole, a client that never
    // reads would keep it at the entry, parked or not, for as long as it stays connected
    // (~0.7 GB at 10,000 slow clients). Written in copied slices, every chunk is let go.
    const CHUNK = 1024 * 1024; // refused mid-chunk: the Unix socket takes ~200 KiB
    const size = 64 * 1024 * 1024;
    const chunks: Array<WeakRef<Buffer>> = [];
    let sent = 0;
    let upstream: Readable | undefined;
    let res: http.ServerResponse | undefined;
    const connector = {
      open() {
        throw new Error('no path in this test');
      },
      pathBroke() {},
    } as unknown as EntryConnector;
    const server = http.createServer((req, r) => {
      res = r;
      upstream = new Readable({
        highWaterMark: CHUNK,
        read() {
          const c = Buffer.alloc(CHUNK, 3);
          chunks.push(new WeakRef(c));
          sent += CHUNK;
          this.push(c);
        },
      });
      dropUnreadOnClose(upstream); // as every hop stream does (drop-unread.ts)
      r.writeHead(200, { 'content-length': size });
      const plan = parkablePlan(size);
      const ctx = {
        connector,
        log: silentLogger(),
        // Budget 0: crowded from the first stall, as under a flood of clients that do not read.
        stallWatch: new StallWatch({ parkAfterMs: 100, maxHeld: 0 }),
        sendTimeoutMs: 0,
      };
      const stream = upstream as unknown as HopStream;
      void relayBody(ctx, r, { stream, path: ['en'], id: 'r1' }, size, () => plan);
      req.resume();
    });
    const client = await pausedClientOverUnixSocket(server); // never reads
    try {
      for (let i = 0; i < 100 && !upstream?.destroyed; i++) await sleep(20);
      // Parked: the upstream stream was let go of; the client socket still holds bytes.
      expect(upstream?.destroyed).toBe(true);
      expect(sent).toBeLessThan(size);
      const pending = res?.socket?.writableLength ?? 0;
      expect(pending).toBeGreaterThan(0);
      expect(pending).toBeLessThanOrEqual(FIRST_SLICE_BYTES + 1024); // one slice (+ the head)
      upstream = undefined;
      await sleep(10); // WeakRef targets stay alive until the current job ends
      collectGarbage();
      expect(chunks.filter((c) => c.deref() !== undefined)).toHaveLength(0);
    } finally {
      client.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    }
  });

  for (const parkAfterMs of [0, 100]) {
    it(`a client that stalls on a slice smaller than the socket's buffer gets the whole body when it reads (${parkAfterMs ? 'parked' : 'not parked'})`, {
      timeout: 10_000,
    }, async () => {
      // 4000-byte chunks: each is written as one slice that does not fill the socket's
      // 16 KiB buffer, so the write that the kernel refuses says "not full" and no 'drain'
      // follows; the pump (and a parked response) must wake on the slice being written.
      const size = 4 * 1024 * 1024;
      const byteAt = (i: number) => i % 251;
      const source = (from: number) => {
        let at = from;
        return new Readable({
          read() {
            const n = Math.min(4000, size - at);
            if (n === 0) return void this.push(null);
            const c = Buffer.allocUnsafe(n);
            for (let k = 0; k < n; k++) c[k] = byteAt(at + k);
            at += n;
            this.push(c);
          },
        });
      };
      const ranges: string[] = [];
      const plan = parkablePlan(size);
      // The resume's stream: the rest of the body from the Range asked for.
      const connector = {
        open(o: { head: { headers: Array<[string, string]> } }) {
          const range = o.head.headers.find(([n]) => n === 'Range')?.[1] ?? '';
          ranges.push(range);
          const from = Number(/^bytes=(\d+)-$/.exec(range)?.[1]);
          const stream = source(from) as unknown as HopStream;
          stream.end = (() => stream) as never; // the request has no body
          (stream as unknown as { from: number }).from = from;
          return { stream, path: ['en'], id: 'r1' };
        },
        async readResponseHead(stream: { from: number }) {
          const headers = [['content-range', `bytes ${stream.from}-${size - 1}/${size}`]];
          return { v: 1, status: 206, headers };
        },
        pathBroke() {},
      } as unknown as EntryConnector;
      const server = http.createServer((req, res) => {
        res.writeHead(200, { 'content-length': size });
        const ctx = {
          connector,
          log: silentLogger(),
          stallWatch: new StallWatch({ parkAfterMs, maxHeld: 0 }), // crowded: sliced
          sendTimeoutMs: 0,
        };
        const stream = source(0) as unknown as HopStream;
        void relayBody(ctx, res, { stream, path: ['en'], id: 'r1' }, size, () => plan);
        req.resume();
      });
      const client = await pausedClientOverUnixSocket(server);
      try {
        await sleep(400); // stalled well past parkAfterMs
        let at = 0;
        let wrong = -1;
        await readRawResponse(client, size, (d) => {
          for (let k = 0; k < d.length && wrong < 0; k++)
            if (d[k] !== byteAt(at + k)) wrong = at + k;
          at += d.length;
        });
        expect({ at, wrong }).toEqual({ at: size, wrong: -1 });
        if (parkAfterMs) expect(ranges[0]).toMatch(/^bytes=[1-9]\d*-$/);
        else expect(ranges).toEqual([]);
      } finally {
        client.destroy();
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      }
    });
  }

  it('refuses a park delay that is not an integer >= 0', () => {
    for (const parkAfterMs of [-1, 1.5, Number.NaN]) {
      expect(() => peerlessEntryPlane({ parkAfterMs })).toThrow(
        expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
      );
    }
    for (const parkedPerSourceWarn of [-1, 2.5]) {
      expect(() => peerlessEntryPlane({ parkedPerSourceWarn })).toThrow(
        expect.objectContaining({ code: 'ERR_CONFIG_INVALID' }),
      );
    }
  });
});
