import net, { type AddressInfo } from 'node:net';
import { HttpConnectDialer } from '@relaymesh/shared';
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

/** A minimal HTTP CONNECT egress proxy that records every target it is asked for. */
async function startEgress(): Promise<{ server: net.Server; url: string; targets: string[] }> {
  const targets: string[] = [];
  const server = net.createServer((client) => {
    client.on('error', () => {});
    client.once('data', (chunk: Buffer) => {
      const m = /^CONNECT (\S+):(\d+) HTTP\/1.1\r\n/.exec(chunk.toString('latin1'));
      if (!m) return void client.destroy();
      targets.push(`${m[1]}:${m[2]}`);
      const up = net.connect(Number(m[2]), m[1] as string, () => {
        client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        client.pipe(up).pipe(client);
      });
      up.on('error', () => client.end('HTTP/1.1 502 Bad Gateway\r\n\r\n'));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, targets };
}

describe('the exit reaches origins only through the node dialer', () => {
  let mesh: Mesh;
  let origin: TestOrigin;
  let egress: Awaited<ReturnType<typeof startEgress>>;
  let dead = 0;

  beforeAll(async () => {
    origin = await startOrigin((req, res) => res.end(`via egress ${req.url}`));
    egress = await startEgress();
    dead = await closedPort();
    mesh = await buildMesh({
      nodes: ['en', 'ex'],
      links: [['en', 'ex']],
      dialer: new HttpConnectDialer(egress.url),
      origins: [
        { name: 'files', hosts: ['files.example'], upstreams: [origin.url] },
        { name: 'gone', hosts: ['gone.example'], upstreams: [`tcp://127.0.0.1:${dead}`] },
      ],
      routes: [route('files', ['en', 'ex']), route('gone', ['en', 'ex'])],
    });
  });
  afterAll(async () => {
    await mesh?.close();
    await origin?.close();
    egress?.server.close();
  });

  it('sends http origin connections through the egress proxy', async () => {
    const res = await request(`${mesh.node('en').url}/p`, { headers: { host: 'files.example' } });
    expect(await res.body.text()).toBe('via egress /p');
    expect(egress.targets).toContain(`127.0.0.1:${origin.port}`);
  });

  it('answers CONNECT with 502 when the declared tcp upstream is unreachable', async () => {
    const raw = await rawExchange(
      mesh.node('en').port,
      `CONNECT gone.example:${dead} HTTP/1.1\r\nHost: gone.example:${dead}\r\n\r\n`,
    );
    expect(raw).toMatch(/^HTTP\/1.1 502/);
    expect(raw).toContain('ERR_PROXY_UPSTREAM_CONNECT');
    expect(egress.targets).toContain(`127.0.0.1:${dead}`);
  });
});
