import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { Client, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildMesh,
  type Mesh,
  rawExchange,
  route,
  sha256,
  startOrigin,
  type TestOrigin,
} from './mesh.ts';

const BIG = randomBytes(3 * 1024 * 1024 + 123);

function originHandler(): Parameters<typeof startOrigin>[0] {
  return (req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      // Chunked, in pieces, so the exit streams rather than receives one buffer.
      const r = Readable.from(
        (function* () {
          for (let i = 0; i < BIG.length; i += 100_000) yield BIG.subarray(i, i + 100_000);
        })(),
      );
      r.pipe(res);
      return;
    }
    if (req.url === '/big-fixed') {
      res.writeHead(200, { 'content-length': BIG.length });
      res.end(BIG);
      return;
    }
    if (req.url === '/sha') {
      const h = createHash('sha256');
      let n = 0;
      req.on('data', (c: Buffer) => {
        h.update(c);
        n += c.length;
      });
      req.on('end', () =>
        res.end(
          JSON.stringify({
            n,
            sha: h.digest('hex'),
            te: req.headers['transfer-encoding'] ?? null,
            cl: req.headers['content-length'] ?? null,
          }),
        ),
      );
      return;
    }
    if (req.url === '/cookies') {
      res.setHeader('set-cookie', ['a=1; Path=/', 'b=2; Path=/']);
      res.statusCode = 204;
      res.end();
      return;
    }
    res.setHeader('connection', 'keep-alive, x-hop');
    res.setHeader('x-hop', 'must-be-removed');
    res.setHeader('keep-alive', 'timeout=10');
    res.end(JSON.stringify({ method: req.method, url: req.url, headers: req.headers }));
  };
}

describe.each([
  ['entry -> exit (memory sessions)', ['en', 'ex'], 'memory'],
  ['entry -> relay -> exit (tcp sessions)', ['en', 'rl', 'ex'], 'tcp'],
] as const)('http entry: %s', (_name, path, transport) => {
  let mesh: Mesh;
  let origin: TestOrigin;
  const url = () => mesh.node('en').url;

  beforeAll(async () => {
    origin = await startOrigin(originHandler());
    const links: Array<[string, string]> = [];
    for (let i = 0; i + 1 < path.length; i++)
      links.push([path[i] as string, path[i + 1] as string]);
    mesh = await buildMesh({
      nodes: [...path],
      links,
      transport,
      origins: [{ name: 'files', hosts: ['files.example'], upstreams: [origin.url] }],
      routes: [route('files', [...path])],
    });
  });
  afterAll(async () => {
    await mesh?.close();
    await origin?.close();
  });

  it('reverse proxies by Host, strips hop-by-hop headers, adds forwarded headers and the path', async () => {
    const raw = await rawExchange(
      mesh.node('en').port,
      'GET /hello?x=1 HTTP/1.1\r\nHost: files.example\r\nConnection: x-secret\r\nX-Secret: no\r\nTE: trailers\r\nX-Keep: yes\r\nProxy-Authorization: Basic abc\r\nKeep-Alive: timeout=5\r\n\r\n',
    );
    const [head = '', text = ''] = raw.split('\r\n\r\n');
    expect(head).toMatch(/^HTTP\/1.1 200/);
    expect(head.toLowerCase()).toContain(`x-relaymesh-path: ${path.join(',')}`);
    expect(head.toLowerCase()).not.toContain('x-hop');
    const body = JSON.parse(text) as {
      method: string;
      url: string;
      headers: Record<string, string>;
    };
    expect(body.url).toBe('/hello?x=1');
    expect(body.headers.host).toBe('files.example');
    expect(body.headers['x-keep']).toBe('yes');
    expect(body.headers['x-secret']).toBeUndefined();
    expect(body.headers.te).toBeUndefined();
    expect(body.headers['proxy-authorization']).toBeUndefined();
    expect(body.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(body.headers['x-forwarded-proto']).toBe('http');
    expect(body.headers['x-forwarded-host']).toBe('files.example');
    expect(body.headers.via).toBe('1.1 en');
    expect(body.headers['keep-alive']).toBeUndefined();
    expect(head.toLowerCase()).toContain('via: 1.1 en');
  });

  it('streams a chunked multi-MiB response and a fixed-length one intact', async () => {
    for (const p of ['/big', '/big-fixed']) {
      const res = await request(`${url()}${p}`, { headers: { host: 'files.example' } });
      const got = Buffer.from(await res.body.arrayBuffer());
      expect(res.statusCode).toBe(200);
      expect(got.length).toBe(BIG.length);
      expect(sha256(got)).toBe(sha256(BIG));
      if (p === '/big-fixed') expect(res.headers['content-length']).toBe(String(BIG.length));
    }
  });

  it('streams multi-MiB request bodies, chunked and fixed-length, intact', async () => {
    const chunked = await request(`${url()}/sha`, {
      method: 'POST',
      headers: { host: 'files.example' },
      body: Readable.from(
        (function* () {
          for (let i = 0; i < BIG.length; i += 65_536) yield BIG.subarray(i, i + 65_536);
        })(),
      ),
    });
    const c = (await chunked.body.json()) as { n: number; sha: string; te: string | null };
    expect(c).toMatchObject({ n: BIG.length, sha: sha256(BIG), te: 'chunked' });
    const fixed = await request(`${url()}/sha`, {
      method: 'PUT',
      headers: { host: 'files.example' },
      body: BIG,
    });
    const f = (await fixed.body.json()) as { n: number; sha: string; cl: string | null };
    expect(f).toMatchObject({ n: BIG.length, sha: sha256(BIG), cl: String(BIG.length) });
  });

  it('keeps client and origin connections alive across requests', async () => {
    const client = new Client(url(), { pipelining: 1 });
    const before = origin.connections;
    let clientSockets = 0;
    client.on('connect', () => {
      clientSockets += 1;
    });
    try {
      for (let i = 0; i < 5; i++) {
        const res = await client.request({
          path: `/k${i}`,
          method: 'GET',
          headers: { host: 'files.example' },
        });
        expect(res.statusCode).toBe(200);
        await res.body.text();
      }
    } finally {
      await client.close();
    }
    expect(clientSockets).toBe(1);
    expect(origin.connections - before).toBeLessThanOrEqual(1);
  });

  it('answers HEAD without a body, and passes 204 with repeated Set-Cookie fields', async () => {
    const head = await request(`${url()}/big-fixed`, {
      method: 'HEAD',
      headers: { host: 'files.example' },
    });
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe(String(BIG.length));
    expect((await head.body.arrayBuffer()).byteLength).toBe(0);
    const cookies = await request(`${url()}/cookies`, { headers: { host: 'files.example' } });
    expect(cookies.statusCode).toBe(204);
    expect(cookies.headers['set-cookie']).toEqual(['a=1; Path=/', 'b=2; Path=/']);
    await cookies.body.dump();
  });
});
