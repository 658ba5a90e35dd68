import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  buildMesh,
  closedPort,
  type Mesh,
  rawExchange,
  route,
  startOrigin,
  type TestOrigin,
} from './mesh.ts';

describe('entry errors are specific, fast and never an open proxy', () => {
  let mesh: Mesh;
  let origin: TestOrigin;
  let slow: TestOrigin;
  let resetter: TestOrigin;
  const pending = new Set<import('node:http').ServerResponse>();

  beforeAll(async () => {
    origin = await startOrigin((req, res) => res.end(`ok ${req.url}`));
    // Never answers: the exit's headers timeout must turn this into a 504.
    slow = await startOrigin((_req, res) => {
      pending.add(res);
    });
    // Reads the request, then drops the connection: a failure after the request was sent.
    resetter = await startOrigin((req) => req.socket.destroy());
    const dead = await closedPort();
    mesh = await buildMesh({
      nodes: ['en', 'ex'],
      links: [['en', 'ex']],
      origins: [
        { name: 'files', hosts: ['files.example'], upstreams: [origin.url] },
        { name: 'dead', hosts: ['dead.example'], upstreams: [`http://127.0.0.1:${dead}`] },
        { name: 'slow', hosts: ['slow.example'], upstreams: [slow.url] },
        { name: 'unrouted', hosts: ['unrouted.example'], upstreams: [origin.url] },
        { name: 'resetter', hosts: ['resetter.example'], upstreams: [resetter.url, origin.url] },
      ],
      routes: [
        route('files', ['en', 'ex']),
        route('dead', ['en', 'ex']),
        route('slow', ['en', 'ex']),
        route('resetter', ['en', 'ex']),
      ],
      exit: { pool: { headersTimeoutMs: 300 } },
    });
  });
  afterAll(async () => {
    for (const r of pending) r.destroy();
    await mesh?.close();
    await origin?.close();
    await slow?.close();
    await resetter?.close();
  });

  const get = (host: string, path = '/') =>
    request(`${mesh.node('en').url}${path}`, { headers: { host } }).then(async (r) => ({
      status: r.statusCode,
      headers: r.headers,
      body: await r.body.text(),
    }));

  it('answers 421 for a host no origin declares, naming it', async () => {
    const r = await get('evil.internal');
    expect(r.status).toBe(421);
    expect(r.body).toContain('evil.internal is not a declared origin');
    expect(r.headers['x-relaymesh-error']).toBe('ERR_PROXY_UNKNOWN_HOST');
  });

  it('answers 502 when there is no route yet', async () => {
    const r = await get('unrouted.example');
    expect(r.status).toBe(502);
    expect(r.headers['x-relaymesh-error']).toBe('ERR_ROUTE_NONE');
    expect(r.body).toContain('no route to origin unrouted');
  });

  it('answers 502 when the origin refuses connections', async () => {
    const r = await get('dead.example');
    expect(r.status).toBe(502);
    expect(r.headers['x-relaymesh-error']).toBe('ERR_PROXY_UPSTREAM_CONNECT');
    expect(r.headers['x-relaymesh-path']).toBe('en,ex');
    expect(r.body).toContain('unreachable');
  });

  it('answers 504 when the origin does not answer in time', async () => {
    const r = await get('slow.example');
    expect(r.status).toBe(504);
    expect(r.headers['x-relaymesh-error']).toBe('ERR_PROXY_UPSTREAM_TIMEOUT');
  });

  it('refuses a request with both Content-Length and Transfer-Encoding (smuggling)', async () => {
    const before = origin.requests;
    const raw = await rawExchange(
      mesh.node('en').port,
      'POST / HTTP/1.1\r\nHost: files.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: files.example\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1.1 400/);
    expect(raw).not.toContain('ok /smuggled');
    expect(origin.requests).toBe(before);
  });

  it('refuses bad header bytes and a missing Host', async () => {
    const bad = await rawExchange(
      mesh.node('en').port,
      'GET / HTTP/1.1\r\nHost: files.example\r\nX-Bad: a\x01b\r\n\r\n',
    );
    expect(bad).toMatch(/^HTTP\/1.1 400/);
    const noHost = await rawExchange(mesh.node('en').port, 'GET / HTTP/1.1\r\n\r\n');
    expect(noHost).toMatch(/^HTTP\/1.1 400/);
  });

  it('refuses a request head over 16 KiB with 431', async () => {
    const raw = await rawExchange(
      mesh.node('en').port,
      `GET / HTTP/1.1\r\nHost: files.example\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(raw).toMatch(/^HTTP\/1.1 431/);
  });

  it('refuses https absolute-form and forward requests to undeclared hosts', async () => {
    const https = await rawExchange(
      mesh.node('en').port,
      'GET https://files.example/ HTTP/1.1\r\nHost: files.example\r\n\r\n',
    );
    expect(https).toMatch(/^HTTP\/1.1 400/);
    const other = await rawExchange(
      mesh.node('en').port,
      'GET http://127.0.0.1:22/ HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n',
    );
    expect(other).toMatch(/^HTTP\/1.1 421/);
  });

  it('refuses CONNECT to undeclared hosts and undeclared ports (no open proxy)', async () => {
    const port = mesh.node('en').port;
    const undeclared = await rawExchange(
      port,
      `CONNECT 127.0.0.1:${origin.port} HTTP/1.1\r\nHost: 127.0.0.1:${origin.port}\r\n\r\n`,
    );
    expect(undeclared).toMatch(/^HTTP\/1.1 421/);
    const internal = await rawExchange(
      port,
      'CONNECT metadata.internal:80 HTTP/1.1\r\nHost: metadata.internal:80\r\n\r\n',
    );
    expect(internal).toMatch(/^HTTP\/1.1 421/);
    const badPort = await rawExchange(
      port,
      'CONNECT files.example:22 HTTP/1.1\r\nHost: files.example:22\r\n\r\n',
    );
    expect(badPort).toMatch(/^HTTP\/1.1 403/);
    expect(badPort).toContain('ERR_PROXY_NOT_DECLARED');
  });

  it('never retries a request the origin already received: 502 and no duplicate', async () => {
    const before = origin.requests;
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await request(`${mesh.node('en').url}/once`, {
        method: 'POST',
        headers: { host: 'resetter.example' },
        body: 'x',
      });
      statuses.push(r.statusCode);
      if (r.statusCode === 502)
        expect(r.headers['x-relaymesh-error']).toBe('ERR_PROXY_UPSTREAM_RESET');
      await r.body.dump();
    }
    expect(statuses).toContain(502);
    // Every request went to exactly one upstream: the 200s are the only ones the good one saw.
    expect(origin.requests - before).toBe(statuses.filter((s) => s === 200).length);
    expect(resetter.requests).toBe(statuses.filter((s) => s === 502).length);
  });

  it('refuses a WebSocket upgrade to an undeclared host with 421', async () => {
    const raw = await rawExchange(
      mesh.node('en').port,
      'GET /ws HTTP/1.1\r\nHost: evil.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    expect(raw).toMatch(/^HTTP\/1.1 421/);
  });

  it('keeps serving after all of the above', async () => {
    const r = await get('files.example', '/still');
    expect(r).toMatchObject({ status: 200, body: 'ok /still' });
  });
});
