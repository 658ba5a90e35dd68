import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import {
  generatedBytes,
  generatedSha256,
  type OriginServer,
  startFileServer,
  startHttpEchoServer,
  startTcpEchoServer,
} from '../src/index.ts';

const servers: OriginServer[] = [];
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
afterEach(async () => {
  agent.destroy();
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

interface Got {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  reused: boolean;
}

function request(port: number, options: http.RequestOptions = {}, body?: Buffer): Promise<Got> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, agent, ...options }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(parts),
          reused: req.reusedSocket,
        }),
      );
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('file server', () => {
  const size = 300_000;
  const seed = 7;

  it('serves a deterministic file whose sha256 is known without storing it', async () => {
    const s = await startFileServer({ sizeBytes: size, contentSeed: seed });
    servers.push(s);
    const got = await request(s.port, { path: '/big.bin' });
    expect(got.status).toBe(200);
    expect(got.headers['accept-ranges']).toBe('bytes');
    expect(got.body.length).toBe(size);
    expect(createHash('sha256').update(got.body).digest('hex')).toBe(
      await generatedSha256(seed, size),
    );
    expect(await generatedSha256(seed + 1, size)).not.toBe(await generatedSha256(seed, size));
  });

  it('answers Range requests with 206 and the right bytes, on one keep-alive socket', async () => {
    const s = await startFileServer({ sizeBytes: size, contentSeed: seed });
    servers.push(s);
    const whole = await generatedBytes(seed, 0, size);
    const mid = await request(s.port, { headers: { range: 'bytes=65530-131080' } });
    expect(mid.status).toBe(206);
    expect(mid.headers['content-range']).toBe(`bytes 65530-131080/${size}`);
    expect(mid.body.equals(whole.subarray(65530, 131081))).toBe(true);
    const open = await request(s.port, { headers: { range: 'bytes=299990-' } });
    expect(open.body.equals(whole.subarray(299990))).toBe(true);
    const suffix = await request(s.port, { headers: { range: 'bytes=-10' } });
    expect(suffix.body.equals(whole.subarray(size - 10))).toBe(true);
    expect(suffix.reused).toBe(true);
    const beyond = await request(s.port, { headers: { range: `bytes=${size}-` } });
    expect(beyond.status).toBe(416);
    expect(beyond.headers['content-range']).toBe(`bytes */${size}`);
  });

  it('answers HEAD with the length and no body', async () => {
    const s = await startFileServer({ sizeBytes: size, contentSeed: seed });
    servers.push(s);
    const head = await request(s.port, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers['content-length']).toBe(String(size));
    expect(head.body.length).toBe(0);
  });
});

describe('echo servers', () => {
  it('http echo returns the request body, or a JSON description without one', async () => {
    const s = await startHttpEchoServer();
    servers.push(s);
    const payload = Buffer.from('x'.repeat(100_000));
    const post = await request(
      s.port,
      { method: 'POST', path: '/up', headers: { 'content-length': payload.length } },
      payload,
    );
    expect(post.body.equals(payload)).toBe(true);
    expect(post.headers['x-echo-url']).toBe('/up');
    const get = await request(s.port, { path: '/q?a=1', headers: { 'x-test': 'y' } });
    expect(JSON.parse(get.body.toString())).toMatchObject({
      method: 'GET',
      url: '/q?a=1',
      headers: { 'x-test': 'y' },
    });
  });

  it('tcp echo returns every byte and answers FIN with FIN', async () => {
    const s = await startTcpEchoServer();
    servers.push(s);
    const socket = net.connect(s.port, '127.0.0.1');
    const parts: Buffer[] = [];
    socket.on('data', (d: Buffer) => parts.push(d));
    const ended = new Promise((r) => socket.once('end', r));
    socket.end('hello, tcp');
    await ended;
    expect(Buffer.concat(parts).toString()).toBe('hello, tcp');
    socket.destroy();
  });
});
