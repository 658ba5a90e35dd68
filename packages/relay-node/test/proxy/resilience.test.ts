import { createHash } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { ForwardServer } from '../../src/proxy/tcp/forward-server.ts';
import type { OriginConfig } from '../../src/routing/origin-catalog.ts';
import {
  buildMesh,
  type Mesh,
  readUntil,
  route,
  sendToEntry,
  sha256,
  startEcho,
  startOrigin,
  type TestOrigin,
} from './mesh.ts';

// Request-level resilience at the entry (docs/data-plane.md 4.7): one retry of a replayable
// request on another path before the response head; Range resume of a GET broken mid-body;
// an aborted client connection, never a short body, when neither is possible.

const MiB = 1024 * 1024;
const FILE = Buffer.alloc(24 * MiB);
for (let i = 0; i < FILE.length; i += 4) FILE.writeUInt32LE((i * 2654435761) >>> 0, i);
const FILE_SHA = sha256(FILE);
const ETAG = '"file-v1"';

interface Seen {
  method: string;
  url: string;
  range: string | undefined;
  ifRange: string | undefined;
  bodyBytes: number;
}

/** File origin: Range (one range, If-Range by ETag) unless `/norange`; `/chunked` streams. */
function fileOrigin(seen: Seen[]): Promise<TestOrigin> {
  return startOrigin((req, res) => {
    let bodyBytes = 0;
    req.on('data', (c: Buffer) => {
      bodyBytes += c.length;
    });
    req.on('end', () => {
      const range = req.headers.range;
      const ifRange = req.headers['if-range'] as string | undefined;
      seen.push({ method: req.method ?? '', url: req.url ?? '', range, ifRange, bodyBytes });
      if (req.url?.startsWith('/echo')) return void res.end(`got ${bodyBytes}`);
      if (req.url?.startsWith('/hold')) {
        // Never answered: the test breaks the path while the origin holds the request.
        holdUntil?.();
        return;
      }
      const m = /^bytes=(\d+)-$/.exec(range ?? '');
      const rangeOk = !req.url?.startsWith('/norange') && m && (!ifRange || ifRange === ETAG);
      const from = rangeOk ? Number(m[1]) : 0;
      const headers: http.OutgoingHttpHeaders = { etag: ETAG };
      if (req.url?.startsWith('/chunked')) {
        res.writeHead(200, headers);
      } else if (rangeOk) {
        headers['content-range'] = `bytes ${from}-${FILE.length - 1}/${FILE.length}`;
        headers['content-length'] = FILE.length - from;
        res.writeHead(206, headers);
      } else {
        headers['content-length'] = FILE.length;
        res.writeHead(200, headers);
      }
      // 256 KiB writes with backpressure, so a broken path stops the origin mid-file.
      let at = from;
      const more = () => {
        while (at < FILE.length) {
          const chunk = FILE.subarray(at, at + 256 * 1024);
          at += chunk.length;
          if (!res.write(chunk)) return void res.once('drain', more);
        }
        res.end();
      };
      more();
    });
  });
}

let mesh: Mesh | undefined;
let origin: TestOrigin | undefined;
/** Called when the origin receives a `/hold` request (which it never answers). */
let holdUntil: (() => void) | undefined;
afterEach(async () => {
  holdUntil = undefined;
  await mesh?.close();
  await origin?.close();
  mesh = undefined;
  origin = undefined;
});

/** Entry en; two disjoint relays r1 (primary) and r2 (alternate) to the exit ex. */
async function diamondOf(origins: OriginConfig[]): Promise<Mesh> {
  mesh = await buildMesh({
    nodes: ['en', 'r1', 'r2', 'ex'],
    links: [
      ['en', 'r1'],
      ['en', 'r2'],
      ['r1', 'ex'],
      ['r2', 'ex'],
    ],
    origins,
    routes: origins.map((o) => route(o.name, ['en', 'r1', 'ex'], ['en', 'r2', 'ex'])),
  });
  return mesh;
}

/** The diamond with the file origin `files.example`. */
async function diamond(seen: Seen[]): Promise<Mesh> {
  origin = await fileOrigin(seen);
  return diamondOf([{ name: 'files', hosts: ['files.example'], upstreams: [origin.url] }]);
}

/** Relay `r` loses its session to the exit: it answers NO_ROUTE to new streams. */
function cutFromExit(m: Mesh, r: string): void {
  m.node(r).sessions.get('ex')?.destroy();
  m.node(r).sessions.delete('ex');
}

const send = sendToEntry;

