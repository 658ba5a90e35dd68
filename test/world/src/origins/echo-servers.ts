import { once } from 'node:events';
import http from 'node:http';
import net from 'node:net';
import { pipeline } from 'node:stream';
import { type OriginServer, originServer } from './file-server.ts';

export interface EchoServerOptions {
  /** @default 0 */
  port?: number;
  /** @default '127.0.0.1' */
  host?: string;
}

/**
 * An HTTP echo origin. GET/HEAD/DELETE answer JSON `{ method, url, headers }`; a request
 * with a body gets the body streamed back (same content-type), with `x-echo-method` and
 * `x-echo-url` headers. `/health` answers `ok`.
 */
export async function startHttpEchoServer(options: EchoServerOptions = {}): Promise<OriginServer> {
  const server = http.createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 2 }).end('ok');
      return;
    }
    const hasBody =
      req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0';
    if (hasBody || req.headers['transfer-encoding'] !== undefined) {
      res.writeHead(200, {
        'content-type': req.headers['content-type'] ?? 'application/octet-stream',
        'x-echo-method': req.method ?? '',
        'x-echo-url': req.url ?? '',
      });
      pipeline(req, res, () => {});
      return;
    }
    const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers });
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  });
  server.keepAliveTimeout = 30_000;
  server.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  return originServer(server);
}

/** A TCP echo origin: every byte comes back; a FIN is answered with a FIN. */
export async function startTcpEchoServer(options: EchoServerOptions = {}): Promise<OriginServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    pipeline(s, s, () => s.destroy());
  });
  server.listen(options.port ?? 0, options.host ?? '127.0.0.1');
  await once(server, 'listening');
  const base = originServer(server);
  return {
    port: base.port,
    close() {
      for (const s of sockets) s.destroy();
      return base.close();
    },
  };
}
