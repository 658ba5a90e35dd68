import { createHash } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import { createRootLogger, type Logger } from '@relaymesh/shared';
import { afterEach, describe, expect, it } from 'vitest';
import { buildMesh, type Mesh, route, sha256, startOrigin, type TestOrigin } from './mesh.ts';

// Resume of a cut `206` (docs/data-plane.md 4.7): a client's single byte range whose
// response breaks mid-body is continued with `Range: bytes=<next>-<last>` + If-Range when
// the 206 has a strong validator; several ranges, or a weak ETag, give an aborted response.
// The origin itself cuts the first response (it destroys its socket), as the soak's cut
// `206`s broke between the exit and the origin.

const MiB = 1024 * 1024;
const FILE = Buffer.alloc(16 * MiB);
for (let i = 0; i < FILE.length; i += 4) FILE.writeUInt32LE((i * 2654435761) >>> 0, i);
const STRONG = '"file-v2"';
const WEAK = 'W/"file-v2"';
const DATE = new Date(Date.UTC(2026, 0, 1)).toUTCString();

interface Seen {
  url: string;
  range: string | undefined;
  ifRange: string | undefined;
}

/** The client's range: 8 MiB from 1 MiB on; the origin cuts the first answer after 2 MiB. */
const FIRST = 1 * MiB;
const LAST = 9 * MiB - 1;
const CUT_AFTER = 2 * MiB;

/**
 * File origin with byte ranges (one range: 206 + Content-Range; several: multipart/byteranges)
 * and one validator per path: `/strong` a strong ETag, `/weak` a weak ETag, `/dated`
 * Last-Modified only. If-Range that does not match gives the whole file (200). The first
 * response it sends is cut after {@link CUT_AFTER} body bytes: its socket is destroyed.
 */
function rangeOrigin(seen: Seen[]): Promise<TestOrigin> {
  let cut = false;
  return startOrigin((req, res) => {
    const url = req.url ?? '';
    const range = req.headers.range;
    const ifRange = req.headers['if-range'] as string | undefined;
    seen.push({ url, range, ifRange });
    const headers: http.OutgoingHttpHeaders = { 'accept-ranges': 'bytes' };
    if (url === '/strong') headers.etag = STRONG;
    else if (url === '/weak') headers.etag = WEAK;
    else headers['last-modified'] = DATE;
    const validator = (headers.etag ?? headers['last-modified']) as string;
    const ranges = [...(range ?? '').matchAll(/(\d+)-(\d+)/g)].map((m) => [
      Number(m[1]),
      Number(m[2]),
    ]) as [number, number][];
    const useRanges = ranges.length > 0 && (ifRange === undefined || ifRange === validator);
    let body: Buffer;
    if (!useRanges) {
      body = FILE;
      res.writeHead(200, { ...headers, 'content-length': body.length });
    } else if (ranges.length === 1) {
      const [a, b] = ranges[0] as [number, number];
      body = FILE.subarray(a, b + 1);
      headers['content-range'] = `bytes ${a}-${b}/${FILE.length}`;
      res.writeHead(206, { ...headers, 'content-length': body.length });
    } else {
      body = multipart(ranges);
      headers['content-type'] = `multipart/byteranges; boundary=${BOUNDARY}`;
      res.writeHead(206, { ...headers, 'content-length': body.length });
    }
    if (!cut) {
      cut = true;
      // Handed to the kernel first, then the connection dies mid-body.
      res.write(body.subarray(0, CUT_AFTER), () => res.socket?.destroy());
      return;
    }
    res.end(body);
  });
}

const BOUNDARY = 'relaymesh-test-boundary';

function multipart(ranges: [number, number][]): Buffer {
  const parts = ranges.flatMap(([a, b]) => [
    Buffer.from(`\r\n--${BOUNDARY}\r\nContent-Range: bytes ${a}-${b}/${FILE.length}\r\n\r\n`),
    FILE.subarray(a, b + 1),
  ]);
  return Buffer.concat([...parts, Buffer.from(`\r\n--${BOUNDARY}--\r\n`)]);
}

interface LogLine {
  msg: string;
  [field: string]: unknown;
}

/** A logger whose lines land in `lines` (parsed). */
function capture(lines: LogLine[]): Logger {
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(JSON.parse(chunk.toString('utf8')) as LogLine);
      cb();
    },
  });
  return createRootLogger({ name: 'test', level: 'info', destination });
}

let mesh: Mesh | undefined;
let origin: TestOrigin | undefined;
afterEach(async () => {
  await mesh?.close();
  await origin?.close();
  mesh = undefined;
  origin = undefined;
});

