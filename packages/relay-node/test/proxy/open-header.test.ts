import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  DATA_PLANE_VERSION,
  decodeOpenHeader,
  decodeResponseHead,
  encodeOpenHeader,
  encodePrefixed,
  encodeResponseHead,
  MAX_OPEN_HEADER_BYTES,
  MAX_PROBE_BYTES,
  type OpenHeader,
  probeOpenHeader,
  type ResponseHead,
  readPrefixed,
} from '../../src/proxy/open-header.ts';

const base: OpenHeader = {
  v: DATA_PLANE_VERSION,
  kind: 'http',
  origin: 'files',
  hops: ['rl', 'ex'],
  path: ['en'],
  id: 'abc',
  head: { method: 'POST', target: '/up?x=1', headers: [['Host', 'files.example']], bodyLength: -1 },
};

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

function messageOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  return '';
}

// ---- hand-made bytes, written from docs/data-plane.md §2 and not from the encoder ----
const u8 = (n: number) => Buffer.from([n]);
const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const f64 = (n: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(n);
  return b;
};
const s8 = (s: string) => Buffer.concat([u8(Buffer.byteLength(s)), Buffer.from(s)]);
const s16 = (s: string) => Buffer.concat([u16(Buffer.byteLength(s)), Buffer.from(s)]);

interface Hand {
  version?: number;
  kind?: number;
  flags?: number;
  origin?: string;
  id?: string;
  hops?: string[];
  path?: string[];
  port?: number;
  bytes?: number;
  method?: string;
  target?: string;
  bodyLength?: number;
  headers?: Array<[string, string]>;
  tail?: Buffer;
}

/** An OPEN HEADER body (no length prefix): http with a head unless told otherwise. */
function openBytes(o: Hand = {}): Buffer {
  const hops = o.hops ?? ['ex'];
  const path = o.path ?? ['en'];
  const flags = o.flags ?? (o.port !== undefined ? 1 : 0) | 2 | (o.bytes !== undefined ? 4 : 0);
  const parts: Buffer[] = [
    u8(o.version ?? 2),
    u8(o.kind ?? 1),
    u8(flags),
    u8(hops.length),
    u8(path.length),
    s8(o.origin ?? 'files'),
    s8(o.id ?? 'r1'),
    ...hops.map(s8),
    ...path.map(s8),
  ];
  if (flags & 1) parts.push(u16(o.port ?? 443));
  if (flags & 4) parts.push(u32(o.bytes ?? 1024));
  if (flags & 2) {
    const headers = o.headers ?? [['Host', 'files.example']];
    parts.push(s8(o.method ?? 'GET'), s16(o.target ?? '/'), f64(o.bodyLength ?? 0));
    parts.push(u16(headers.length), ...headers.flatMap(([n, v]) => [s16(n), s16(v)]));
  }
  if (o.tail) parts.push(o.tail);
  return Buffer.concat(parts);
}

/** A probe's OPEN HEADER body. */
const probeBytes = (o: Hand = {}) =>
  openBytes({ kind: 4, origin: '', hops: [], path: ['a'], flags: 4, ...o });

/** A RESPONSE HEAD body. */
function responseBytes(o: {
  version?: number;
  flags?: number;
  status?: number;
  headers?: Array<[string, string]>;
  code?: string;
  message?: string;
  tail?: Buffer;
}): Buffer {
  const headers = o.headers ?? [];
  const flags = o.flags ?? (o.code !== undefined ? 1 : 0);
  const parts: Buffer[] = [
    u8(o.version ?? 2),
    u8(flags),
    u16(o.status ?? 200),
    u16(headers.length),
  ];
  parts.push(...headers.flatMap(([n, v]) => [s16(n), s16(v)]));
  if (flags & 1) parts.push(s8(o.code ?? 'ERR_X'), s16(o.message ?? 'm'));
  if (o.tail) parts.push(o.tail);
  return Buffer.concat(parts);
}

