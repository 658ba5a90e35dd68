import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import {
  decodeOpenHeader,
  decodeResponseHead,
  encodePrefixed,
  MAX_OPEN_HEADER_BYTES,
  type OpenHeader,
  readPrefixed,
} from '../../src/proxy/open-header.ts';

const base: OpenHeader = {
  v: 1,
  kind: 'http',
  origin: 'files',
  hops: ['rl', 'ex'],
  path: ['en'],
  id: 'abc',
  head: { method: 'POST', target: '/up?x=1', headers: [['Host', 'files.example']], bodyLength: -1 },
};

const json = (o: unknown) => Buffer.from(JSON.stringify(o));

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return (err as { code?: string }).code;
  }
  return undefined;
}

describe('open header', () => {
  it('round-trips through the length prefix', () => {
    const bytes = encodePrefixed(base);
    expect(bytes.readUInt32BE(0)).toBe(bytes.length - 4);
    expect(decodeOpenHeader(bytes.subarray(4))).toEqual(base);
    const tcp: OpenHeader = {
      v: 1,
      kind: 'tcp',
      origin: 'ssh',
      hops: [],
      path: ['en'],
      id: 'x',
      port: 443,
    };
    expect(decodeOpenHeader(encodePrefixed(tcp).subarray(4))).toEqual(tcp);
  });

  it.each([
    ['bad json', Buffer.from('{nope')],
    ['not an object', json([1])],
    ['wrong version', json({ ...base, v: 2 })],
    ['unknown field', json({ ...base, extra: 1 })],
    ['unknown kind', json({ ...base, kind: 'udp' })],
    ['empty path', json({ ...base, path: [] })],
    ['bad node id', json({ ...base, hops: ['a b'] })],
    [
      'CRLF in a header value',
      json({ ...base, head: { ...base.head, headers: [['X', 'a\r\nInjected: 1']] } }),
    ],
    ['header name not a token', json({ ...base, head: { ...base.head, headers: [['X Y', 'a']] } })],
    ['absolute target', json({ ...base, head: { ...base.head, target: 'http://x/' } })],
    ['target with a space', json({ ...base, head: { ...base.head, target: '/a b' } })],
    ['fractional body length', json({ ...base, head: { ...base.head, bodyLength: 1.5 } })],
    ['http without head', json({ ...base, head: undefined })],
    ['tcp with a head', json({ ...base, kind: 'tcp' })],
    ['port out of range', json({ ...base, kind: 'tcp', head: undefined, port: 70000 })],
  ])('refuses %s with ERR_PROXY_BAD_OPEN_HEADER', (_name, bytes) => {
    expect(codeOf(() => decodeOpenHeader(bytes))).toBe('ERR_PROXY_BAD_OPEN_HEADER');
  });

  it('refuses loops and paths over 4 hops with ERR_PROXY_HOP_LIMIT', () => {
    expect(
      codeOf(() => decodeOpenHeader(json({ ...base, path: ['en', 'rl'], hops: ['rl'] }))),
    ).toBe('ERR_PROXY_HOP_LIMIT');
    expect(
      codeOf(() => decodeOpenHeader(json({ ...base, path: ['a', 'b'], hops: ['c', 'd', 'e'] }))),
    ).toBe('ERR_PROXY_HOP_LIMIT');
    expect(decodeOpenHeader(json({ ...base, path: ['a', 'b'], hops: ['c', 'd'] })).hops).toEqual([
      'c',
      'd',
    ]);
  });

  it('validates response heads', () => {
    const head = {
      v: 1,
      status: 502,
      headers: [],
      error: { code: 'ERR_PROXY_UPSTREAM_CONNECT', message: 'x' },
    };
    expect(decodeResponseHead(json(head))).toEqual(head);
    expect(codeOf(() => decodeResponseHead(json({ ...head, status: 99 })))).toBe(
      'ERR_PROXY_BAD_OPEN_HEADER',
    );
    expect(codeOf(() => decodeResponseHead(json({ ...head, headers: [['a', '\n']] })))).toBe(
      'ERR_PROXY_BAD_OPEN_HEADER',
    );
  });
});

describe('readPrefixed', () => {
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