describe('retry before the response head', () => {
  it('GET, PUT with a small body and POST with Idempotency-Key retry once on the other path', async () => {
    const seen: Seen[] = [];
    const m = await diamond(seen);
    // r1 loses its session to the exit: streams through r1 are reset (NO_ROUTE) before a head.
    cutFromExit(m, 'r1');

    const get = await send(m, 'GET', '/echo-get');
    expect(get).toMatchObject({ status: 200, path: 'en,r2,ex', body: 'got 0' });
    const put = await send(m, 'PUT', '/echo-put', { body: Buffer.alloc(1000, 1) });
    expect(put).toMatchObject({ status: 200, path: 'en,r2,ex', body: 'got 1000' });
    const post = await send(m, 'POST', '/echo-post', { body: Buffer.alloc(10, 1), key: 'k1' });
    expect(post).toMatchObject({ status: 200, path: 'en,r2,ex', body: 'got 10' });
    expect(seen.map((s) => s.url)).toEqual(['/echo-get', '/echo-put', '/echo-post']);
  });

  it('a plain POST whose path broke after the origin got it, and a body above 64 KiB, are not retried: 502', async () => {
    const seen: Seen[] = [];
    const m = await diamond(seen);
    // The origin holds /hold-post; once it has the request, r1 loses its session to the exit:
    // the stream breaks after the origin processed the POST, so a replay could repeat it.
    holdUntil = () => {
      cutFromExit(m, 'r1');
    };
    const post = await send(m, 'POST', '/hold-post', { body: Buffer.alloc(10, 1) });
    expect(post.status).toBe(502);
    expect(post.path).toBe('en,r1,ex');
    expect(seen.map((s) => s.url)).toEqual(['/hold-post']);
    // A streamed body (above 64 KiB) cannot be replayed even when a relay refused it unread.
    const big = await send(m, 'PUT', '/echo-big', { body: Buffer.alloc(65 * 1024, 1) });
    expect(big.status).toBe(502);
    expect(seen.map((s) => s.url)).toEqual(['/hold-post']);
  });

  it('any method is retried when a relay could not open its next hop (NO_ROUTE)', async () => {
    const seen: Seen[] = [];
    const m = await diamond(seen);
    // r1 has no session to the exit (e.g. it is restarting): r1 resets the stream with
    // NO_ROUTE before forwarding a byte, so even a plain POST is replayed over r2.
    cutFromExit(m, 'r1');
    const post = await send(m, 'POST', '/echo-no-route', { body: Buffer.alloc(10, 1) });
    expect(post).toMatchObject({ status: 200, path: 'en,r2,ex', body: 'got 10' });
    expect(seen.map((s) => s.url)).toEqual(['/echo-no-route']);
  });

  it('refusals are retried on up to two more paths, each path once', async () => {
    const seen: Seen[] = [];
    origin = await fileOrigin(seen);
    const relays = ['r1', 'r2', 'r3', 'r4'];
    mesh = await buildMesh({
      nodes: ['en', ...relays, 'ex'],
      links: relays.flatMap((r) => [['en', r] as [string, string], [r, 'ex'] as [string, string]]),
      origins: [{ name: 'files', hosts: ['files.example'], upstreams: [origin.url] }],
      routes: [route('files', ['en', 'r1', 'ex'], ...relays.slice(1).map((r) => ['en', r, 'ex']))],
    });
    const m = mesh;
    // r1 and r2 cannot reach the exit (NO_ROUTE): the third try, over r3, gets through.
    cutFromExit(m, 'r1');
    cutFromExit(m, 'r2');
    const post = await send(m, 'POST', '/echo-third', { body: Buffer.alloc(10, 1) });
    expect(post).toMatchObject({ status: 200, path: 'en,r3,ex', body: 'got 10' });
    // With r3 cut too, three tries are all there is: r4 is never reached, the client gets 502.
    cutFromExit(m, 'r3');
    const failed = await send(m, 'POST', '/echo-fourth', { body: Buffer.alloc(10, 1) });
    expect(failed.status).toBe(502);
    expect(seen.map((x) => x.url)).toEqual(['/echo-third']);
  });

  it('any method is retried when a hop refused the stream unprocessed (REFUSED_STREAM)', async () => {
    const seen: Seen[] = [];
    const m = await diamond(seen);
    // A closing stream server refuses new streams before reading their open header.
    m.node('r1').server.close();
    const post = await send(m, 'POST', '/echo-refused', { body: Buffer.alloc(10, 1) });
    expect(post).toMatchObject({ status: 200, path: 'en,r2,ex', body: 'got 10' });
    expect(seen.map((s) => s.url)).toEqual(['/echo-refused']);
  });

  it('a first hop that sent GO_AWAY gets no new streams: they go to the alternate at once', async () => {
    const m = await diamond([]);
    m.node('r1').sessions.get('en')?.goAway();
    await new Promise((r) => setTimeout(r, 50));
    const got = await send(m, 'GET', '/echo-after-goaway');
    expect(got).toMatchObject({ status: 200, path: 'en,r2,ex' });
    expect(m.node('en').routes.pathsFor('files')[0]).toEqual(['en', 'r2', 'ex']);
  });
});

interface Download {
  status: number;
  sha256: string;
  bytes: number;
  aborted: boolean;
  path: string | undefined;
}