describe('open header (binary, version 2)', () => {
  it('encodes the documented layout byte for byte', () => {
    const tcp: OpenHeader = {
      v: DATA_PLANE_VERSION,
      kind: 'tcp',
      origin: 'ssh',
      hops: ['rl'],
      path: ['en'],
      id: 'x1',
      port: 22,
    };
    const expected = openBytes({
      kind: 2,
      flags: 1,
      origin: 'ssh',
      id: 'x1',
      hops: ['rl'],
      path: ['en'],
      port: 22,
    });
    const wire = encodeOpenHeader(tcp);
    expect(wire.readUInt32BE(0)).toBe(expected.length);
    expect(wire.subarray(4).toString('hex')).toBe(expected.toString('hex'));
    const head = encodeResponseHead({ v: DATA_PLANE_VERSION, status: 404, headers: [['a', 'b']] });
    expect(head.subarray(4).toString('hex')).toBe(
      responseBytes({ status: 404, headers: [['a', 'b']] }).toString('hex'),
    );
  });

  it('round-trips every field of every kind', () => {
    const obsText = 'caf\xe9 \xff\ttab';
    const cases: OpenHeader[] = [
      base,
      {
        ...base,
        kind: 'upgrade',
        port: 8080,
        head: {
          method: 'GET',
          target: '/ws?a=%20b',
          headers: [
            ['Upgrade', 'websocket'],
            ['X-Obs', obsText],
            ['X-Empty', ''],
          ],
          bodyLength: 2 ** 53 - 1,
        },
      },
      {
        v: DATA_PLANE_VERSION,
        kind: 'tcp',
        origin: 'ssh',
        hops: [],
        path: ['en'],
        id: 'x',
        port: 443,
      },
      { ...base, hops: ['a.b_c-D'], path: ['x', 'y', 'z'], id: 'é'.repeat(64) },
      probeOpenHeader('p1', 'a', MAX_PROBE_BYTES),
    ];
    for (const h of cases) {
      const bytes = encodePrefixed(h);
      expect(bytes.readUInt32BE(0)).toBe(bytes.length - 4);
      expect(decodeOpenHeader(bytes.subarray(4))).toEqual(h);
    }
  });

  it('round-trips response heads, with and without an error', () => {
    const ok: ResponseHead = {
      v: DATA_PLANE_VERSION,
      status: 206,
      headers: [
        ['content-range', 'bytes 0-1/2'],
        ['x-obs', '\x80\xfe'],
        ['set-cookie', 'a=1'],
        ['set-cookie', 'b=2'],
      ],
    };
    const failed: ResponseHead = {
      v: DATA_PLANE_VERSION,
      status: 504,
      headers: [],
      error: { code: 'ERR_PROXY_UPSTREAM_TIMEOUT', message: 'origin files timed out: ✗' },
    };
    for (const h of [ok, failed])
      expect(decodeResponseHead(encodePrefixed(h).subarray(4))).toEqual(h);
    // Over-long error fields are cut (code 64, message 512 characters), not refused.
    const long = encodeResponseHead({
      ...failed,
      error: { code: 'E'.repeat(300), message: 'm'.repeat(70_000) },
    });
    expect(decodeResponseHead(long.subarray(4)).error).toEqual({
      code: 'E'.repeat(64),
      message: 'm'.repeat(512),
    });
  });

  it('accepts the hand-made bytes of a well-formed header (the helper is right)', () => {
    expect(decodeOpenHeader(openBytes()).head?.headers).toEqual([['Host', 'files.example']]);
    expect(decodeOpenHeader(probeBytes()).bytes).toBe(1024);
    expect(decodeResponseHead(responseBytes({ code: 'ERR_X' })).error?.code).toBe('ERR_X');
  });

  it.each([
    ['an empty message', Buffer.alloc(0), /truncated in version/],
    [
      'a version 1 (json) message',
      Buffer.from(JSON.stringify({ v: 1 })),
      /json message of data plane version 1/,
    ],
    ['version 3', openBytes({ version: 3 }), /unsupported data plane version 3/],
    ['kind 0', openBytes({ kind: 0 }), /kind is not known/],
    ['kind 5', openBytes({ kind: 5 }), /kind is not known/],
    ['an unknown flag', openBytes({ flags: 2 | 8 }), /unknown flags 10/],
    ['6 hops', openBytes({ hops: ['a', 'b', 'c', 'd', 'e', 'f'] }), /hops is not a short list/],
    [
      '6 path entries',
      openBytes({ path: ['a', 'b', 'c', 'd', 'e', 'f'] }),
      /path is not a short list/,
    ],
    ['a bad node id', openBytes({ hops: ['a b'] }), /hops holds a bad node id/],
    ['a bad origin name', openBytes({ origin: 'fi/les' }), /origin is not a name/],
    ['an empty id', openBytes({ id: '' }), /id is bad/],
    ['a 65-character id', openBytes({ id: 'i'.repeat(65) }), /id is bad/],
    ['an empty path', openBytes({ path: [] }), /path is empty/],
    ['port 0', openBytes({ kind: 2, flags: 1, port: 0 }), /port is not a tcp port/],
    ['bytes on an http stream', openBytes({ bytes: 5 }), /bytes is only for probes/],
    ['http without a head', openBytes({ flags: 0 }), /http stream has no request head/],
    [
      'upgrade without a head',
      openBytes({ kind: 3, flags: 0 }),
      /upgrade stream has no request head/,
    ],
    ['tcp with a head', openBytes({ kind: 2 }), /tcp stream carries a request head/],
    ['a method that is not a token', openBytes({ method: 'GE T' }), /head.method is not a token/],
    ['an absolute target', openBytes({ target: 'http://x/' }), /origin-form target/],
    ['a target with a space', openBytes({ target: '/a b' }), /origin-form target/],
    ['a fractional body length', openBytes({ bodyLength: 1.5 }), /bodyLength is not an integer/],
    ['a body length of -2', openBytes({ bodyLength: -2 }), /bodyLength is not an integer/],
    ['a NaN body length', openBytes({ bodyLength: Number.NaN }), /bodyLength is not an integer/],
    [
      'CRLF in a header value',
      openBytes({ headers: [['X', 'a\r\nInjected: 1']] }),
      /header X has a bad value/,
    ],
    ['NUL in a header value', openBytes({ headers: [['X', 'a\0']] }), /header X has a bad value/],
    [
      'a header name that is not a token',
      openBytes({ headers: [['X Y', 'a']] }),
      /header name is not a token/,
    ],
    [
      '257 headers',
      openBytes({ headers: Array.from({ length: 257 }, () => ['a', 'b'] as [string, string]) }),
      /headers is not a short list/,
    ],
    ['a string running past the end', openBytes().subarray(0, 8), /truncated in origin/],
    ['a head cut short', openBytes().subarray(0, -3), /truncated in header value/],
    ['a trailing byte', openBytes({ tail: u8(0) }), /1 bytes after the open header/],
    ['a probe with an origin', probeBytes({ origin: 'files' }), /probe with field origin/],
    ['a probe with a port', probeBytes({ flags: 4 | 1, port: 80 }), /probe with field port/],
    ['a probe with a head', probeBytes({ flags: 4 | 2 }), /probe with field head/],
    ['a probe without bytes', probeBytes({ flags: 0 }), /probe bytes is not an integer/],
    ['a probe of 0 bytes', probeBytes({ bytes: 0 }), /probe bytes is not an integer/],
    ['a probe of too many bytes', probeBytes({ bytes: MAX_PROBE_BYTES + 1 }), /probe bytes/],
    ['a probe with hops', probeBytes({ hops: ['c'] }), /a probe has hops/],
    ['a probe with a two-node path', probeBytes({ path: ['x', 'a'] }), /sender alone/],
  ])('refuses %s with ERR_PROXY_BAD_OPEN_HEADER', (_name, bytes, why) => {
    expect(codeOf(() => decodeOpenHeader(bytes))).toBe('ERR_PROXY_BAD_OPEN_HEADER');
    expect(messageOf(() => decodeOpenHeader(bytes))).toMatch(why);
  });

  it('refuses loops and paths over 4 hops with ERR_PROXY_HOP_LIMIT', () => {
    const loop = openBytes({ path: ['en', 'rl'], hops: ['rl'] });
    expect(codeOf(() => decodeOpenHeader(loop))).toBe('ERR_PROXY_HOP_LIMIT');
    const long = openBytes({ path: ['a', 'b'], hops: ['c', 'd', 'e'] });
    expect(codeOf(() => decodeOpenHeader(long))).toBe('ERR_PROXY_HOP_LIMIT');
    expect(decodeOpenHeader(openBytes({ path: ['a', 'b'], hops: ['c', 'd'] })).hops).toEqual([
      'c',
      'd',
    ]);
  });

  it.each([
    ['status 99', responseBytes({ status: 99 }), /status is not an http status/],
    ['status 600', responseBytes({ status: 600 }), /status is not an http status/],
    ['LF in a header value', responseBytes({ headers: [['a', '\n']] }), /header a has a bad value/],
    ['an unknown flag', responseBytes({ flags: 2 }), /unknown flags 2/],
    ['a version 1 (json) head', Buffer.from('{"v":1,"status":200,"headers":[]}'), /version 1/],
    [
      'an error cut short',
      responseBytes({ code: 'ERR_X' }).subarray(0, -1),
      /truncated in error.message/,
    ],
    ['a trailing byte', responseBytes({ tail: u8(1) }), /1 bytes after the response head/],
    [
      '513 headers',
      responseBytes({ headers: Array.from({ length: 513 }, () => ['a', 'b'] as [string, string]) }),
      /not a short list/,
    ],
  ])('refuses a response head with %s', (_name, bytes, why) => {
    expect(codeOf(() => decodeResponseHead(bytes))).toBe('ERR_PROXY_BAD_OPEN_HEADER');
    expect(messageOf(() => decodeResponseHead(bytes))).toMatch(why);
  });

  it('refuses to encode a string that does not fit its length field', () => {
    expect(codeOf(() => encodeOpenHeader({ ...base, origin: 'o'.repeat(256) }))).toBe(
      'ERR_PROXY_BAD_OPEN_HEADER',
    );
  });
});