/** Entry en and two disjoint relays to the exit ex (`relayed`), or en as its own exit. */
async function meshFor(kind: 'relayed' | 'local', seen: Seen[], logs?: LogLine[]): Promise<Mesh> {
  origin = await rangeOrigin(seen);
  const origins = [{ name: 'files', hosts: ['files.example'], upstreams: [origin.url] }];
  const logger = logs ? capture(logs) : undefined;
  mesh =
    kind === 'local'
      ? await buildMesh({
          nodes: ['en'],
          links: [],
          origins,
          routes: [route('files', ['en'])],
          ...(logger ? { logger } : {}),
        })
      : await buildMesh({
          nodes: ['en', 'r1', 'r2', 'ex'],
          links: [
            ['en', 'r1'],
            ['en', 'r2'],
            ['r1', 'ex'],
            ['r2', 'ex'],
          ],
          origins,
          routes: [route('files', ['en', 'r1', 'ex'], ['en', 'r2', 'ex'])],
        });
  return mesh;
}

interface Download {
  status: number;
  contentRange: string | undefined;
  sha256: string;
  bytes: number;
  aborted: boolean;
}

function download(m: Mesh, path: string, range: string): Promise<Download> {
  return new Promise((resolve, reject) => {
    const headers = { host: 'files.example', range };
    const req = http.get(
      { port: m.node('en').port, host: '127.0.0.1', path, headers, agent: false },
      (res: IncomingMessage) => {
        const hash = createHash('sha256');
        let bytes = 0;
        const done = (aborted: boolean) =>
          resolve({
            status: res.statusCode ?? 0,
            contentRange: res.headers['content-range'],
            sha256: hash.digest('hex'),
            bytes,
            aborted,
          });
        res.on('data', (d: Buffer) => {
          hash.update(d);
          bytes += d.length;
        });
        res.once('end', () => done(false));
        res.once('error', () => {});
        res.once('close', () => {
          if (!res.complete) done(true);
        });
      },
    );
    req.setTimeout(15_000, () => req.destroy(new Error('download timed out')));
    req.on('error', reject);
  });
}

const SINGLE = `bytes=${FIRST}-${LAST}`;
const RANGE_SHA = sha256(FILE.subarray(FIRST, LAST + 1));

/** The resume request's first byte, checked to lie inside what was cut. */
function resumedFrom(s: Seen | undefined): number {
  const m = /^bytes=(\d+)-(\d+)$/.exec(s?.range ?? '');
  expect(m?.[2]).toBe(String(LAST));
  return Number(m?.[1]);
}

describe('resume of a cut 206 (a single byte range)', () => {
  it('over the other path: Range bytes=<next>-<last> + If-Range ETag, the range intact', async () => {
    const seen: Seen[] = [];
    const m = await meshFor('relayed', seen);
    const got = await download(m, '/strong', SINGLE);
    expect(got).toMatchObject({ status: 206, aborted: false, bytes: LAST - FIRST + 1 });
    expect(got.contentRange).toBe(`bytes ${FIRST}-${LAST}/${FILE.length}`);
    expect(got.sha256).toBe(RANGE_SHA);
    expect(seen).toHaveLength(2);
    expect(seen[1]?.ifRange).toBe(STRONG);
    const from = resumedFrom(seen[1]);
    expect(from).toBeGreaterThan(FIRST);
    expect(from).toBeLessThanOrEqual(FIRST + CUT_AFTER);
  });

  it('entry = exit (no tunnel), Last-Modified only: resumed on the same exit, If-Range date', async () => {
    const seen: Seen[] = [];
    const logs: LogLine[] = [];
    const m = await meshFor('local', seen, logs);
    const got = await download(m, '/dated', SINGLE);
    expect(got).toMatchObject({ status: 206, aborted: false, bytes: LAST - FIRST + 1 });
    expect(got.sha256).toBe(RANGE_SHA);
    expect(seen).toHaveLength(2);
    expect(seen[1]?.ifRange).toBe(DATE);
    expect(resumedFrom(seen[1])).toBeLessThanOrEqual(FIRST + CUT_AFTER);
    // The exit says the origin cut the body, and after how many bytes.
    const broken = logs.find((l) => l.msg === 'origin response body broken: stream reset');
    expect(broken).toMatchObject({ origin: 'files', status: 206 });
    expect(broken?.bytes).toBeLessThanOrEqual(CUT_AFTER);
    expect(logs.some((l) => l.msg === 'response body resumed with a range')).toBe(true);
  });

  it('a weak ETag is no validator for If-Range: aborted, not resumed', async () => {
    const seen: Seen[] = [];
    const m = await meshFor('local', seen);
    const got = await download(m, '/weak', SINGLE);
    expect(got.status).toBe(206);
    expect(got.aborted).toBe(true);
    expect(got.bytes).toBeLessThanOrEqual(CUT_AFTER);
    expect(seen).toHaveLength(1);
  });

  it('several ranges (multipart/byteranges): aborted, not resumed', async () => {
    const seen: Seen[] = [];
    const m = await meshFor('relayed', seen);
    const got = await download(m, '/strong', `bytes=0-99999,${FIRST}-${LAST}`);
    expect(got.status).toBe(206);
    expect(got.aborted).toBe(true);
    expect(got.bytes).toBeLessThanOrEqual(CUT_AFTER);
    expect(seen).toHaveLength(1);
  });
});