/** Downloads `path`, calling `onBytes` as bytes arrive; `aborted` when the response broke. */
function download(m: Mesh, path: string, onBytes: (n: number) => void): Promise<Download> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { port: m.node('en').port, host: '127.0.0.1', path, headers: { host: 'files.example' } },
      (res: IncomingMessage) => {
        const hash = createHash('sha256');
        let bytes = 0;
        const done = (aborted: boolean) =>
          resolve({
            status: res.statusCode ?? 0,
            sha256: hash.digest('hex'),
            bytes,
            aborted,
            path: res.headers['x-relaymesh-path'] as string | undefined,
          });
        res.on('data', (d: Buffer) => {
          hash.update(d);
          bytes += d.length;
          onBytes(bytes);
        });
        res.once('end', () => done(false));
        res.once('error', () => {});
        res.once('aborted', () => {});
        res.once('close', () => {
          if (!res.complete) done(true);
        });
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('download timed out')));
    req.on('error', reject);
  });
}

/** Breaks the primary path (r1 loses the exit) once the client has `after` bytes. */
function breakAfter(m: Mesh, after: number): (n: number) => void {
  let broken = false;
  return (n) => {
    if (broken || n < after) return;
    broken = true;
    cutFromExit(m, 'r1');
  };
}

describe('Range resume of a GET broken mid-body', () => {
  it('resumes over the other path with If-Range: one intact body (sha256 equal)', async () => {
    const seen: Seen[] = [];
    const m = await diamond(seen);
    const got = await download(m, '/file', breakAfter(m, 2 * MiB));
    expect(got).toMatchObject({ status: 200, aborted: false, bytes: FILE.length });
    expect(got.sha256).toBe(FILE_SHA);
    expect(got.path).toBe('en,r1,ex');
    const resumed = seen.filter((s) => s.range !== undefined);
    expect(resumed).toHaveLength(1);
    expect(resumed[0]?.ifRange).toBe(ETAG);
    const from = Number(/bytes=(\d+)-/.exec(resumed[0]?.range ?? '')?.[1]);
    expect(from).toBeGreaterThanOrEqual(2 * MiB);
    expect(from).toBeLessThan(FILE.length);
  });

  it('an origin that ignores Range: the client sees an aborted response, not a short one', async () => {
    const m = await diamond([]);
    const got = await download(m, '/norange', breakAfter(m, 2 * MiB));
    expect(got.status).toBe(200);
    expect(got.aborted).toBe(true);
    expect(got.bytes).toBeLessThan(FILE.length);
  });

  it('a chunked response (no length) broken mid-body is aborted: no last chunk', async () => {
    const m = await diamond([]);
    const got = await download(m, '/chunked', breakAfter(m, 2 * MiB));
    expect(got.status).toBe(200);
    expect(got.aborted).toBe(true);
    expect(got.bytes).toBeLessThan(FILE.length);
  });
});

describe('raw streams retry before the exit answers', () => {
  it('CONNECT, a TCP forward and a WebSocket upgrade go over r2 when relay r1 lost the exit', async () => {
    const { server: echo, port: echoPort } = await startEcho();
    origin = await startOrigin((_req, res) => res.end('plain'));
    const wss = new WebSocketServer({ server: origin.server });
    wss.on('connection', (ws) => ws.on('message', (m) => ws.send(`echo:${m.toString()}`)));
    const m = await diamondOf([
      { name: 'files', hosts: ['files.example'], upstreams: [origin.url] },
      { name: 'echo', hosts: ['echo.example'], upstreams: [`tcp://127.0.0.1:${echoPort}`] },
    ]);
    const forward = new ForwardServer({
      rule: { host: '127.0.0.1', port: 0, origin: 'echo' },
      catalog: m.catalog,
      connector: m.node('en').connector,
    });
    const forwardPort = (await forward.listen()).port;
    try {
      // r1 has no session to the exit: it answers NO_ROUTE before forwarding a byte.
      cutFromExit(m, 'r1');

      // CONNECT echo.example:<port>: 200, then bytes end to end.
      const c = net.connect({ port: m.node('en').port, host: '127.0.0.1' });
      c.write(
        `CONNECT echo.example:${echoPort} HTTP/1.1\r\nHost: echo.example:${echoPort}\r\n\r\n`,
      );
      const connectAnswer = await readUntil(c, '\r\n\r\n');
      expect(connectAnswer.split('\r\n')[0]).toBe('HTTP/1.1 200 Connection Established');
      c.write('through connect');
      expect(await readUntil(c, 'connect')).toBe('through connect');
      c.destroy();

      // TCP forward: the client's socket is held until the exit answered over r2.
      const f = net.connect({ port: forwardPort, host: '127.0.0.1' });
      f.write('through forward');
      expect(await readUntil(f, 'forward')).toBe('through forward');
      f.destroy();

      // WebSocket upgrade.
      const ws = new WebSocket(`${m.node('en').url.replace('http', 'ws')}/chat`, {
        headers: { host: 'files.example' },
      });
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      const reply = new Promise<string>((r) => ws.once('message', (d) => r(d.toString())));
      ws.send('hi');
      expect(await reply).toBe('echo:hi');
      ws.terminate();
    } finally {
      forward.destroy();
      for (const cl of wss.clients) cl.terminate();
      wss.close();
      echo.close();
    }
  });
});