describe('readPrefixed', () => {
  it('leaves the chunks after the head as they came: not joined into a copy', async () => {
    // A response head usually comes with body chunks behind it: a bare read() would return
    // them all as one new buffer (a copy of the body's first chunks per response).
    const s = new PassThrough();
    const head = encodePrefixed(base);
    const body = [Buffer.alloc(20_000, 1), Buffer.alloc(30_000, 2)];
    s.write(head);
    for (const b of body) s.write(b);
    expect(decodeOpenHeader(await readPrefixed(s, MAX_OPEN_HEADER_BYTES, 5_000))).toEqual(base);
    expect(s.read(body[0]?.length)).toBe(body[0]);
    expect(s.read(body[1]?.length)).toBe(body[1]);
  });

  it('reads a head split across many chunks and leaves the following bytes in the stream', async () => {
    const s = new PassThrough();
    const bytes = Buffer.concat([encodePrefixed(base), Buffer.from('BODY')]);
    const p = readPrefixed(s, MAX_OPEN_HEADER_BYTES, 5_000);
    for (let i = 0; i < bytes.length; i += 3) s.write(bytes.subarray(i, i + 3));
    s.end();
    expect(decodeOpenHeader(await p)).toEqual(base);
    const rest: Buffer[] = [];
    for await (const c of s) rest.push(c as Buffer);
    expect(Buffer.concat(rest).toString()).toBe('BODY');
  });

  it('rejects an announced length over the cap before reading it', async () => {
    const s = new PassThrough();
    const p = readPrefixed(s, 1024, 5_000);
    s.write(Buffer.from([0, 0, 4, 1]));
    await expect(p).rejects.toMatchObject({ code: 'ERR_PROXY_BAD_OPEN_HEADER' });
  });

  it('rejects a stream that ends inside the head', async () => {
    const s = new PassThrough();
    const p = readPrefixed(s, 1024, 5_000);
    s.end(Buffer.from([0, 0, 0, 10, 1, 2]));
    await expect(p).rejects.toMatchObject({ code: 'ERR_PROXY_BAD_OPEN_HEADER' });
  });

  it('rejects with ERR_PROXY_HEAD_TIMEOUT when the head does not arrive (injected clock)', async () => {
    let fire: (() => void) | undefined;
    const clock = {
      now: () => 0,
      setTimeout: (fn: () => void) => {
        fire = fn;
        return 1 as unknown as NodeJS.Timeout;
      },
      clearTimeout: () => {},
    };
    const p = readPrefixed(new PassThrough(), 1024, 10, clock);
    fire?.();
    await expect(p).rejects.toMatchObject({ code: 'ERR_PROXY_HEAD_TIMEOUT' });
  });
});
