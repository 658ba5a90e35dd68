import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';

/**
 * A minimal HTTP CONNECT egress proxy for tests that refuses one destination port (502)
 * and pipes everything else: a node behind it cannot reach that destination itself, so
 * its requests must cross the mesh. `blockedPort` may be a function when the port is only
 * known after the proxy starts.
 */
export async function startBlockingProxy(
  blockedPort: number | (() => number),
): Promise<{ url: string; close(): void }> {
  const blocked = typeof blockedPort === 'number' ? () => blockedPort : blockedPort;
  const sockets = new Set<net.Socket>();
  const server = http.createServer((_req, res) => {
    res.writeHead(405);
    res.end();
  });
  server.on('connect', (req: http.IncomingMessage, client: net.Socket) => {
    sockets.add(client);
    client.on('error', () => {});
    client.on('close', () => sockets.delete(client));
    const [host, port] = (req.url ?? '').split(':');
    if (Number(port) === blocked()) {
      client.end('HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    const upstream = net.connect(Number(port), host ?? '127.0.0.1', () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.pipe(client);
      client.pipe(upstream);
    });
    sockets.add(upstream);
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close() {
      server.close();
      for (const s of sockets) s.destroy();
    },
  };
}
