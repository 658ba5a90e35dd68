import http from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { buildMesh, type Mesh, route, startOrigin, type TestOrigin } from './mesh.ts';

// A draining entry (EntryServer.close, called by RelayNode.close on SIGTERM): the listener
// closes, a keep-alive client's request in flight finishes with `Connection: close`, and
// close() resolves once that connection is gone (not after the keep-alive timeout).

let mesh: Mesh | undefined;
let origin: TestOrigin | undefined;
afterEach(async () => {
  await mesh?.close();
  await origin?.close();
  mesh = undefined;
  origin = undefined;
});

async function oneNode(): Promise<Mesh> {
  origin = await startOrigin((req, res) => {
    setTimeout(() => res.end(`origin:${req.url}`), 300);
  });
  mesh = await buildMesh({
    nodes: ['en'],
    links: [],
    origins: [{ name: 'files', hosts: ['files.example'], upstreams: [origin.url] }],
    routes: [route('files', ['en'])],
  });
  return mesh;
}

function get(port: number, agent: http.Agent): Promise<http.IncomingMessage & { body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { port, host: '127.0.0.1', path: '/x', headers: { host: 'files.example' }, agent },
      (res) => {
        let body = '';
        res.on('data', (d) => {
          body += d;
        });
        res.on('end', () => resolve(Object.assign(res, { body })));
      },
    );
    req.setTimeout(5000, () => req.destroy(new Error('timed out')));
    req.on('error', reject);
  });
}

describe('entry drain', () => {
  it('a request in flight finishes with Connection: close; close() does not wait for keep-alive', async () => {
    const m = await oneNode();
    const en = m.node('en');
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const inFlight = get(en.port, agent);
      await new Promise((r) => setTimeout(r, 100));
      let closed = false;
      const closing = en.entry.close().then(() => {
        closed = true;
      });
      const res = await inFlight;
      expect(res.statusCode).toBe(200);
      expect(res.body).toBe('origin:/x');
      expect(res.headers.connection).toBe('close');
      // Keep-alive would hold the connection for 5 s; the drain closes it at once.
      const t = new Promise((r) => setTimeout(r, 2000, 'timeout'));
      expect(await Promise.race([closing.then(() => 'closed'), t])).toBe('closed');
      expect(closed).toBe(true);
      // The listener is gone: a new client is refused.
      await expect(get(en.port, new http.Agent())).rejects.toThrow(/ECONNREFUSED/);
    } finally {
      agent.destroy();
    }
  });
});
