import http, { type ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { WireCode } from '@relaymesh/shared';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DATA_PLANE_VERSION, encodePrefixed } from '../../src/proxy/open-header.ts';
import type { HopStream } from '../../src/proxy/types.ts';
import { buildMesh, type Mesh, route, sha256, startOrigin, type TestOrigin } from './mesh.ts';

const MiB = 1024 * 1024;

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  for (let i = 0; i < 10_000 && !cond(); i++) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Resolves with the wire code a stream was reset with (undefined: clean end). */
function closedWith(stream: HopStream): Promise<number | undefined> {
  stream.on('error', () => {});
  stream.resume();
  return new Promise((r) => stream.once('close', () => r(stream.resetCode)));
}

describe('relay: per-hop backpressure, reset propagation, loop and hop limits', () => {
  let mesh: Mesh;
  let origin: TestOrigin;
  const generated = new Map<string, number>();
  const responses = new Map<string, ServerResponse>();
  const small = Buffer.alloc(MiB, 7);

  beforeAll(async () => {
    origin = await startOrigin((req, res) => {
      const id = new URL(req.url ?? '/', 'http://x').searchParams.get('id') ?? '';
      responses.set(id, res);
      if (req.url?.startsWith('/endless')) {
        generated.set(id, 0);
        // Up to 64 MiB, produced only as fast as the path lets it drain (pipe backpressure).
        const body = Readable.from(
          (function* () {
            for (let i = 0; i < 1024; i++) {
              generated.set(id, (generated.get(id) ?? 0) + 65_536);
              yield Buffer.alloc(65_536, i);
            }
          })(),
        );
        body.pipe(res);
        return;
      }
      res.end(small);
    });
    mesh = await buildMesh({
      nodes: ['en', 'rl', 'ex'],
      links: [
        ['en', 'rl'],
        ['rl', 'ex'],
      ],
      origins: [
        { name: 'files', hosts: ['files.example'], upstreams: [origin.url] },
        { name: 'detour', hosts: ['detour.example'], upstreams: [origin.url] },
        { name: 'broken', hosts: ['broken.example'], upstreams: [origin.url] },
      ],
      routes: [
        route('files', ['en', 'rl', 'ex']),
        // The primary's first hop has no session: the entry fails over to the alternate.
        route('detour', ['en', 'gone', 'ex'], ['en', 'rl', 'ex']),
        // The relay has no session to the last hop: it resets with NO_ROUTE.
        route('broken', ['en', 'rl', 'zz']),
      ],
    });
  });
  afterAll(async () => {
    for (const r of responses.values()) r.destroy();
    await mesh?.close();
    await origin?.close();
  });

  it('a stalled reader holds back only its own stream: another download through the same relay completes', async () => {
    const stalled = http.get(`${mesh.node('en').url}/endless?id=slow`, {
      headers: { host: 'files.example' },
      agent: false,
    });
    const stalledRes = await new Promise<http.IncomingMessage>((r) => stalled.once('response', r));
    stalledRes.pause();
    await until(() => (generated.get('slow') ?? 0) > 0, 5_000, 'stalled download started');

    const res = await request(`${mesh.node('en').url}/small?id=fast`, {
      headers: { host: 'files.example' },
    });
    const got = Buffer.from(await res.body.arrayBuffer());
    expect(sha256(got)).toBe(sha256(small));

    // Backpressure reached the origin: it has not produced the whole 64 MiB for the stalled one.
    await new Promise((r) => setTimeout(r, 200));
    expect(generated.get('slow')).toBeLessThan(48 * MiB);
    expect(responses.get('slow')?.writableFinished).toBe(false);

    // The client going away resets the stream hop by hop; the exit releases the origin.
    const originClosed = new Promise<void>((r) => responses.get('slow')?.once('close', () => r()));
    stalled.destroy();
    await originClosed;
  });

  it('fails over locally to an alternate path when the first hop has no session', async () => {
    const res = await request(`${mesh.node('en').url}/x?id=detour`, {
      headers: { host: 'detour.example' },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['x-relaymesh-path']).toBe('en,rl,ex');
    await res.body.dump();
    // The failed first hop is remembered: the alternate now comes first.
    expect(mesh.node('en').routes.pathsFor('detour')[0]).toEqual(['en', 'rl', 'ex']);
  });

  it('answers 502 when a relay cannot open the next hop', async () => {
    const res = await request(`${mesh.node('en').url}/x`, { headers: { host: 'broken.example' } });
    expect(res.statusCode).toBe(502);
    expect(res.headers['x-relaymesh-error']).toBe('ERR_ROUTE_NONE');
    await res.body.dump();
  });

  const header = (path: string[], hops: string[]) =>
    encodePrefixed({
      v: DATA_PLANE_VERSION,
      kind: 'http',
      origin: 'files',
      hops,
      path,
      id: 't1',
      head: { method: 'GET', target: '/', headers: [], bodyLength: 0 },
    });

  it('resets with HOP_LIMIT when a node sees itself on the path (loop)', async () => {
    const s = mesh.node('en').opener.open('rl');
    const code = closedWith(s);
    s.write(header(['en', 'rl'], ['ex']));
    expect(await code).toBe(WireCode.HOP_LIMIT);
  });

  it('resets with HOP_LIMIT when the path is longer than 4 hops', async () => {
    const s = mesh.node('en').opener.open('rl');
    const code = closedWith(s);
    s.write(header(['en'], ['a', 'b', 'c', 'ex']));
    expect(await code).toBe(WireCode.HOP_LIMIT);
  });

  it('resets with BAD_OPEN_HEADER on garbage or an oversized header', async () => {
    const s = mesh.node('en').opener.open('rl');
    const code = closedWith(s);
    s.write(Buffer.from('\x00\x00\x00\x05hello'));
    expect(await code).toBe(WireCode.BAD_OPEN_HEADER);
    const big = mesh.node('en').opener.open('rl');
    const bigCode = closedWith(big);
    big.write(Buffer.from([0, 1, 0, 0])); // announces 64 KiB > 16 KiB cap
    expect(await bigCode).toBe(WireCode.BAD_OPEN_HEADER);
  });

  it('leaves no stream open on any node afterwards', async () => {
    await until(
      () => [...mesh.nodes.values()].every((n) => n.server.liveStreams === 0),
      5_000,
      'streams closed',
    );
  });

  it('a tunnel dying mid-response aborts the client, and new requests get 502 at once', async () => {
    const req = http.get(`${mesh.node('en').url}/endless?id=cut`, {
      headers: { host: 'files.example' },
      agent: false,
    });
    const res = await new Promise<http.IncomingMessage>((r) => req.once('response', r));
    res.resume();
    const aborted = new Promise<void>((r) => res.once('close', () => r()));
    await until(() => (generated.get('cut') ?? 0) > 0, 5_000, 'download started');
    mesh.node('rl').sessions.get('ex')?.destroy();
    await aborted;
    expect(res.complete).toBe(false);
    const after = await request(`${mesh.node('en').url}/x`, { headers: { host: 'files.example' } });
    expect(after.statusCode).toBe(502);
    expect(after.headers['x-relaymesh-error']).toBe('ERR_ROUTE_NONE');
    await after.body.dump();
  });
});
