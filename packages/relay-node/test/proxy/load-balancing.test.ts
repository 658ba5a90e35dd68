import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildMesh, type Mesh, route, startOrigin, type TestOrigin } from './mesh.ts';

async function get(
  mesh: Mesh,
  host: string,
  path = '/',
): Promise<{ status: number; body: string }> {
  const r = await request(`${mesh.node('en').url}${path}`, { headers: { host } });
  return { status: r.statusCode, body: await r.body.text() };
}

describe('exit load balancing and health checks', () => {
  let mesh: Mesh;
  const origins: Record<string, TestOrigin> = {};
  let cHealthy = false;

  beforeAll(async () => {
    for (const name of ['a', 'b', 'd'])
      origins[name] = await startOrigin((_req, res) => res.end(name));
    origins.c = await startOrigin((req, res) => {
      if (req.url === '/health' && !cHealthy) res.statusCode = 503;
      res.end('c');
    });
    const u = (n: string) => (origins[n] as TestOrigin).url;
    mesh = await buildMesh({
      nodes: ['en', 'ex'],
      links: [['en', 'ex']],
      origins: [
        { name: 'lb', hosts: ['lb.example'], upstreams: [u('a'), u('b')] },
        {
          name: 'hc',
          hosts: ['hc.example'],
          upstreams: [u('c'), u('d')],
          healthCheck: { path: '/health', intervalMs: 600_000, timeoutMs: 1_000 },
        },
        { name: 'local', hosts: ['local.example'], upstreams: [u('a')] },
      ],
      routes: [route('lb', ['en', 'ex']), route('hc', ['en', 'ex']), route('local', ['en'])],
    });
  });
  afterAll(async () => {
    await mesh?.close();
    for (const o of Object.values(origins)) await o.close();
  });

  it('spreads requests over both upstreams, and keeps succeeding when one is killed mid-run', async () => {
    const seen: Record<string, number> = {};
    for (let i = 0; i < 10; i++) {
      const r = await get(mesh, 'lb.example');
      expect(r.status).toBe(200);
      seen[r.body] = (seen[r.body] ?? 0) + 1;
    }
    expect(seen.a).toBeGreaterThan(0);
    expect(seen.b).toBeGreaterThan(0);

    await (origins.b as TestOrigin).close();
    const after: string[] = [];
    for (let i = 0; i < 20; i++) {
      const r = await get(mesh, 'lb.example');
      expect(r.status, r.body).toBe(200);
      after.push(r.body);
    }
    expect(new Set(after)).toEqual(new Set(['a']));
    const pool = mesh.node('ex').exit.poolFor('lb');
    const b = pool?.upstreams.find((x) => x.address.port === (origins.b as TestOrigin).port);
    expect(b && pool?.isHealthy(b)).toBe(false);
  });

  it('active health checks keep traffic off an unhealthy upstream until it recovers', async () => {
    const exit = mesh.node('ex').exit;
    exit.poolFor('hc');
    await exit.checkerFor('hc')?.checkNow();
    const bodies = new Set<string>();
    for (let i = 0; i < 8; i++) bodies.add((await get(mesh, 'hc.example')).body);
    expect(bodies).toEqual(new Set(['d']));

    cHealthy = true;
    await exit.checkerFor('hc')?.checkNow();
    const later = new Set<string>();
    for (let i = 0; i < 8; i++) later.add((await get(mesh, 'hc.example')).body);
    expect(later).toEqual(new Set(['c', 'd']));
  });

  it('serves locally when the entry is also the exit (a one-node path)', async () => {
    const r = await request(`${mesh.node('en').url}/x`, { headers: { host: 'local.example' } });
    expect(r.statusCode).toBe(200);
    expect(r.headers['x-relaymesh-path']).toBe('en');
    expect(await r.body.text()).toBe('a');
  });
});

describe('an upstream that drops the connection before answering', () => {
  it('a GET goes to the other upstream; a POST is not replayed (502)', async () => {
    const seenByDropper: string[] = [];
    // Reads the request, then destroys the socket without a byte of response (an origin
    // that died under a kept-alive connection looks the same to the exit).
    const dropper = await startOrigin((req) => {
      seenByDropper.push(`${req.method} ${req.url}`);
      req.resume();
      req.once('end', () => req.socket.destroy());
    });
    const fine = await startOrigin((req, res) => {
      req.resume();
      req.once('end', () => res.end(`fine ${req.method}`));
    });
    const mesh = await buildMesh({
      nodes: ['en', 'ex'],
      links: [['en', 'ex']],
      origins: [
        {
          name: 'o',
          hosts: ['o.example'],
          upstreams: [dropper.url, fine.url],
        },
      ],
      routes: [route('o', ['en', 'ex'])],
    });
    try {
      // Least outstanding, ties round-robin: sequential requests alternate between the two.
      const gets: string[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await get(mesh, 'o.example', `/g${i}`);
        gets.push(`${r.status} ${r.body}`);
      }
      expect(gets).toEqual(Array(4).fill('200 fine GET'));
      expect(seenByDropper.filter((x) => x.startsWith('GET')).length).toBeGreaterThan(0);
      const posts: number[] = [];
      for (let i = 0; i < 4; i++) {
        const r = await request(`${mesh.node('en').url}/p${i}`, {
          method: 'POST',
          headers: { host: 'o.example' },
          body: 'x',
        });
        await r.body.text();
        posts.push(r.statusCode);
      }
      // The POSTs the dropper got were not sent again: those fail, the others succeed.
      const dropped = seenByDropper.filter((x) => x.startsWith('POST')).length;
      expect(dropped).toBeGreaterThan(0);
      expect(posts.filter((st) => st === 502).length).toBe(dropped);
      expect(posts.filter((st) => st === 200).length).toBe(4 - dropped);
    } finally {
      await mesh.close();
      await dropper.close();
      await fine.close();
    }
  });
});

describe('exit pools follow origin declarations', () => {
  it('keeps a pool across identical pushes and replaces it when upstreams change', async () => {
    const a = await startOrigin((_q, r) => r.end('a'));
    const b = await startOrigin((_q, r) => r.end('b'));
    const mesh = await buildMesh({
      nodes: ['en', 'ex'],
      links: [['en', 'ex']],
      origins: [{ name: 'o', hosts: ['o.example'], upstreams: [a.url] }],
      routes: [route('o', ['en', 'ex'])],
    });
    try {
      expect((await get(mesh, 'o.example')).body).toBe('a');
      const exit = mesh.node('ex').exit;
      const first = exit.poolFor('o');
      mesh.catalog.replace([{ name: 'o', hosts: ['o.example'], upstreams: [a.url] }]);
      expect(exit.poolFor('o')).toBe(first);
      mesh.catalog.replace([{ name: 'o', hosts: ['o.example'], upstreams: [b.url] }]);
      expect((await get(mesh, 'o.example')).body).toBe('b');
      expect(exit.poolFor('o')).not.toBe(first);
      mesh.catalog.replace([]);
      expect((await get(mesh, 'o.example')).status).toBe(421);
    } finally {
      await mesh.close();
      await a.close();
      await b.close();
    }
  });
});
